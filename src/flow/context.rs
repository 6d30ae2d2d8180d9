//! The contact a flow works on: identity, timing and attributes, carried
//! from the inbound call into the queue, the callback and its records.

use std::collections::BTreeMap;
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    /// The first contact of the chain (a callback created from a call
    /// keeps the call's id here).
    pub initial_id: String,
    /// When the original call arrived: the contact's place in line.
    pub initial_start: SystemTime,
    /// The caller's own number (ANI), normalised to E.164 when possible.
    pub caller_number: Option<String>,
    pub dialled: String,
    pub attributes: BTreeMap<String, String>,
    pub working_queue: Option<String>,
    pub callback_number: Option<String>,
    /// When the caller asked to be called back (Schedule callback); None:
    /// as soon as possible.
    pub callback_not_before: Option<SystemTime>,
}

impl Contact {
    pub fn new_inbound(dialled: &str, caller_number: Option<String>) -> Contact {
        let id = uuid::Uuid::new_v4().to_string();
        Contact {
            initial_id: id.clone(),
            id,
            initial_start: SystemTime::now(),
            caller_number,
            dialled: dialled.to_string(),
            attributes: BTreeMap::new(),
            working_queue: None,
            callback_number: None,
            callback_not_before: None,
        }
    }

    pub fn waited_secs(&self, now: SystemTime) -> u64 {
        now.duration_since(self.initial_start)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Milliseconds since the Unix epoch (how times are stored).
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn from_epoch_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}
