//! What is stored.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub n: u32,
    pub agent: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub outcome: Option<String>,
    pub sip_status: Option<u16>,
}

/// How a contact began (`ContactRecord::initiation`).
pub mod initiation {
    /// A call to one of the centre's numbers.
    pub const INBOUND: &str = "inbound";
    /// A callback a caller left; its previous contact is the inbound call.
    pub const CALLBACK: &str = "callback";
    /// A callback created through the API (`POST /api/callbacks`); no
    /// call came before it.
    pub const API_CALLBACK: &str = "api";
    /// An offer ringing an agent's phone; its previous contact is the
    /// contact offered (inbound call or callback).
    pub const AGENT_LEG: &str = "agent_leg";
    /// One dial of a callback's customer; its previous contact is the
    /// agent leg that made it.
    pub const DIAL_ATTEMPT: &str = "dial_attempt";
}

/// A contact record (SPEC "Operations"), chained like Amazon Connect's:
/// every record of one customer's journey shares the initial contact id,
/// and `previous_contact_id` points at the record it came from:
/// inbound call → callback → agent leg (each offer) → dial attempt.
///
/// Records are written as the contact progresses; a later write of the
/// same id fills in what it knows and keeps the rest (see `merge`), so a
/// part of the system that knows one milestone (the dispatcher offering,
/// the callback book closing a callback) writes only that.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContactRecord {
    pub id: String,
    pub initial_contact_id: String,
    pub previous_contact_id: Option<String>,
    /// `inbound`, `callback`, `agent_leg` or `dial_attempt`; empty in a
    /// partial update (`ContactRecord::update`).
    pub initiation: String,
    pub queue: Option<String>,
    pub agent: Option<String>,
    /// E.164 when known.
    pub customer_number: Option<String>,
    /// The number the caller dialled (inbound).
    pub dialled: Option<String>,
    pub caller_id_used: Option<String>,
    /// The SIP Call-ID of the contact's call.
    pub call_id: Option<String>,
    /// Dial attempts: 1, 2, … of the callback.
    pub attempt: Option<u32>,
    /// How the call set-up ended: `answered`, `no answer`, `busy`,
    /// `declined`, `failed` (agent legs and dial attempts).
    pub outcome: Option<String>,
    /// The final SIP status of the set-up (agent legs and dial attempts).
    pub sip_status: Option<u16>,
    /// From the INVITE leaving to the answer or giving up, in ms.
    pub ring_ms: Option<i64>,
    pub initiated_ms: i64,
    pub enqueued_ms: Option<i64>,
    /// Last offered to an agent.
    pub offered_ms: Option<i64>,
    /// The call was answered: by callgate (inbound), by the customer
    /// (callback, dial attempt) or by the agent (agent leg).
    pub connected_ms: Option<i64>,
    /// The customer and an agent were put together.
    pub connected_to_agent_ms: Option<i64>,
    pub disconnected_ms: Option<i64>,
    pub disconnect_reason: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

impl ContactRecord {
    /// A partial update of record `id`: set the fields to write, leave the
    /// rest `None` (they keep their stored values).
    pub fn update(id: &str) -> ContactRecord {
        ContactRecord {
            id: id.to_string(),
            ..ContactRecord::default()
        }
    }

    /// A partial update (no initiation): only updates an existing record.
    pub fn is_update(&self) -> bool {
        self.initiation.is_empty()
    }

    /// `newer` written after `self`: what `newer` sets wins, what it leaves
    /// unset keeps `self`'s value.
    pub fn merge(self, newer: ContactRecord) -> ContactRecord {
        let old = self;
        let (id, initial_contact_id, initiation, initiated_ms) = if newer.is_update() {
            (
                old.id,
                old.initial_contact_id,
                old.initiation,
                old.initiated_ms,
            )
        } else {
            (
                newer.id,
                newer.initial_contact_id,
                newer.initiation,
                newer.initiated_ms,
            )
        };
        ContactRecord {
            id,
            initial_contact_id,
            initiation,
            initiated_ms,
            previous_contact_id: newer.previous_contact_id.or(old.previous_contact_id),
            queue: newer.queue.or(old.queue),
            agent: newer.agent.or(old.agent),
            customer_number: newer.customer_number.or(old.customer_number),
            dialled: newer.dialled.or(old.dialled),
            caller_id_used: newer.caller_id_used.or(old.caller_id_used),
            call_id: newer.call_id.or(old.call_id),
            attempt: newer.attempt.or(old.attempt),
            outcome: newer.outcome.or(old.outcome),
            sip_status: newer.sip_status.or(old.sip_status),
            ring_ms: newer.ring_ms.or(old.ring_ms),
            enqueued_ms: newer.enqueued_ms.or(old.enqueued_ms),
            offered_ms: newer.offered_ms.or(old.offered_ms),
            connected_ms: newer.connected_ms.or(old.connected_ms),
            connected_to_agent_ms: newer.connected_to_agent_ms.or(old.connected_to_agent_ms),
            disconnected_ms: newer.disconnected_ms.or(old.disconnected_ms),
            disconnect_reason: newer.disconnect_reason.or(old.disconnect_reason),
            attributes: if newer.attributes.is_empty() {
                old.attributes
            } else {
                newer.attributes
            },
        }
    }
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
