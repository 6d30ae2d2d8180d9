//! Callbacks on a shared database: claimed, not owned. A node takes only
//! what its free agents can be offered now, oldest original call first
//! across every node (`Cluster::claim`), holds each under a lease it
//! renews while the offer and the dial run, and resolves what a dead
//! node left half done exactly as a restart would: an interrupted offer
//! used no attempt; an interrupted dial was counted when it began (before
//! its INVITE left), so it is counted once and retried after the retry
//! interval, never dialled twice at once.

use super::book::CallbackBook;
use crate::phone::DialRules;
use crate::store::{CallbackRecord, CallbackState, NodeInfo, NodeRow, StoreError};
use tracing::info;

impl CallbackBook {
    /// Whether several nodes share the store (callbacks are claimed).
    pub fn is_shared(&self) -> bool {
        self.store.cluster().is_some()
    }

    /// How often leases are renewed and how long one lasts, where shared.
    pub fn lease_ms(&self) -> Option<i64> {
        self.store.cluster().map(|c| c.lease_ms())
    }

    /// Claims up to `limit` callbacks of `queues` due at `now` and
    /// returns those to put in line (a claimed one may instead expire, or
    /// fail the dial rules). Empty where the store is not shared.
    pub async fn claim(
        &self,
        queues: Vec<String>,
        limit: usize,
        now: i64,
        rules: DialRules,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        self.run(move |b| {
            let Some(cluster) = b.store.cluster() else {
                return Ok(Vec::new());
            };
            let mut found = Vec::new();
            for cb in cluster.claim(&queues, limit, now)? {
                if matches!(cb.state, CallbackState::Offered | CallbackState::Dialing) {
                    info!(callback = %cb.id, state = cb.state.as_str(), "resuming a callback whose node stopped renewing its lease");
                }
                let resumed = b.resume(cb, now, true, "its node's lease running out")?;
                if let Some(rec) = resumed {
                    b.written(rec.clone(), "claimed", now);
                    found.push(rec);
                }
            }
            b.allowed(found, now, &rules)
        })
        .await
    }

    /// Renews this node's leases; the ids still held.
    pub async fn renew(&self) -> Result<Vec<String>, StoreError> {
        self.run(|b| match b.store.cluster() {
            Some(c) => c.renew(),
            None => Ok(Vec::new()),
        })
        .await
    }

    pub async fn heartbeat(&self, info: NodeInfo) -> Result<(), StoreError> {
        self.run(move |b| match b.store.cluster() {
            Some(c) => c.heartbeat(&info),
            None => Ok(()),
        })
        .await
    }

    /// The nodes sharing the store (none where it is not shared).
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.run(|b| match b.store.cluster() {
            Some(c) => c.nodes(),
            None => Ok(Vec::new()),
        })
        .await
    }

    /// At shutdown: claimed callbacks not yet offered go back for the
    /// other nodes at once, rather than when the lease runs out.
    pub async fn release_unstarted(&self) -> Result<u64, StoreError> {
        self.run(|b| match b.store.cluster() {
            Some(c) => c.release_unstarted(),
            None => Ok(0),
        })
        .await
    }

    /// At start-up: what a previous run of this node held is resumed like
    /// a dead node's.
    pub fn void_own_leases(&self) -> Result<u64, StoreError> {
        match self.store.cluster() {
            Some(c) => c.void_own_leases(),
            None => Ok(0),
        }
    }
}
