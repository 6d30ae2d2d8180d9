//! The contact centre at run time: routes contacts to agents (the router),
//! keeps callbacks durable (the store), and ties calls together: a caller
//! waiting in a queue, an agent's phone being offered a contact, a
//! customer being called back.

pub mod dispatch;
pub mod inbound;
pub mod offer;

use crate::call::SipHandle;
use crate::config::{Config, QueueConfig};
use crate::dialer::scheduler::{self, Recovery, RetryPolicy};
use crate::flow::engine::{CallbackRefusal, CallbackRequest, QueueMetrics};
use crate::flow::{Contact, ContactCenter, FlowSet};
use crate::media::engine::MediaEngine;
use crate::media::leg::LegLink;
use crate::phone::DialRules;
use crate::registrar::Bindings;
use crate::routing::{ContactKind, ProfileEntry, QueuedContact, Router};
use crate::store::{CallbackState, ContactRecord, NewCallback, Store, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{info, warn};

pub fn now_ms() -> i64 {
    crate::flow::context::epoch_ms(SystemTime::now())
}

/// Between a caller waiting in a queue and the agent side that takes it.
pub enum QueueSignal {
    /// An agent answered: reply with the caller's media leg (to bridge) and
    /// where to tell the caller side that the agent hung up.
    Connect {
        agent: String,
        agent_events: mpsc::UnboundedSender<BridgeEvent>,
        reply: oneshot::Sender<Option<(LegLink, mpsc::UnboundedSender<BridgeEvent>)>>,
    },
}

/// Between the two sides of a bridged call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEvent {
    HungUp,
}

pub struct Centre {
    pub config: Arc<Config>,
    pub media: Arc<MediaEngine>,
    pub sip: SipHandle,
    pub bindings: Bindings,
    pub store: Arc<dyn Store>,
    pub flows: FlowSet,
    pub router: Mutex<Router>,
    pub queues: HashMap<String, QueueConfig>,
    pub dial_rules: DialRules,
    pub country: Option<phonenumber::country::Id>,
    pub retry: RetryPolicy,
    /// Voice contacts waiting in a queue, by contact id.
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<QueueSignal>>>,
    /// Offers ringing an agent, by contact id: firing cancels the offer.
    offers: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// Wakes the dispatcher.
    pub wake: Notify,
}

impl Centre {
    pub fn new(
        config: Arc<Config>,
        media: Arc<MediaEngine>,
        sip: SipHandle,
        bindings: Bindings,
        store: Arc<dyn Store>,
        flows: FlowSet,
    ) -> Centre {
        let now = now_ms();
        let mut router = Router::new(match config.routing.missed_available_after_s {
            0 => None,
            s => Some((s as i64) * 1000),
        });
        for q in &config.queues {
            router.add_queue(&q.name, q.max_contacts);
        }
        for p in &config.routing_profiles {
            router.add_profile(
                &p.name,
                p.queues
                    .iter()
                    .map(|e| ProfileEntry {
                        queue: e.queue.clone(),
                        priority: e.priority,
                        delay_ms: (e.delay_s as i64) * 1000,
                    })
                    .collect(),
            );
        }
        for a in &config.agents {
            router.add_agent(
                &a.user,
                a.routing_profile.as_deref(),
                (a.after_contact_work_s as i64) * 1000,
                now,
            );
        }
        Centre {
            queues: config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.clone()))
                .collect(),
            dial_rules: DialRules::from_config(&config.dialer),
            country: crate::phone::country(&config.dialer.country),
            retry: RetryPolicy {
                retry_statuses: config.dialer.retry_statuses.clone(),
            },
            config,
            media,
            sip,
            bindings,
            store,
            flows,
            router: Mutex::new(router),
            waiting: Mutex::new(HashMap::new()),
            offers: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        }
    }

    /// Runs a store operation on the blocking pool (SQLite fsyncs).
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Records a contact (best effort: a failed write is logged, the call
    /// goes on).
    pub async fn record(&self, c: ContactRecord) {
        if let Err(e) = self.db(move |s| s.upsert_contact(&c)).await {
            warn!(error = %e, "could not write a contact record");
        }
    }

    /// Puts callbacks found in the database back in their queues, resolving
    /// offers and dials a crash interrupted (see `scheduler::recover`).
    pub fn restore_callbacks(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let pending = self.store.pending_callbacks()?;
        let mut restored = 0;
        for cb in pending {
            let (rec, detail) = match scheduler::recover(&cb, &self.retry, now) {
                Recovery::Expire => {
                    self.store.transition(
                        &cb.id,
                        &CallbackState::PENDING,
                        CallbackState::Expired,
                        "expired (found at start-up)",
                        now,
                    )?;
                    continue;
                }
                Recovery::Requeue => (cb, None),
                Recovery::OfferInterrupted => {
                    let r = self.store.transition(
                        &cb.id,
                        &[CallbackState::Offered],
                        CallbackState::Queued,
                        "offer interrupted by a restart",
                        now,
                    )?;
                    (r, None)
                }
                Recovery::DialInterrupted(decision) => match decision {
                    scheduler::AfterAttempt::Retry { not_before, .. } => {
                        let r = self.store.end_attempt(
                            &cb.id,
                            "interrupted by a restart",
                            None,
                            CallbackState::Queued,
                            not_before,
                            now,
                        )?;
                        (r, Some("dial interrupted: counted as an attempt"))
                    }
                    scheduler::AfterAttempt::Fail { .. } | scheduler::AfterAttempt::Connected => {
                        self.store.end_attempt(
                            &cb.id,
                            "interrupted by a restart",
                            None,
                            CallbackState::Failed,
                            cb.not_before_ms,
                            now,
                        )?;
                        continue;
                    }
                },
            };
            if let Some(d) = detail {
                info!(callback = %rec.id, attempts = rec.attempts, "{d}");
            }
            // The dial rules may be stricter than when this callback was
            // stored: one they now refuse is never dialled.
            if let Err(e) = self.dial_rules.check(&rec.number) {
                warn!(callback = %rec.id, reason = %e, "callback refused by the dial rules: failed");
                self.store.transition(
                    &rec.id,
                    &CallbackState::PENDING,
                    CallbackState::Failed,
                    &format!("refused by the dial rules: {e}"),
                    now,
                )?;
                continue;
            }
            let qc = QueuedContact {
                id: rec.id.clone(),
                queue: rec.queue.clone(),
                kind: ContactKind::Callback,
                initial_start: rec.initial_start_ms,
                enqueued: rec.created_ms,
                eligible: rec.not_before_ms,
                offered_to: None,
            };
            match self.router.lock().restore(qc) {
                Ok(()) => restored += 1,
                Err(e) => {
                    warn!(callback = %rec.id, queue = %rec.queue, error = %e, "callback not restored")
                }
            }
        }
        Ok(restored)
    }

    pub fn register_waiting(&self, contact: &str, tx: mpsc::UnboundedSender<QueueSignal>) {
        self.waiting.lock().insert(contact.to_string(), tx);
    }

    pub fn take_waiting(&self, contact: &str) -> Option<mpsc::UnboundedSender<QueueSignal>> {
        self.waiting.lock().remove(contact)
    }

    pub fn register_offer(&self, contact: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.offers.lock().insert(contact.to_string(), tx);
        rx
    }

    pub fn end_offer(&self, contact: &str) {
        self.offers.lock().remove(contact);
    }

    /// Cancels the offer of `contact` ringing an agent, if any.
    pub fn cancel_offer(&self, contact: &str) {
        if let Some(tx) = self.offers.lock().remove(contact) {
            let _ = tx.send(());
        }
    }

    /// A contact leaves its queue (caller hung up, callback stopped or
    /// expired); a ringing offer for it is cancelled.
    pub fn withdraw(&self, contact: &str) {
        self.take_waiting(contact);
        self.router.lock().remove(contact, now_ms());
        self.cancel_offer(contact);
        self.wake.notify_one();
    }

    /// Stops a pending callback (the StopContact operation).
    pub async fn stop_callback(&self, id: &str) -> Result<(), StoreError> {
        let id_owned = id.to_string();
        let now = now_ms();
        // Only callbacks not being dialled can be stopped; one being dialled
        // ends on its own.
        self.db(move |s| {
            s.transition(
                &id_owned,
                &[
                    CallbackState::Scheduled,
                    CallbackState::Queued,
                    CallbackState::Offered,
                ],
                CallbackState::Stopped,
                "stopped by API",
                now,
            )
        })
        .await?;
        self.withdraw(id);
        info!(callback = %id, "callback stopped");
        Ok(())
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.get(name)
    }

    /// Within the queue's hours of operation (always, without hours).
    pub fn is_open(&self, queue: &str) -> bool {
        let Some(q) = self.queue(queue) else {
            return false;
        };
        let spans = q
            .hours
            .iter()
            .filter_map(|h| crate::routing::hours::Span::parse(h).ok())
            .collect();
        crate::routing::hours::Hours::new(spans, q.utc_offset_minutes).is_open(SystemTime::now())
    }

    /// Runs a flow on a call's session, with this centre's services.
    pub async fn run_flow(
        &self,
        flow: &crate::flow::Flow,
        io: &mut crate::call::Session,
        contact: &mut Contact,
        whisper: bool,
    ) -> crate::flow::Outcome {
        let mut run = crate::flow::FlowRun {
            flow,
            io,
            cc: self,
            prompts: &self.media.prompts,
            tones: &self.media.tones,
            flows: Some(&self.flows),
            contact,
        };
        if whisper {
            run.run_whisper().await
        } else {
            run.run().await
        }
    }

    /// The queue's hold music (empty when it has none loaded).
    pub fn hold_music(&self, queue: &str) -> Vec<std::sync::Arc<crate::media::prompt::Prompt>> {
        self.queue(queue)
            .and_then(|q| self.media.prompts.get(&q.hold_music))
            .map(|p| vec![p])
            .unwrap_or_default()
    }
}

impl ContactCenter for Centre {
    fn metrics(&self, queue: &str, contact: &Contact) -> QueueMetrics {
        let now = now_ms();
        let r = self.router.lock();
        let s = r.snapshot(queue, now);
        let start = crate::flow::context::epoch_ms(contact.initial_start);
        let position = r.position(queue, start, &contact.id) as u64;
        let oldest_age_s = s
            .oldest_initial_start
            .map(|o| ((now - o).max(0) / 1000) as u64)
            .unwrap_or(0);
        // A simple estimate: position × (2 minutes per contact / agents).
        let per = 120 / (s.agents_online.max(1) as u64);
        QueueMetrics {
            contacts_in_queue: s.contacts as u64,
            callbacks_in_queue: (s.callbacks_waiting + s.callbacks_scheduled) as u64,
            oldest_age_s,
            position,
            estimated_wait_s: position * per,
            agents_available: s.agents_available as u64,
            agents_online: s.agents_online as u64,
            open: self.is_open(queue),
        }
    }

    fn queue_full(&self, queue: &str) -> bool {
        self.router.lock().is_full(queue)
    }

    fn dial_rules(&self) -> &DialRules {
        &self.dial_rules
    }

    fn default_country(&self) -> Option<phonenumber::country::Id> {
        self.country
    }

    async fn create_callback(&self, req: CallbackRequest) -> Result<String, CallbackRefusal> {
        let Some(q) = self.queue(&req.queue) else {
            return Err(CallbackRefusal::Failed(format!(
                "unknown queue {}",
                req.queue
            )));
        };
        self.dial_rules
            .check(&req.number)
            .map_err(|e| CallbackRefusal::NotAllowed(e.to_string()))?;
        if q.dedupe_callbacks {
            let (queue, number) = (req.queue.clone(), req.number.clone());
            let n = self
                .db(move |s| s.pending_for_number(&queue, &number))
                .await
                .map_err(|e| CallbackRefusal::Failed(e.to_string()))?;
            if n > 0 {
                info!(number = %req.number, queue = %req.queue, "callback already pending for this number");
                return Err(CallbackRefusal::Duplicate);
            }
        }
        if self.router.lock().is_full(&req.queue) {
            return Err(CallbackRefusal::AtCapacity);
        }
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let initial_start_ms = crate::flow::context::epoch_ms(req.contact.initial_start);
        let new = NewCallback {
            id: id.clone(),
            contact_id: id.clone(),
            initial_contact_id: req.contact.initial_id.clone(),
            queue: req.queue.clone(),
            number: req.number.clone(),
            initial_start_ms,
            created_ms: now,
            not_before_ms: now + req.initial_delay.as_millis() as i64,
            expires_ms: now + (self.config.dialer.expiry_s as i64) * 1000,
            max_retries: req.max_retries,
            retry_interval_s: req.retry_interval.as_secs(),
            attributes: req.contact.attributes.clone(),
        };
        let rec = self
            .db(move |s| s.create_callback(&new))
            .await
            .map_err(|e| CallbackRefusal::Failed(e.to_string()))?;
        let qc = QueuedContact {
            id: rec.id.clone(),
            queue: rec.queue.clone(),
            kind: ContactKind::Callback,
            initial_start: rec.initial_start_ms,
            enqueued: now,
            eligible: rec.not_before_ms,
            offered_to: None,
        };
        // Stored first, so it is never lost; then routable.
        if let Err(e) = self.router.lock().restore(qc) {
            warn!(error = %e, "callback stored but not queued");
        }
        self.record(ContactRecord {
            id: rec.id.clone(),
            initial_contact_id: rec.initial_contact_id.clone(),
            initiation: "callback".into(),
            queue: Some(rec.queue.clone()),
            customer_number: Some(rec.number.clone()),
            caller_id_used: q.caller_id_number.clone(),
            initiated_ms: now,
            enqueued_ms: Some(now),
            attributes: rec.attributes.clone(),
            ..ContactRecord::default()
        })
        .await;
        self.wake.notify_one();
        Ok(id)
    }
}
