//! Queues, routing profiles and agents: the contact centre's brain.

pub mod hours;
mod line;
pub mod router;
pub mod wait;

pub use router::{
    AgentStatus, ContactKind, Offer, ProfileEntry, QueueSnapshot, QueuedContact, Router,
};
