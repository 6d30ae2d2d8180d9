//! Queues, routing profiles and agents: the contact centre's brain.

pub mod hours;
pub mod router;

pub use router::{
    AgentStatus, ContactKind, Offer, ProfileEntry, QueueSnapshot, QueuedContact, Router,
};
