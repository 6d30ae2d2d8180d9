//! Callback decisions, sans-IO: what happens after a dial attempt, when a
//! callback becomes routable or expires, and how callbacks found in the
//! database at start-up are resumed. Plain functions of a record, an
//! outcome and the time.

use crate::call::uac::DialOutcome;
use crate::store::{CallbackRecord, CallbackState};

pub type Ms = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Statuses that count as "no answer" besides the built-in 408, 480
    /// and 487 (e.g. 486 if an operator wants busy retried).
    pub retry_statuses: Vec<u16>,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    Connected,
    /// Back to the queue, same place, not before this time.
    Retry {
        not_before: Ms,
        outcome: String,
    },
    Fail {
        outcome: String,
    },
}

/// RFC-ish names of outcomes, as stored.
pub fn outcome_name(o: DialOutcome) -> String {
    match o {
        DialOutcome::Answered => "answered".into(),
        DialOutcome::NoAnswer(s) => format!("no answer ({s})"),
        DialOutcome::Failed(486) | DialOutcome::Failed(600) => "busy".into(),
        DialOutcome::Failed(s) => format!("failed ({s})"),
        DialOutcome::Cancelled => "abandoned".into(),
    }
}

/// `rec.attempts` already counts the attempt that just ended. "Maximum
/// retries 2" means at most three dials: retry while attempts ≤ 2.
pub fn after_attempt(
    rec: &CallbackRecord,
    outcome: DialOutcome,
    policy: &RetryPolicy,
    now: Ms,
) -> AfterAttempt {
    let name = outcome_name(outcome);
    let retryable = match outcome {
        DialOutcome::Answered => return AfterAttempt::Connected,
        DialOutcome::NoAnswer(_) | DialOutcome::Cancelled => true,
        DialOutcome::Failed(s) => policy.retry_statuses.contains(&s),
    };
    if !retryable {
        return AfterAttempt::Fail { outcome: name };
    }
    if rec.attempts <= rec.max_retries && now < rec.expires_ms {
        AfterAttempt::Retry {
            not_before: now + (rec.retry_interval_s as i64) * 1000,
            outcome: name,
        }
    } else {
        AfterAttempt::Fail {
            outcome: format!("{name}, {} attempts", rec.attempts),
        }
    }
}

/// An answering machine took the call and the queue retries such calls:
/// like a ring-no-answer, retried after the interval while attempts (and
/// the expiry) allow.
pub fn after_machine(rec: &CallbackRecord, now: Ms) -> AfterAttempt {
    let name = "answering machine";
    if rec.attempts <= rec.max_retries && now < rec.expires_ms {
        AfterAttempt::Retry {
            not_before: now + (rec.retry_interval_s as i64) * 1000,
            outcome: name.into(),
        }
    } else {
        AfterAttempt::Fail {
            outcome: format!("{name}, {} attempts", rec.attempts),
        }
    }
}

/// A pending callback whose expiry has passed and which is not in the
/// middle of an offer or a dial.
pub fn is_expired(rec: &CallbackRecord, now: Ms) -> bool {
    matches!(rec.state, CallbackState::Scheduled | CallbackState::Queued) && now >= rec.expires_ms
}

/// How a callback found pending at start-up resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Put it back in its queue as it was.
    Requeue,
    /// An agent was being offered it when we stopped: no attempt was used;
    /// back to the queue.
    OfferInterrupted,
    /// A dial was in flight. The customer's phone may have rung, so it
    /// counts as an attempt (never dialled twice at once), and the next
    /// one waits the retry interval like after a no-answer.
    DialInterrupted(AfterAttempt),
    Expire,
}

pub fn recover(rec: &CallbackRecord, policy: &RetryPolicy, now: Ms) -> Recovery {
    match rec.state {
        CallbackState::Dialing => {
            Recovery::DialInterrupted(after_attempt(rec, DialOutcome::NoAnswer(0), policy, now))
        }
        _ if now >= rec.expires_ms => Recovery::Expire,
        CallbackState::Offered => Recovery::OfferInterrupted,
        _ => Recovery::Requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rec(attempts: u32, max_retries: u32, state: CallbackState) -> CallbackRecord {
        CallbackRecord {
            id: "cb".into(),
            contact_id: "c".into(),
            initial_contact_id: "i".into(),
            queue: "q".into(),
            number: "+12015550123".into(),
            initial_start_ms: 0,
            created_ms: 0,
            not_before_ms: 0,
            expires_ms: 7 * 86_400_000,
            max_retries,
            retry_interval_s: 600,
            attempts,
            state,
            state_ms: 0,
            last_outcome: None,
            agent: None,
            attributes: BTreeMap::new(),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            retry_statuses: vec![],
        }
    }

    #[test]
    fn max_retries_two_means_three_dials() {
        let now = 1_000_000;
        for attempts in 1..=2 {
            assert_eq!(
                after_attempt(
                    &rec(attempts, 2, CallbackState::Dialing),
                    DialOutcome::NoAnswer(487),
                    &policy(),
                    now
                ),
                AfterAttempt::Retry {
                    not_before: now + 600_000,
                    outcome: "no answer (487)".into()
                }
            );
        }
        assert!(matches!(
            after_attempt(
                &rec(3, 2, CallbackState::Dialing),
                DialOutcome::NoAnswer(480),
                &policy(),
                now
            ),
            AfterAttempt::Fail { .. }
        ));
        assert!(matches!(
            after_attempt(
                &rec(2, 1, CallbackState::Dialing),
                DialOutcome::NoAnswer(408),
                &policy(),
                now
            ),
            AfterAttempt::Fail { .. }
        ));
    }

    #[test]
    fn busy_and_rejections_are_final_unless_configured() {
        let r = rec(1, 2, CallbackState::Dialing);
        assert_eq!(
            after_attempt(&r, DialOutcome::Failed(486), &policy(), 0),
            AfterAttempt::Fail {
                outcome: "busy".into()
            }
        );
        assert!(matches!(
            after_attempt(&r, DialOutcome::Failed(404), &policy(), 0),
            AfterAttempt::Fail { .. }
        ));
        let lenient = RetryPolicy {
            retry_statuses: vec![486],
        };
        assert!(matches!(
            after_attempt(&r, DialOutcome::Failed(486), &lenient, 0),
            AfterAttempt::Retry { .. }
        ));
        assert_eq!(
            after_attempt(&r, DialOutcome::Answered, &policy(), 0),
            AfterAttempt::Connected
        );
    }

    #[test]
    fn a_machine_is_retried_like_no_answer() {
        assert_eq!(
            after_machine(&rec(1, 2, CallbackState::Dialing), 5),
            AfterAttempt::Retry {
                not_before: 600_005,
                outcome: "answering machine".into()
            }
        );
        assert!(matches!(
            after_machine(&rec(3, 2, CallbackState::Dialing), 5),
            AfterAttempt::Fail { .. }
        ));
    }

    #[test]
    fn no_retry_past_expiry() {
        let r = rec(1, 5, CallbackState::Dialing);
        assert!(matches!(
            after_attempt(&r, DialOutcome::NoAnswer(487), &policy(), r.expires_ms),
            AfterAttempt::Fail { .. }
        ));
    }

    #[test]
    fn expiry_and_recovery() {
        let q = rec(0, 2, CallbackState::Queued);
        assert!(!is_expired(&q, q.expires_ms - 1));
        assert!(is_expired(&q, q.expires_ms));
        assert!(
            !is_expired(&rec(0, 2, CallbackState::Dialing), q.expires_ms),
            "not while dialling"
        );
        assert_eq!(recover(&q, &policy(), 0), Recovery::Requeue);
        assert_eq!(
            recover(&rec(0, 2, CallbackState::Offered), &policy(), 0),
            Recovery::OfferInterrupted
        );
        assert_eq!(recover(&q, &policy(), q.expires_ms), Recovery::Expire);
        assert!(matches!(
            recover(&rec(1, 2, CallbackState::Dialing), &policy(), 5),
            Recovery::DialInterrupted(AfterAttempt::Retry {
                not_before: 600_005,
                ..
            })
        ));
        assert!(matches!(
            recover(&rec(3, 2, CallbackState::Dialing), &policy(), 5),
            Recovery::DialInterrupted(AfterAttempt::Fail { .. })
        ));
    }
}
