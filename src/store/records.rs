//! What is stored.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// Created; the initial delay is running.
    Scheduled,
    /// Routable: waiting for an agent.
    Queued,
    /// Offered to an agent whose phone is ringing.
    Offered,
    /// The customer is being dialled.
    Dialing,
    Connected,
    Failed,
    Expired,
    Stopped,
}

impl CallbackState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Scheduled => "scheduled",
            CallbackState::Queued => "queued",
            CallbackState::Offered => "offered",
            CallbackState::Dialing => "dialing",
            CallbackState::Connected => "connected",
            CallbackState::Failed => "failed",
            CallbackState::Expired => "expired",
            CallbackState::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<CallbackState> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Still owed a call: the scheduler and a restart pick these up.
    pub fn is_pending(self) -> bool {
        Self::PENDING.contains(&self)
    }

    pub const ALL: [CallbackState; 8] = [
        CallbackState::Scheduled,
        CallbackState::Queued,
        CallbackState::Offered,
        CallbackState::Dialing,
        CallbackState::Connected,
        CallbackState::Failed,
        CallbackState::Expired,
        CallbackState::Stopped,
    ];

    pub const PENDING: [CallbackState; 4] = [
        CallbackState::Scheduled,
        CallbackState::Queued,
        CallbackState::Offered,
        CallbackState::Dialing,
    ];
}

/// A callback as a flow asks for it.
#[derive(Debug, Clone)]
pub struct NewCallback {
    pub id: String,
    pub contact_id: String,
    pub initial_contact_id: String,
    pub queue: String,
    /// E.164.
    pub number: String,
    pub initial_start_ms: i64,
    pub created_ms: i64,
    pub not_before_ms: i64,
    pub expires_ms: i64,
    pub max_retries: u32,
    pub retry_interval_s: u64,
    pub attributes: BTreeMap<String, String>,
    /// The queue allows one pending callback per number: a second one is
    /// refused by the database (`StoreError::Duplicate`).
    pub dedupe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackRecord {
    pub id: String,
    pub contact_id: String,
    pub initial_contact_id: String,
    pub queue: String,
    pub number: String,
    pub initial_start_ms: i64,
    pub created_ms: i64,
    pub not_before_ms: i64,
    pub expires_ms: i64,
    pub max_retries: u32,
    pub retry_interval_s: u64,
    pub attempts: u32,
    pub state: CallbackState,
    pub state_ms: i64,
    pub last_outcome: Option<String>,
    pub agent: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub n: u32,
    pub agent: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub outcome: Option<String>,
    pub sip_status: Option<u16>,
}

/// A contact record (SPEC "Operations"): one per contact, inbound call or
/// callback, linked by the initial contact id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContactRecord {
    pub id: String,
    pub initial_contact_id: String,
    /// "inbound" or "callback".
    pub initiation: String,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub customer_number: Option<String>,
    pub dialled: Option<String>,
    pub caller_id_used: Option<String>,
    pub call_id: Option<String>,
    pub initiated_ms: i64,
    pub enqueued_ms: Option<i64>,
    pub connected_ms: Option<i64>,
    pub disconnected_ms: Option<i64>,
    pub disconnect_reason: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::CallbackState;

    /// These strings are in every database on disk: they must not change.
    #[test]
    fn stored_state_names_are_stable_and_unknown_is_none() {
        let names = [
            "scheduled",
            "queued",
            "offered",
            "dialing",
            "connected",
            "failed",
            "expired",
            "stopped",
        ];
        for (state, name) in CallbackState::ALL.into_iter().zip(names) {
            assert_eq!(state.as_str(), name);
            assert_eq!(CallbackState::parse(name), Some(state));
        }
        assert_eq!(CallbackState::parse("ringing"), None);
    }
}
