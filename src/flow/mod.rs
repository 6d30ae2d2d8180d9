//! Contact flows: graphs of blocks loaded from files, validated at start-up
//! (and by `callgate check-config`), run block by block on a call.

pub mod context;
pub mod engine;
pub mod load;
pub mod model;
mod on_session;
pub mod speech;

pub use context::Contact;
pub use engine::{CallIo, ContactCenter, FlowRun, Outcome};
pub use load::{Flow, FlowSet};
