//! Calls: the glue between the SIP core task (which owns transactions and
//! dialog routing) and the per-call tasks that run what a call does.
//!
//! Each call task has a `SipHandle` to send commands to the core and
//! receives `CallEvent`s for its transactions and dialogs. Call logic is
//! plain async code ("answer, play, wait for a digit"), one task per call.

mod in_dialog;
pub mod liveness;
mod probes;
pub mod session;
pub mod tasks;
pub mod uac;
pub mod uas;

pub use crate::endpoint::tu::{CallEvent, CallRef, Command, LocalSip, SipHandle};
pub use session::{EndReason, Session, Waited};
