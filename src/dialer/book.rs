//! The callback book: the one place that writes callback state. Each write
//! names a lifecycle event; the table in `lifecycle.rs` says from which
//! states it is legal and where it leads, and the store applies it only if
//! the callback is still in one of those states (a callback stopped while
//! its offer rang is not dialled; one dialled is not stopped).

use super::lifecycle::{Event, sources, target};
use super::scheduler::{self, AfterAttempt, Recovery, RetryPolicy};
use crate::call::uac::DialOutcome;
use crate::phone::DialRules;
use crate::store::{
    self, CallbackRecord, CallbackState, ContactRecord, NewCallback, RecordWriter, Store,
    StoreError,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::{info, warn};

#[derive(Clone)]
pub struct CallbackBook {
    pub(super) store: Arc<dyn Store>,
    policy: RetryPolicy,
    /// The callback's contact record is closed when it finishes without
    /// a conversation (stopped, expired, failed).
    records: RecordWriter,
    /// Bumped by every write: readers (the dashboard) re-read only when
    /// it moved.
    changes: Arc<AtomicU64>,
}

impl CallbackBook {
    pub fn new(store: Arc<dyn Store>, policy: RetryPolicy, records: RecordWriter) -> CallbackBook {
        CallbackBook {
            store,
            policy,
            records,
            changes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many writes so far: changes when any callback does.
    pub fn version(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// After each write: note the change; a callback that ended without
    /// a conversation has its contact record closed.
    pub(super) fn written(&self, rec: CallbackRecord, reason: &str, now: i64) -> CallbackRecord {
        self.changes.fetch_add(1, Ordering::Relaxed);
        if matches!(
            rec.state,
            CallbackState::Stopped | CallbackState::Expired | CallbackState::Failed
        ) {
            self.records.write(ContactRecord {
                disconnected_ms: Some(now),
                disconnect_reason: Some(format!("{}: {reason}", rec.state.as_str())),
                ..ContactRecord::update(&rec.contact_id)
            });
        }
        rec
    }

    /// Runs `f` on the blocking pool (the store fsyncs).
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&CallbackBook) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let book = Arc::new(self.clone());
        store::blocking(&book, f).await
    }

    fn apply(
        &self,
        id: &str,
        event: Event,
        detail: &str,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let rec = self
            .store
            .transition(id, &sources(event), target(event), detail, now)?;
        Ok(self.written(rec, detail, now))
    }

    async fn apply_async(
        &self,
        id: &str,
        event: Event,
        detail: String,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let id = id.to_string();
        self.run(move |b| b.apply(&id, event, &detail, now)).await
    }

    pub async fn create(&self, new: NewCallback) -> Result<CallbackRecord, StoreError> {
        self.run(move |b| {
            let rec = b.store.insert_callback(&new)?;
            Ok(b.written(rec, "created", new.created_ms))
        })
        .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<CallbackRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |b| b.store.callback(&id)).await
    }

    /// Callbacks still owed a call, in line order.
    pub async fn pending(&self) -> Result<Vec<CallbackRecord>, StoreError> {
        self.run(|b| b.store.pending_callbacks()).await
    }

    /// Pending callbacks whose expiry time has come.
    pub async fn expiring(&self, now: i64) -> Result<Vec<CallbackRecord>, StoreError> {
        self.run(move |b| b.store.expiring_callbacks(now)).await
    }

    pub async fn routable(&self, id: &str, now: i64) -> Result<CallbackRecord, StoreError> {
        self.apply_async(id, Event::Routable, "initial delay over".into(), now)
            .await
    }

    pub async fn offer(
        &self,
        id: &str,
        agent: &str,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        self.apply_async(id, Event::Offer, format!("offered to {agent}"), now)
            .await
    }

    /// The offer came to nothing: back to the queue, no attempt used.
    pub async fn unoffer(
        &self,
        id: &str,
        why: &str,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        self.apply_async(id, Event::Unoffer, why.into(), now).await
    }

    /// The number no longer passes the dial rules: failed, never dialled.
    pub async fn refuse(
        &self,
        id: &str,
        why: &str,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        self.apply_async(id, Event::Refuse, format!("not dialled: {why}"), now)
            .await
    }

    /// Graceful shutdown: an offer or dial in flight is called off; the
    /// callback goes back to its queue, the dial not counted.
    pub async fn release(&self, id: &str, now: i64) -> Result<CallbackRecord, StoreError> {
        let id = id.to_string();
        self.run(move |b| {
            let rec = b.store.release(
                &id,
                &sources(Event::Release),
                target(Event::Release),
                "released at shutdown",
                now,
            )?;
            Ok(b.written(rec, "released", now))
        })
        .await
    }

    pub async fn stop(&self, id: &str, now: i64) -> Result<CallbackRecord, StoreError> {
        self.apply_async(id, Event::Stop, "stopped by API".into(), now)
            .await
    }

    pub async fn expire(&self, id: &str, now: i64) -> Result<CallbackRecord, StoreError> {
        self.apply_async(id, Event::Expire, "expired".into(), now)
            .await
    }

    /// The customer is about to be dialled: the attempt is counted first,
    /// so a crash mid-dial can never lead to an uncounted second dial.
    pub async fn begin_attempt(
        &self,
        id: &str,
        agent: &str,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let (id, agent) = (id.to_string(), agent.to_string());
        self.run(move |b| {
            let rec = b
                .store
                .begin_attempt(&id, &agent, &sources(Event::Dial), now)?;
            Ok(b.written(rec, "dialling", now))
        })
        .await
    }

    /// What comes after attempt `rec` (as `begin_attempt` returned it)
    /// ended with `outcome`.
    pub fn decide(&self, rec: &CallbackRecord, outcome: DialOutcome, now: i64) -> AfterAttempt {
        scheduler::after_attempt(rec, outcome, &self.policy, now)
    }

    /// Records how the attempt `rec` ended and what comes next.
    pub async fn end_attempt(
        &self,
        rec: &CallbackRecord,
        outcome: DialOutcome,
        now: i64,
    ) -> Result<(AfterAttempt, CallbackRecord), StoreError> {
        let decision = self.decide(rec, outcome, now);
        let (id, d) = (rec.id.clone(), decision.clone());
        let status = sip_status(outcome);
        let not_before = rec.not_before_ms;
        let updated = self
            .run(move |b| b.write_attempt_end(&id, &d, status, not_before, now))
            .await?;
        Ok((decision, updated))
    }

    /// Records the end of attempt `rec` with a decision made by the
    /// dialer itself (an answering machine), with the call's SIP status.
    pub async fn end_attempt_decided(
        &self,
        rec: &CallbackRecord,
        decision: AfterAttempt,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let id = rec.id.clone();
        let not_before = rec.not_before_ms;
        self.run(move |b| b.write_attempt_end(&id, &decision, Some(200), not_before, now))
            .await
    }

    fn write_attempt_end(
        &self,
        id: &str,
        decision: &AfterAttempt,
        status: Option<u16>,
        not_before: i64,
        now: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let (event, not_before, text) = match decision {
            AfterAttempt::Connected => (Event::Answered, not_before, "connected"),
            AfterAttempt::Retry {
                not_before,
                outcome,
            } => (Event::Retry, *not_before, outcome.as_str()),
            AfterAttempt::Fail { outcome } => (Event::Fail, not_before, outcome.as_str()),
        };
        let rec = self.store.end_attempt(
            id,
            text,
            status,
            &sources(event),
            target(event),
            not_before,
            now,
        )?;
        Ok(self.written(rec, text, now))
    }

    /// At start-up: resolves offers and dials a crash or restart
    /// interrupted (see `scheduler::recover`), expires what is overdue,
    /// fails what today's dial rules refuse (they may be stricter than when
    /// it was stored), and returns the callbacks to put back in their
    /// queues.
    ///
    /// The rules check (≈ 10 µs a number in libphonenumber: a second per
    /// 100,000 callbacks) runs only when the rules differ from the ones
    /// that last checked every pending callback: each one stored since was
    /// checked by the same rules on its way in, and every dial checks
    /// again anyway (`dial.rs`), so skipping it never lets a number through.
    pub fn recover(&self, now: i64, rules: &DialRules) -> Result<Vec<CallbackRecord>, StoreError> {
        let found = self.recover_interrupted(now)?;
        let fingerprint = rules_fingerprint(rules);
        if self.store.setting(RULES_CHECKED)?.as_deref() == Some(fingerprint.as_str()) {
            return Ok(found);
        }
        let allowed = self.allowed(found, now, rules)?;
        self.store.set_setting(RULES_CHECKED, &fingerprint)?;
        Ok(allowed)
    }

    /// The callbacks today's dial rules allow; the others fail.
    pub(super) fn allowed(
        &self,
        found: Vec<CallbackRecord>,
        now: i64,
        rules: &DialRules,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        let mut routable = Vec::new();
        for cb in found {
            match rules.check(&cb.number) {
                Ok(()) => routable.push(cb),
                Err(e) => {
                    warn!(callback = %cb.id, reason = %e, "callback refused by the dial rules: failed");
                    self.apply(&cb.id, Event::Refuse, &refused(&e.to_string()), now)?;
                }
            }
        }
        Ok(routable)
    }

    fn recover_interrupted(&self, now: i64) -> Result<Vec<CallbackRecord>, StoreError> {
        let mut routable = Vec::new();
        for cb in self.store.pending_callbacks()? {
            if let Some(rec) = self.resume(cb, now, false, "a restart")? {
                routable.push(rec);
            }
        }
        Ok(routable)
    }

    /// Resolves one callback found pending by a node that did not have it
    /// a moment ago (at start-up, or claimed from a node that died) and
    /// returns it if it goes back in line. `due`: a scheduled one whose
    /// delay is over is made routable here (a claim only takes due ones).
    pub(super) fn resume(
        &self,
        cb: CallbackRecord,
        now: i64,
        due: bool,
        cause: &str,
    ) -> Result<Option<CallbackRecord>, StoreError> {
        Ok(match scheduler::recover(&cb, &self.policy, now) {
            Recovery::Expire => {
                self.apply(
                    &cb.id,
                    Event::Expire,
                    &format!("expired (found after {cause})"),
                    now,
                )?;
                None
            }
            Recovery::Requeue if due && cb.state == CallbackState::Scheduled => {
                Some(self.apply(&cb.id, Event::Routable, "initial delay over", now)?)
            }
            Recovery::Requeue => Some(cb),
            Recovery::OfferInterrupted => Some(self.apply(
                &cb.id,
                Event::Unoffer,
                &format!("offer interrupted by {cause}"),
                now,
            )?),
            Recovery::DialInterrupted(decision) => {
                let rec = self.write_attempt_end(
                    &cb.id,
                    &interrupted(decision, cause),
                    None,
                    cb.not_before_ms,
                    now,
                )?;
                if rec.state == CallbackState::Queued {
                    info!(callback = %rec.id, attempts = rec.attempts, cause, "dial interrupted: counted as an attempt");
                    Some(rec)
                } else {
                    None
                }
            }
        })
    }
}

/// The setting naming the dial rules that last checked every pending
/// callback.
const RULES_CHECKED: &str = "dial_rules_checked";

/// The rules as checked: their settings and the libphonenumber metadata
/// (which comes with callgate's version).
fn rules_fingerprint(rules: &DialRules) -> String {
    format!("callgate {} {rules:?}", env!("CARGO_PKG_VERSION"))
}

fn refused(why: &str) -> String {
    format!("refused by the dial rules: {why}")
}

/// A dial cut by a restart (or its node's death): the customer's phone
/// may have rung, so it counts; described as what it was.
fn interrupted(decision: AfterAttempt, cause: &str) -> AfterAttempt {
    let outcome = format!("interrupted by {cause}");
    match decision {
        AfterAttempt::Retry { not_before, .. } => AfterAttempt::Retry {
            not_before,
            outcome,
        },
        _ => AfterAttempt::Fail { outcome },
    }
}

/// How a dial ended, in a contact record's words.
pub fn outcome_name(o: DialOutcome) -> &'static str {
    match o {
        DialOutcome::Answered => "answered",
        DialOutcome::NoAnswer(_) => "no answer",
        DialOutcome::Failed(486 | 600) => "busy",
        DialOutcome::Failed(603) => "declined",
        DialOutcome::Failed(_) => "failed",
        DialOutcome::Cancelled => "cancelled",
    }
}

/// The final SIP status of a dial, when there was one.
pub fn sip_status(o: DialOutcome) -> Option<u16> {
    match o {
        DialOutcome::Answered => Some(200),
        DialOutcome::NoAnswer(s) | DialOutcome::Failed(s) => Some(s),
        DialOutcome::Cancelled => None,
    }
}
