//! Creating a callback, whoever asks: a caller's flow (Transfer to queue
//! in callback mode) or the API (`POST /api/callbacks`, a website's "call
//! me back" button, a CRM). Both go through the same checks in the same
//! order — the queue exists, the number passes the dial rules, the queue
//! has room, one pending callback per number where the queue dedupes —
//! and the callback is stored (fsynced) before it becomes routable, so an
//! accepted request is never lost.

use super::{Centre, now_ms, queued};
use crate::flow::{CallbackRefusal, CallbackRequest, Callbacks};
use crate::store::{CallbackRecord, ContactRecord, NewCallback, StoreError, initiation};
use std::collections::BTreeMap;
use tracing::{info, warn};

/// A callback as the API asks for it. The number is already E.164.
#[derive(Debug, Clone)]
pub struct ApiCallback {
    pub queue: String,
    pub number: String,
    /// Not dialled before this (epoch ms); None: as soon as possible.
    pub not_before_ms: Option<i64>,
    pub max_retries: u32,
    pub retry_interval_s: u64,
    pub attributes: BTreeMap<String, String>,
}

/// What both paths store, before the common checks.
struct Spec {
    queue: String,
    number: String,
    initial_contact_id: Option<String>,
    previous_contact_id: Option<String>,
    initiation: &'static str,
    /// The place in line; None: the moment it becomes routable.
    initial_start_ms: Option<i64>,
    not_before_ms: i64,
    max_retries: u32,
    retry_interval_s: u64,
    attributes: BTreeMap<String, String>,
}

impl Centre {
    /// A callback from the API. Its place in line is the time it may first
    /// be dialled: a callback asked for tomorrow does not jump today's line.
    pub async fn create_api_callback(
        &self,
        req: ApiCallback,
    ) -> Result<CallbackRecord, CallbackRefusal> {
        let now = now_ms();
        let not_before_ms = req.not_before_ms.unwrap_or(now).max(now);
        self.create(
            Spec {
                queue: req.queue,
                number: req.number,
                initial_contact_id: None,
                previous_contact_id: None,
                initiation: initiation::API_CALLBACK,
                initial_start_ms: None,
                not_before_ms,
                max_retries: req.max_retries,
                retry_interval_s: req.retry_interval_s,
                attributes: req.attributes,
            },
            now,
        )
        .await
    }

    async fn create(&self, spec: Spec, now: i64) -> Result<CallbackRecord, CallbackRefusal> {
        let Some(q) = self.queue(&spec.queue) else {
            return Err(CallbackRefusal::UnknownQueue(spec.queue));
        };
        self.dialer
            .rules
            .check(&spec.number)
            .map_err(|e| CallbackRefusal::NotAllowed(e.to_string()))?;
        if self.router.lock().is_full(&spec.queue) {
            return Err(CallbackRefusal::AtCapacity);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let new = NewCallback {
            id: id.clone(),
            contact_id: id.clone(),
            initial_contact_id: spec.initial_contact_id.unwrap_or_else(|| id.clone()),
            queue: spec.queue.clone(),
            number: spec.number.clone(),
            initial_start_ms: spec.initial_start_ms.unwrap_or(spec.not_before_ms),
            created_ms: now,
            not_before_ms: spec.not_before_ms,
            expires_ms: now + (self.config.dialer.expiry_s as i64) * 1000,
            max_retries: spec.max_retries,
            retry_interval_s: spec.retry_interval_s,
            attributes: spec.attributes,
            dedupe: q.dedupe_callbacks,
        };
        let rec = match self.dialer.book.create(new).await {
            Ok(rec) => rec,
            Err(StoreError::Duplicate(..)) => {
                info!(number = %spec.number, queue = %spec.queue, "callback already pending for this number");
                return Err(CallbackRefusal::Duplicate);
            }
            Err(e) => return Err(CallbackRefusal::Failed(e.to_string())),
        };
        // Stored first, so it is never lost; then routable (on a shared
        // store: claimed by whichever node has an agent free first).
        if !self.dialer.book.is_shared()
            && let Err(e) = self.router.lock().restore(queued(&rec))
        {
            warn!(error = %e, "callback stored but not queued");
        }
        self.record(ContactRecord {
            id: rec.id.clone(),
            initial_contact_id: rec.initial_contact_id.clone(),
            previous_contact_id: spec.previous_contact_id,
            initiation: spec.initiation.into(),
            queue: Some(rec.queue.clone()),
            customer_number: Some(rec.number.clone()),
            caller_id_used: q.caller_id_number.clone(),
            initiated_ms: now,
            enqueued_ms: Some(now),
            attributes: rec.attributes.clone(),
            ..ContactRecord::default()
        });
        info!(callback = %rec.id, queue = %rec.queue, initiation = spec.initiation, "callback created");
        self.wake.notify_one();
        Ok(rec)
    }

    /// When a pending callback will be dialled at the earliest, as seen at
    /// `now`: its not-before time, moved to the next opening of its queue's
    /// callback hours.
    pub fn dial_at_ms(&self, rec: &CallbackRecord, now: i64) -> i64 {
        self.router
            .lock()
            .dial_at(&rec.queue, rec.not_before_ms, now)
    }
}

impl Callbacks for Centre {
    async fn create_callback(&self, req: CallbackRequest) -> Result<String, CallbackRefusal> {
        let now = now_ms();
        let delayed = now + req.initial_delay.as_millis() as i64;
        let chosen = req.not_before.map(crate::flow::context::epoch_ms);
        let spec = Spec {
            queue: req.queue,
            number: req.number,
            initial_contact_id: Some(req.contact.initial_id.clone()),
            previous_contact_id: Some(req.contact.id.clone()),
            initiation: initiation::CALLBACK,
            // The original call's start: the caller keeps their place. A
            // callback the caller scheduled for later joins the line when
            // its time comes instead.
            initial_start_ms: match chosen {
                None => Some(crate::flow::context::epoch_ms(req.contact.initial_start)),
                Some(_) => None,
            },
            not_before_ms: chosen.map_or(delayed, |t| t.max(delayed)),
            max_retries: req.max_retries,
            retry_interval_s: req.retry_interval.as_secs(),
            attributes: req.contact.attributes.clone(),
        };
        self.create(spec, now).await.map(|rec| rec.id)
    }
}
