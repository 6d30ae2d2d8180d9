//! The callback dialer: durable callbacks, their scheduling, and dialling
//! customers back with the queue's caller ID.

pub mod scheduler;
