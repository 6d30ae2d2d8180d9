//! What several nodes on one database share besides the callbacks
//! themselves: who holds which callback (a lease with an expiry, renewed
//! while the node works on it), and which nodes are alive (heartbeats).
//! Only a shared store (PostgreSQL) has this; the embedded one is one node
//! by construction.

use super::{CallbackRecord, StoreError};
use serde::Serialize;

/// What a node says about itself in each heartbeat.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub sip: String,
    pub http: String,
    pub started_ms: i64,
    pub version: String,
}

/// A node as the database last heard of it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeRow {
    pub id: String,
    pub sip: String,
    pub http: String,
    pub version: String,
    pub started_ms: i64,
    /// Last heartbeat, by the database's clock.
    pub seen_ms: i64,
    /// How long ago that was.
    pub age_ms: i64,
    /// Callbacks this node holds a live lease on.
    pub leases: u64,
}

/// Claiming callbacks and keeping the claims. Every time is the
/// database's clock, so nodes with skewed clocks still agree on whose
/// lease has run out.
pub trait Cluster: Send + Sync {
    fn node_id(&self) -> &str;
    /// How long a lease lasts unless renewed.
    fn lease_ms(&self) -> i64;
    /// Claims up to `limit` callbacks of `queues` for this node, oldest
    /// original call first: routable ones nobody holds (due at `now_ms`),
    /// and ones whose holder's lease ran out whatever their state (a dead
    /// node's offers and dials, for the caller to resolve). Rows another
    /// node is claiming at the same moment are skipped, not waited for.
    fn claim(
        &self,
        queues: &[String],
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<CallbackRecord>, StoreError>;
    /// Extends this node's live leases on pending callbacks; returns the
    /// ids still held. A lease that had already run out is not revived:
    /// another node may have resumed that callback.
    fn renew(&self) -> Result<Vec<String>, StoreError>;
    /// At start-up: leases a previous run of this node left are void at
    /// once (that run is gone; its work is resumed like a dead node's).
    fn void_own_leases(&self) -> Result<u64, StoreError>;
    /// At shutdown: callbacks claimed but not being offered or dialled are
    /// handed back for other nodes to claim at once.
    fn release_unstarted(&self) -> Result<u64, StoreError>;
    fn heartbeat(&self, info: &NodeInfo) -> Result<(), StoreError>;
    fn nodes(&self) -> Result<Vec<NodeRow>, StoreError>;
}
