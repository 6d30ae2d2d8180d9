//! Durable state: callbacks (with every state transition and dial
//! attempt) and contact records. `Store` is the interface; `sqlite` is the
//! embedded implementation (one node), `postgres` the shared one (several
//! nodes, which claim callbacks with leases: `cluster`).

pub mod cluster;
mod contact_rows;
pub mod postgres;
pub mod query;
pub mod record_writer;
pub mod records;
pub mod sqlite;
mod where_clause;

pub use cluster::{Cluster, NodeInfo, NodeRow};
pub use postgres::{PgOptions, PgStore};
pub use query::{CallbackFilter, Cursor, DayCounts, Order, Page, RecordFilter};
pub use record_writer::{OpenRecord, RecordWriter};
pub use records::{Attempt, CallbackRecord, CallbackState, ContactRecord, NewCallback, initiation};
pub use sqlite::SqliteStore;

use std::sync::Arc;

/// Runs store work on the blocking pool: SQLite fsyncs on commit, which
/// must not stall the async workers that carry calls.
pub async fn blocking<S: ?Sized + Send + Sync + 'static, T: Send + 'static>(
    store: &Arc<S>,
    f: impl FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Pg(#[from] tokio_postgres::Error),
    #[error("database unreachable: {0}")]
    Unavailable(String),
    #[error("database worker failed: {0}")]
    Worker(String),
    /// A write of an offer or a dial by a node that no longer holds the
    /// callback's lease (fencing): nothing written.
    #[error("callback {0} is no longer this node's (lease held by {1})")]
    LeaseLost(String, String),
    #[error("no such callback {0}")]
    NotFound(String),
    #[error("callback {0} is {1}, not {2}")]
    WrongState(String, String, String),
    #[error("a callback for {1} is already pending in {0}")]
    Duplicate(String, String),
}

/// The operations the dialer, the flows and the API need. Every method is
/// one transaction: a crash between two calls loses nothing committed.
/// Callback state is written only by `dialer::book`, which asks the
/// lifecycle table for the `from` states of each write.
pub trait Store: Send + Sync {
    fn insert_callback(&self, cb: &NewCallback) -> Result<CallbackRecord, StoreError>;
    fn callback(&self, id: &str) -> Result<Option<CallbackRecord>, StoreError>;
    /// Callbacks not yet finished (scheduled, queued, offered, dialling),
    /// in line order: initial start, then creation.
    fn pending_callbacks(&self) -> Result<Vec<CallbackRecord>, StoreError>;
    /// Moves a callback to `to` if it is in one of `from`; records the
    /// transition. Returns the updated record.
    fn transition(
        &self,
        id: &str,
        from: &[CallbackState],
        to: CallbackState,
        detail: &str,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError>;
    /// Starts dial attempt number `attempts + 1` (state → dialling) if the
    /// callback is in one of `from`.
    fn begin_attempt(
        &self,
        id: &str,
        agent: &str,
        from: &[CallbackState],
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError>;
    /// Ends the current attempt with `outcome` if the callback is in one of
    /// `from`; `next` is the state after it, `not_before_ms` the earliest
    /// next attempt when requeued.
    #[allow(clippy::too_many_arguments)]
    fn end_attempt(
        &self,
        id: &str,
        outcome: &str,
        sip_status: Option<u16>,
        from: &[CallbackState],
        next: CallbackState,
        not_before_ms: i64,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError>;
    /// Moves a callback in one of `from` to `to`; if it was dialling, the
    /// attempt in flight is forgotten (not counted). Graceful shutdown.
    fn release(
        &self,
        id: &str,
        from: &[CallbackState],
        to: CallbackState,
        detail: &str,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError>;
    /// Callbacks matching `filter`, newest first, a page of at most
    /// `limit` after `after`.
    fn callbacks_page(
        &self,
        filter: &CallbackFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<CallbackRecord>, StoreError>;
    /// Number of callbacks in each state.
    fn callback_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError>;
    /// State transitions of a callback: (time, state, detail).
    fn history(&self, id: &str) -> Result<Vec<(i64, String, String)>, StoreError>;
    /// Inserts or updates contact records, in one transaction.
    fn upsert_contacts(&self, batch: &[ContactRecord]) -> Result<(), StoreError>;
    /// At start-up: records of contacts a crash cut short (an inbound call,
    /// or a conversation, that never recorded its end) are closed as
    /// "interrupted" at `now_ms`. Returns how many.
    fn close_interrupted_contacts(&self, now_ms: i64) -> Result<usize, StoreError>;
    fn contact(&self, id: &str) -> Result<Option<ContactRecord>, StoreError>;
    /// The newest `limit` contact records.
    fn contacts(&self, limit: usize) -> Result<Vec<ContactRecord>, StoreError>;
    /// Contact records matching `filter`, a page of at most `limit` after
    /// `after`.
    fn records(
        &self,
        filter: &RecordFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<ContactRecord>, StoreError>;
    /// Per queue since `since_ms`: handled, abandoned, callbacks connected.
    fn day_counts(
        &self,
        since_ms: i64,
    ) -> Result<std::collections::HashMap<String, DayCounts>, StoreError>;
    /// Pending callbacks whose expiry time has come (`expires_ms <= now`),
    /// not being offered or dialled. The default reads every pending
    /// one; a store with an index answers from it.
    fn expiring_callbacks(&self, now_ms: i64) -> Result<Vec<CallbackRecord>, StoreError> {
        Ok(self
            .pending_callbacks()?
            .into_iter()
            .filter(|c| {
                matches!(c.state, CallbackState::Scheduled | CallbackState::Queued)
                    && c.expires_ms <= now_ms
            })
            .collect())
    }
    /// A fact about the database kept by key (`None`: never set, or a
    /// store that keeps none).
    fn setting(&self, _key: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    fn set_setting(&self, _key: &str, _value: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Claims and leases, where several nodes share this store.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }
}
