//! What a flow may ask of the contact centre while it runs: read-only
//! lookups answered at once (queue metrics, prompts, dial rules, other
//! flows), and the one request that takes time (creating a callback),
//! which the engine emits as an action and gets back as an input.

use super::context::Contact;
use super::load::Flow;
use super::model::Metric;
use crate::media::prompt::{Prompt, PromptLibrary};
use crate::media::tones::Tone;
use crate::phone::DialRules;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The contact centre as a running flow sees it. Every method answers
/// from memory: no I/O, no clock of its own (`wall` is the engine's time).
pub trait FlowEnv {
    fn metrics(&self, queue: &str, contact: &Contact, wall: SystemTime) -> QueueMetrics;
    fn queue_full(&self, queue: &str) -> bool;
    fn dial_rules(&self) -> &DialRules;
    fn prompts(&self) -> &PromptLibrary;
    fn tone(&self, tone: Tone) -> Arc<Prompt>;
    /// Another flow, for Transfer to flow.
    fn flow(&self, name: &str) -> Option<Arc<Flow>>;
    /// When the queue's callbacks may be dialled, in its time zone.
    fn callback_hours(&self, queue: &str) -> crate::routing::hours::Hours;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueMetrics {
    pub contacts_in_queue: u64,
    pub callbacks_in_queue: u64,
    pub oldest_age_s: u64,
    pub position: u64,
    pub estimated_wait_s: u64,
    pub agents_available: u64,
    pub agents_online: u64,
    pub open: bool,
}

impl QueueMetrics {
    pub fn get(&self, m: Metric) -> u64 {
        match m {
            Metric::ContactsInQueue => self.contacts_in_queue,
            Metric::CallbacksInQueue => self.callbacks_in_queue,
            Metric::OldestContactAgeS => self.oldest_age_s,
            Metric::Position => self.position,
            Metric::EstimatedWaitS => self.estimated_wait_s,
            Metric::AgentsAvailable => self.agents_available,
            Metric::AgentsOnline => self.agents_online,
            Metric::Open => u64::from(self.open),
        }
    }
}

/// What a Transfer to queue block in callback mode asks for.
#[derive(Debug, Clone)]
pub struct CallbackRequest {
    pub contact: Contact,
    pub queue: String,
    pub number: String,
    pub initial_delay: Duration,
    pub max_retries: u32,
    pub retry_interval: Duration,
    /// A time the caller chose (Schedule callback); the initial delay
    /// still applies.
    pub not_before: Option<SystemTime>,
}

/// Why a callback was not created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefusal {
    #[error("the queue is at capacity")]
    AtCapacity,
    #[error("a callback for this number is already pending")]
    Duplicate,
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    #[error("number not allowed: {0}")]
    NotAllowed(String),
    #[error("{0}")]
    Failed(String),
}
