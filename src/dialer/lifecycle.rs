//! The callback lifecycle, as a table: which event may move a callback
//! from which state to which. Every write of a callback's state goes
//! through here (`book.rs` asks the table before it asks the database),
//! so an illegal move — dialling a stopped callback, stopping one mid-dial,
//! offering a connected one — is a typed error, not a silent overwrite.
//!
//! ```text
//! scheduled ─routable→ queued ─offer→ offered ─dial→ dialing ─answered→ connected
//!     │  └────────offer────────────↗  │ │ ↑ unoffer  │ └─fail→ failed
//!     │                               │ └─┘          └─retry→ queued
//!     │                               └─refuse→ failed (number no longer allowed;
//!     │                                  also from scheduled | queued, at start-up)
//!     ├─expire→ expired   (from scheduled | queued)
//!     └─stop→ stopped     (from scheduled | queued | offered)
//! offered | dialing ─release→ queued   (graceful shutdown; the dial not counted)
//! ```

use crate::store::CallbackState;

/// What happens to a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The initial delay is over.
    Routable,
    /// An agent's phone rings with it.
    Offer,
    /// The offer came to nothing (missed, declined, the agent hung up
    /// before the customer was dialled, or a restart interrupted it): no
    /// attempt was used.
    Unoffer,
    /// The customer is being dialled: an attempt is counted.
    Dial,
    /// The number no longer passes the dial rules (checked at start-up and
    /// before each dial): failed, never dialled.
    Refuse,
    /// The customer answered.
    Answered,
    /// Ring-no-answer (or a retryable status) with attempts left.
    Retry,
    /// A final failure, or no attempts left.
    Fail,
    Expire,
    /// StopContact.
    Stop,
    /// Graceful shutdown: an offer or a dial in flight is called off and
    /// the callback goes back to its queue; a dial so cut short is not
    /// counted as an attempt.
    Release,
}

use CallbackState as S;
use Event as E;

/// Every legal move. Each event has one target state.
const TABLE: &[(S, E, S)] = &[
    (S::Scheduled, E::Routable, S::Queued),
    (S::Scheduled, E::Offer, S::Offered),
    (S::Queued, E::Offer, S::Offered),
    (S::Offered, E::Unoffer, S::Queued),
    (S::Offered, E::Dial, S::Dialing),
    (S::Scheduled, E::Refuse, S::Failed),
    (S::Queued, E::Refuse, S::Failed),
    (S::Offered, E::Refuse, S::Failed),
    (S::Dialing, E::Answered, S::Connected),
    (S::Dialing, E::Retry, S::Queued),
    (S::Dialing, E::Fail, S::Failed),
    (S::Scheduled, E::Expire, S::Expired),
    (S::Queued, E::Expire, S::Expired),
    (S::Scheduled, E::Stop, S::Stopped),
    (S::Queued, E::Stop, S::Stopped),
    (S::Offered, E::Stop, S::Stopped),
    (S::Offered, E::Release, S::Queued),
    (S::Dialing, E::Release, S::Queued),
];

/// What the table says of an event it has no row for. At run time the
/// same refusal comes from the conditional write (`StoreError::WrongState`:
/// the callback was not in one of `sources(event)`); this is the table's
/// own answer, which the tests check row by row.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} callback cannot take {event:?}", from.as_str())]
pub struct IllegalTransition {
    pub from: CallbackState,
    pub event: Event,
}

/// The state `event` moves a `from` callback to.
#[cfg(test)]
pub fn next(from: CallbackState, event: Event) -> Result<CallbackState, IllegalTransition> {
    TABLE
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
        .ok_or(IllegalTransition { from, event })
}

/// The states `event` is legal from (for a conditional write).
pub fn sources(event: Event) -> Vec<CallbackState> {
    TABLE
        .iter()
        .filter(|(_, e, _)| *e == event)
        .map(|(f, _, _)| *f)
        .collect()
}

/// Where `event` leads.
pub fn target(event: Event) -> CallbackState {
    TABLE
        .iter()
        .find(|(_, e, _)| *e == event)
        .map(|(_, _, to)| *to)
        .unwrap_or(CallbackState::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [Event; 11] = [
        E::Release,
        E::Routable,
        E::Offer,
        E::Unoffer,
        E::Dial,
        E::Refuse,
        E::Answered,
        E::Retry,
        E::Fail,
        E::Expire,
        E::Stop,
    ];

    #[test]
    fn the_happy_path_and_a_retry() {
        let mut s = S::Scheduled;
        for e in [
            E::Routable,
            E::Offer,
            E::Dial,
            E::Retry,
            E::Offer,
            E::Dial,
            E::Answered,
        ] {
            s = next(s, e).unwrap_or_else(|err| panic!("{err}"));
        }
        assert_eq!(s, S::Connected);
    }

    #[test]
    fn illegal_moves_are_typed_errors() {
        assert_eq!(
            next(S::Stopped, E::Offer),
            Err(IllegalTransition {
                from: S::Stopped,
                event: E::Offer
            }),
            "a stopped callback is never offered again"
        );
        assert!(
            next(S::Queued, E::Dial).is_err(),
            "only an accepted offer dials"
        );
        assert!(
            next(S::Dialing, E::Stop).is_err(),
            "a dial in flight ends on its own"
        );
        assert!(
            next(S::Dialing, E::Expire).is_err(),
            "nor does it expire mid-dial"
        );
        assert!(next(S::Offered, E::Routable).is_err());
        assert_eq!(
            next(S::Connected, E::Retry).unwrap_err().to_string(),
            "a connected callback cannot take Retry"
        );
    }

    #[test]
    fn finished_states_are_final_and_pending_ones_can_finish() {
        for s in CallbackState::ALL {
            let exits: Vec<Event> = EVENTS.into_iter().filter(|e| next(s, *e).is_ok()).collect();
            if s.is_pending() {
                assert!(
                    exits.iter().any(|e| !target(*e).is_pending()) || s == S::Offered,
                    "{s:?} can never finish"
                );
                assert!(!exits.is_empty(), "{s:?} is stuck");
            } else {
                assert!(exits.is_empty(), "{s:?} is final but takes {exits:?}");
            }
        }
    }

    #[test]
    fn each_event_has_one_target_and_its_sources() {
        for e in EVENTS {
            let t = target(e);
            for s in sources(e) {
                assert_eq!(next(s, e), Ok(t), "{s:?} {e:?}");
            }
            assert!(!sources(e).is_empty(), "{e:?} is never legal");
        }
        assert_eq!(sources(E::Stop), [S::Scheduled, S::Queued, S::Offered]);
    }
}
