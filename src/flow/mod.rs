//! Contact flows: graphs of blocks loaded from files, validated at start-up
//! (and by `callgate check-config`), run block by block on a call.
//!
//! `engine` runs a flow sans-IO (fed events and the time, returning
//! actions); `driver` is the thin async loop that runs it on a call;
//! `blocks/` holds each block type: its fields, checks and behaviour.

pub mod blocks;
pub mod context;
pub mod driver;
pub mod engine;
pub mod env;
pub mod load;
pub mod model;
pub mod speech;
pub mod whisper;

pub use context::Contact;
pub use driver::Callbacks;
pub use engine::{Mode, Outcome};
pub use env::{CallbackRefusal, CallbackRequest, FlowEnv, QueueMetrics};
pub use load::{Flow, FlowSet};
