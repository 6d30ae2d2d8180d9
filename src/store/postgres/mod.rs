//! The PostgreSQL store, for several nodes sharing one database.
//! `tokio-postgres` with a `deadpool-postgres` pool: the async driver
//! pipelines and needs no libpq, and the pool is the thin one made for it
//! (sqlx would bring its own runtime glue and compile-time query checking
//! that needs a database at build time).
//!
//! The `Store` trait is synchronous (callers run it on the blocking pool,
//! as SQLite needs). This store keeps its own small runtime for the
//! connections and hands each operation to it, waiting on a plain
//! channel, so it can be called from any thread, async or not.
//!
//! Callback state writes are fenced by the lease (see `leases.rs`).

mod leases;
mod listing;
mod rows;
mod schema;
mod writes;

use super::query::{CallbackFilter, Cursor, DayCounts, Page, RecordFilter};
use super::records::{Attempt, CallbackRecord, CallbackState, ContactRecord, NewCallback};
use super::{Cluster, Store, StoreError};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;

/// The database's clock in epoch milliseconds: leases are judged by one
/// clock, whatever the nodes' clocks say.
pub(super) const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// An operation that takes longer than this fails (the database is
/// unreachable or stuck): calls never hang on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the database and who this node is.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    pub node_id: String,
    pub lease_ms: i64,
    pub pool_size: usize,
}

/// What each operation gets: a pool and this node's identity.
#[derive(Clone)]
pub(super) struct Ctx {
    pool: Pool,
    pub(super) node: Arc<str>,
    pub(super) lease_ms: i64,
}

impl Ctx {
    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

pub struct PgStore {
    ctx: Ctx,
    /// Kept to shut down in the background on drop (a runtime must not be
    /// dropped inside another's worker).
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    version: usize,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects and brings the schema up to date.
    pub fn connect(opts: &PgOptions) -> Result<PgStore, StoreError> {
        let mut pg: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("store.url: {e}")))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(5));
        }
        pg.application_name(format!("callgate {}", opts.node_id));
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("callgate-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        let mut store = PgStore {
            ctx: Ctx {
                pool,
                node: opts.node_id.as_str().into(),
                lease_ms: opts.lease_ms,
            },
            handle: rt.handle().clone(),
            rt: Some(rt),
            version: 0,
        };
        store.version = store.run(|ctx| async move {
            let mut client = ctx.client().await?;
            schema::migrate(&mut client).await
        })?;
        Ok(store)
    }

    /// The schema version after migrating.
    pub fn schema_version(&self) -> usize {
        self.version
    }

    /// Runs `f` on this store's runtime and waits for it.
    pub(super) fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let fut = f(self.ctx.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let r = match tokio::time::timeout(CALL_TIMEOUT, fut).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "no answer within {} s",
                    CALL_TIMEOUT.as_secs()
                ))),
            };
            let _ = tx.send(r);
        });
        rx.recv()
            .map_err(|_| StoreError::Worker("the database task ended".into()))?
    }
}

impl Store for PgStore {
    fn insert_callback(&self, cb: &NewCallback) -> Result<CallbackRecord, StoreError> {
        let cb = cb.clone();
        self.run(|ctx| async move { writes::insert_callback(&ctx, &cb).await })
    }

    fn callback(&self, id: &str) -> Result<Option<CallbackRecord>, StoreError> {
        let id = id.to_string();
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            let st = c
                .prepare_cached("SELECT * FROM callbacks WHERE id = $1")
                .await?;
            c.query_opt(&st, &[&id])
                .await?
                .map(|r| rows::callback(&r))
                .transpose()
        })
    }

    fn pending_callbacks(&self) -> Result<Vec<CallbackRecord>, StoreError> {
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            let pending: Vec<String> = CallbackState::PENDING
                .iter()
                .map(|s| s.as_str().to_string())
                .collect();
            c.query(
                "SELECT * FROM callbacks WHERE state = ANY($1) ORDER BY initial_start_ms, created_ms, id",
                &[&pending],
            )
            .await?
            .iter()
            .map(rows::callback)
            .collect()
        })
    }

    fn transition(
        &self,
        id: &str,
        from: &[CallbackState],
        to: CallbackState,
        detail: &str,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let w = writes::Write::new(id, from, detail, now_ms);
        self.run(|ctx| async move { writes::transition(&ctx, w, to).await })
    }

    fn begin_attempt(
        &self,
        id: &str,
        agent: &str,
        from: &[CallbackState],
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let w = writes::Write::new(id, from, agent, now_ms);
        self.run(|ctx| async move { writes::begin_attempt(&ctx, w).await })
    }

    fn end_attempt(
        &self,
        id: &str,
        outcome: &str,
        sip_status: Option<u16>,
        from: &[CallbackState],
        next: CallbackState,
        not_before_ms: i64,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let w = writes::Write::new(id, from, outcome, now_ms);
        self.run(move |ctx| async move {
            writes::end_attempt(&ctx, w, sip_status, next, not_before_ms).await
        })
    }

    fn release(
        &self,
        id: &str,
        from: &[CallbackState],
        to: CallbackState,
        detail: &str,
        now_ms: i64,
    ) -> Result<CallbackRecord, StoreError> {
        let w = writes::Write::new(id, from, detail, now_ms);
        self.run(|ctx| async move { writes::release(&ctx, w, to).await })
    }

    fn callbacks_page(
        &self,
        filter: &CallbackFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<CallbackRecord>, StoreError> {
        let (filter, after) = (filter.clone(), after.cloned());
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            listing::callbacks(&c, &filter, after.as_ref(), limit).await
        })
    }

    fn callback_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            c.query(
                "SELECT state, COUNT(*) FROM callbacks GROUP BY state ORDER BY state",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
            .collect()
        })
    }

    fn attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        let id = id.to_string();
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            c.query(
                "SELECT n, agent, started_ms, ended_ms, outcome, sip_status FROM attempts
                 WHERE callback_id = $1 ORDER BY n",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Attempt {
                    n: u32::try_from(r.try_get::<_, i64>(0)?.max(0)).unwrap_or(u32::MAX),
                    agent: r.try_get(1)?,
                    started_ms: r.try_get(2)?,
                    ended_ms: r.try_get(3)?,
                    outcome: r.try_get(4)?,
                    sip_status: r
                        .try_get::<_, Option<i64>>(5)?
                        .and_then(|s| u16::try_from(s).ok()),
                })
            })
            .collect()
        })
    }

    fn history(&self, id: &str) -> Result<Vec<(i64, String, String)>, StoreError> {
        let id = id.to_string();
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            c.query(
                "SELECT at_ms, state, detail FROM callback_events WHERE callback_id = $1 ORDER BY seq",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
        })
    }

    fn upsert_contacts(&self, batch: &[ContactRecord]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.run(|ctx| async move {
            let mut c = ctx.client().await?;
            let tx = c.transaction().await?;
            for r in &batch {
                rows::write_contact(&tx, r, &ctx.node).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn close_interrupted_contacts(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.run(move |ctx| async move {
            let c = ctx.client().await?;
            // As SQLite's `contact_rows::close_interrupted`, but only this
            // node's records: another node's open records are live calls.
            let n = c
                .execute(
                    "UPDATE contacts SET disconnected_ms = $1, disconnect_reason = 'interrupted'
                     WHERE disconnected_ms IS NULL AND node = $2 AND (
                         initiation <> 'callback'
                         OR connected_ms IS NOT NULL
                         OR id NOT IN (SELECT id FROM callbacks
                                       WHERE state IN ('scheduled', 'queued', 'offered', 'dialing')))",
                    &[&now_ms, &&*ctx.node],
                )
                .await?;
            Ok(n as usize)
        })
    }

    fn contact(&self, id: &str) -> Result<Option<ContactRecord>, StoreError> {
        let id = id.to_string();
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            c.query_opt("SELECT * FROM contacts WHERE id = $1", &[&id])
                .await?
                .map(|r| rows::contact(&r))
                .transpose()
        })
    }

    fn contacts(&self, limit: usize) -> Result<Vec<ContactRecord>, StoreError> {
        Ok(self.records(&RecordFilter::default(), None, limit)?.items)
    }

    fn records(
        &self,
        filter: &RecordFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page<ContactRecord>, StoreError> {
        let (filter, after) = (filter.clone(), after.cloned());
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            listing::records(&c, &filter, after.as_ref(), limit).await
        })
    }

    fn day_counts(&self, since_ms: i64) -> Result<HashMap<String, DayCounts>, StoreError> {
        self.run(move |ctx| async move {
            let c = ctx.client().await?;
            listing::day_counts(&c, since_ms).await
        })
    }

    fn cluster(&self) -> Option<&dyn Cluster> {
        Some(self)
    }
}
