//! The contact centre at run time: routes contacts to agents (the router),
//! keeps callbacks durable (the store), and ties calls together: a caller
//! waiting in a queue, an agent's phone being offered a contact, a
//! customer being called back.

pub mod agent_leg;
pub mod cluster;
pub mod dispatch;
pub mod inbound;
pub mod new_callback;
pub mod offer;

use crate::call::SipHandle;
use crate::call::tasks::CallTasks;
use crate::config::{Config, QueueConfig};
use crate::dialer::scheduler::RetryPolicy;
use crate::dialer::{CallbackBook, Dialer};
use crate::flow::{Contact, Flow, FlowEnv, FlowSet, Mode, QueueMetrics};
use crate::media::engine::MediaEngine;
use crate::media::leg::LegLink;
use crate::phone::DialRules;
use crate::registrar::Bindings;
use crate::routing::hours::Hours;
use crate::routing::{ContactKind, ProfileEntry, QueuedContact, Router};
use crate::store::{ContactRecord, RecordWriter, Store, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Contact records, written at every milestone.
    pub records: RecordWriter,
    pub flows: FlowSet,
    pub router: Mutex<Router>,
    pub queues: HashMap<String, QueueConfig>,
    /// Each queue's hours of operation.
    hours: HashMap<String, Hours>,
    pub country: Option<phonenumber::country::Id>,
    /// Callbacks: their state (the book) and dialling customers back.
    pub dialer: Dialer,
    /// Voice contacts waiting in a queue, by contact id.
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<QueueSignal>>>,
    /// Offers ringing an agent, by contact id: firing cancels the offer.
    offers: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// Wakes the dispatcher.
    pub wake: Notify,
    /// Every call task (callers, offers), for shutdown to end them.
    pub tasks: CallTasks,
    /// Shutting down: no new offers.
    draining: AtomicBool,
    /// The database answered the last background probe.
    database_ok: AtomicBool,
    /// Queue wait and ring time, for /metrics.
    pub histograms: Arc<crate::telemetry::CentreHistograms>,
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
            router.set_callback_window(&q.name, q.callback_window());
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
        let records = RecordWriter::spawn(store.clone());
        let histograms = Arc::new(crate::telemetry::CentreHistograms::default());
        let dialer = Dialer {
            book: CallbackBook::new(
                store.clone(),
                RetryPolicy {
                    retry_statuses: config.dialer.retry_statuses.clone(),
                },
                records.clone(),
            ),
            config: config.clone(),
            sip: sip.clone(),
            media: media.clone(),
            records: records.clone(),
            rules: config.dialer.dial_rules(),
            histograms: histograms.clone(),
        };
        Centre {
            hours: config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.open_hours()))
                .collect(),
            queues: config
                .queues
                .iter()
                .map(|q| (q.name.clone(), q.clone()))
                .collect(),
            country: crate::phone::country(&config.dialer.country),
            dialer,
            config,
            media,
            sip,
            bindings,
            store,
            records,
            flows,
            router: Mutex::new(router),
            waiting: Mutex::new(HashMap::new()),
            offers: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            tasks: CallTasks::new(),
            draining: AtomicBool::new(false),
            database_ok: AtomicBool::new(true),
            histograms,
        }
    }

    /// Runs a store operation on the blocking pool (SQLite fsyncs).
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        crate::store::blocking(&self.store, move |s: &(dyn Store + 'static)| f(s)).await
    }

    /// Records a contact, or a milestone of one: queued for the record
    /// writer, the call does not wait.
    pub fn record(&self, c: ContactRecord) {
        self.records.write(c);
    }

    /// At start-up: contacts a crash cut short get their end recorded as
    /// "interrupted".
    pub fn close_interrupted_records(&self) -> Result<usize, StoreError> {
        self.store.close_interrupted_contacts(now_ms())
    }

    /// Puts callbacks found in the database back in their queues, resolving
    /// offers and dials a crash interrupted (see `CallbackBook::recover`).
    pub fn restore_callbacks(&self) -> Result<usize, StoreError> {
        if self.dialer.book.is_shared() {
            cluster::start(self)?;
            return Ok(0);
        }
        let routable = self.dialer.book.recover(now_ms(), &self.dialer.rules)?;
        let total = routable.len();
        let refused = self.router.lock().restore_all(routable.iter().map(queued));
        for (id, e) in &refused {
            warn!(callback = %id, error = %e, "callback not restored");
        }
        Ok(total - refused.len())
    }

    /// Shutdown begins: no more offers. Calls in progress go on until the
    /// tasks are cancelled.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn database_ok(&self) -> bool {
        self.database_ok.load(Ordering::Relaxed)
    }

    /// Probes the database every second on the blocking pool, for the
    /// health check to answer from memory.
    pub fn spawn_database_probe(self: &Arc<Self>) {
        let centre = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(c) = centre.upgrade() else { return };
                let ok = c.db(|s| s.contacts(1)).await.is_ok();
                if ok != c.database_ok.swap(ok, Ordering::Relaxed) {
                    warn!(ok, "database health changed");
                    c.sip.send(crate::call::Command::DatabaseOk(ok));
                }
                drop(c);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
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

    /// Stops a pending callback (the StopContact operation). One being
    /// dialled cannot be stopped: it ends on its own.
    pub async fn stop_callback(&self, id: &str) -> Result<(), StoreError> {
        self.dialer.book.stop(id, now_ms()).await?;
        self.withdraw(id);
        info!(callback = %id, "callback stopped");
        Ok(())
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.get(name)
    }

    /// Within the queue's hours of operation at `at` (always, without
    /// hours; never, for a queue that does not exist).
    pub fn is_open(&self, queue: &str, at: SystemTime) -> bool {
        self.hours.get(queue).is_some_and(|h| h.is_open(at))
    }

    /// Runs a flow on a call's session, with this centre's services.
    pub async fn run_flow(
        &self,
        flow: Arc<Flow>,
        session: &mut crate::call::Session,
        contact: &mut Contact,
        mode: Mode,
    ) -> crate::flow::Outcome {
        crate::flow::driver::run(flow, session, contact, self, mode).await
    }

    /// The queue's hold music (empty when it has none loaded).
    pub fn hold_music(&self, queue: &str) -> Vec<std::sync::Arc<crate::media::prompt::Prompt>> {
        self.queue(queue)
            .and_then(|q| self.media.prompts.get(&q.hold_music))
            .map(|p| vec![p])
            .unwrap_or_default()
    }
}

impl FlowEnv for Centre {
    fn metrics(&self, queue: &str, contact: &Contact, wall: SystemTime) -> QueueMetrics {
        let now = crate::flow::context::epoch_ms(wall);
        let r = self.router.lock();
        let s = r.snapshot(queue, now);
        let start = crate::flow::context::epoch_ms(contact.initial_start);
        let position = r.position(queue, start, &contact.id) as u64;
        let oldest_age_s = s
            .oldest_initial_start
            .map(|o| ((now - o).max(0) / 1000) as u64)
            .unwrap_or(0);
        QueueMetrics {
            contacts_in_queue: s.contacts as u64,
            callbacks_in_queue: (s.callbacks_waiting + s.callbacks_scheduled) as u64,
            oldest_age_s,
            position,
            estimated_wait_s: self.estimated_wait_s(&r, &s, position),
            agents_available: s.agents_available as u64,
            agents_online: s.agents_online as u64,
            open: self.is_open(queue, wall),
        }
    }

    fn queue_full(&self, queue: &str) -> bool {
        self.router.lock().is_full(queue)
    }

    fn dial_rules(&self) -> &DialRules {
        &self.dialer.rules
    }

    fn prompts(&self) -> &crate::media::prompt::PromptLibrary {
        &self.media.prompts
    }

    fn tone(&self, tone: crate::media::tones::Tone) -> Arc<crate::media::prompt::Prompt> {
        self.media.tones.get(tone)
    }

    fn flow(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows.get(name)
    }

    fn callback_hours(&self, queue: &str) -> Hours {
        self.queue(queue)
            .map(|q| q.callback_window())
            .unwrap_or_default()
    }
}

impl Centre {
    /// Expected seconds until the contact at `position` of the queue `s`
    /// describes reaches an agent (`routing::wait`: the queue's average
    /// time-to-agent per place in line, or its cold-start figure). The
    /// flows, the API, the dashboard and the metrics all use this one rule.
    pub fn estimated_wait_s(
        &self,
        router: &Router,
        s: &crate::routing::QueueSnapshot,
        position: u64,
    ) -> u64 {
        let cold = self.queue(&s.name).map_or(120, |q| q.wait_cold_start_s);
        router
            .wait_estimate(&s.name)
            .estimate_s(position, s.agents_online, cold)
    }
}

/// A stored callback as the router queues it: its place is the original
/// call's start.
pub(crate) fn queued(rec: &crate::store::CallbackRecord) -> QueuedContact {
    QueuedContact {
        id: rec.id.clone(),
        queue: rec.queue.clone(),
        kind: ContactKind::Callback,
        initial_start: rec.initial_start_ms,
        enqueued: rec.created_ms,
        eligible: rec.not_before_ms,
        offered_to: None,
        scheduled: rec.state == crate::store::CallbackState::Scheduled,
    }
}
