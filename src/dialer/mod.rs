//! The callback dialer: owns the callback lifecycle. `lifecycle` is the
//! table of legal state changes, `book` the one writer of callback state,
//! `scheduler` the retry and recovery arithmetic, `dial` calling the
//! customer back once an agent has accepted.

pub mod book;
pub mod claims;
pub mod dial;
pub mod lifecycle;
pub mod machine;
pub mod scheduler;

pub use book::CallbackBook;
pub use dial::{CallBack, Dialer};
