//! The SIP stack: messages, transports, transactions, dialogs and digest
//! authentication.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod transaction;
pub mod transport;
