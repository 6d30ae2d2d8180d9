//! Claims, leases and heartbeats (see `store::cluster`). A claim is one
//! statement: the oldest claimable rows are locked with `FOR UPDATE SKIP
//! LOCKED` (two nodes claiming at once each get different callbacks, and
//! neither waits for the other) and given this node's lease in the same
//! UPDATE.

use super::super::StoreError;
use super::super::cluster::{Cluster, NodeInfo, NodeRow};
use super::super::records::CallbackRecord;
use super::{NOW, PgStore, rows};

impl Cluster for PgStore {
    fn node_id(&self) -> &str {
        &self.ctx.node
    }

    fn lease_ms(&self) -> i64 {
        self.ctx.lease_ms
    }

    fn claim(
        &self,
        queues: &[String],
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<CallbackRecord>, StoreError> {
        if limit == 0 || queues.is_empty() {
            return Ok(Vec::new());
        }
        let queues = queues.to_vec();
        let limit = limit.min(1000) as i64;
        self.run(move |ctx| async move {
            let c = ctx.client().await?;
            let st = c
                .prepare_cached(&format!(
                    "WITH due AS (
                         SELECT id FROM callbacks
                         WHERE queue = ANY($1)
                           AND state IN ('scheduled', 'queued', 'offered', 'dialing')
                           AND (lease_node IS NULL OR lease_expires_ms IS NULL
                                OR lease_expires_ms <= {NOW})
                           -- Waiting ones once due; a dead node's offers
                           -- and dials at once, to be resolved.
                           AND (state IN ('offered', 'dialing') OR not_before_ms <= $2)
                         ORDER BY initial_start_ms, created_ms, id
                         LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                     UPDATE callbacks cb
                     SET lease_node = $4, lease_expires_ms = {NOW} + $5::bigint,
                         lease_epoch = cb.lease_epoch + 1
                     FROM due WHERE cb.id = due.id
                     RETURNING cb.*"
                ))
                .await?;
            let mut claimed = c
                .query(&st, &[&queues, &now_ms, &limit, &&*ctx.node, &ctx.lease_ms])
                .await?
                .iter()
                .map(rows::callback)
                .collect::<Result<Vec<_>, _>>()?;
            // RETURNING keeps no order: the line order is the caller's.
            claimed.sort_by(|a, b| {
                (a.initial_start_ms, a.created_ms, &a.id).cmp(&(
                    b.initial_start_ms,
                    b.created_ms,
                    &b.id,
                ))
            });
            Ok(claimed)
        })
    }

    fn renew(&self) -> Result<Vec<String>, StoreError> {
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            let st = c
                .prepare_cached(&format!(
                    "UPDATE callbacks SET lease_expires_ms = {NOW} + $2::bigint
                     WHERE lease_node = $1 AND lease_expires_ms > {NOW}
                       AND state IN ('scheduled', 'queued', 'offered', 'dialing')
                     RETURNING id"
                ))
                .await?;
            c.query(&st, &[&&*ctx.node, &ctx.lease_ms])
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect()
        })
    }

    fn void_own_leases(&self) -> Result<u64, StoreError> {
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            Ok(c.execute(
                "UPDATE callbacks SET lease_expires_ms = 0 WHERE lease_node = $1",
                &[&&*ctx.node],
            )
            .await?)
        })
    }

    fn release_unstarted(&self) -> Result<u64, StoreError> {
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            Ok(c.execute(
                "UPDATE callbacks SET lease_node = NULL, lease_expires_ms = NULL
                 WHERE lease_node = $1 AND state IN ('scheduled', 'queued')",
                &[&&*ctx.node],
            )
            .await?)
        })
    }

    fn heartbeat(&self, info: &NodeInfo) -> Result<(), StoreError> {
        let info = info.clone();
        self.run(move |ctx| async move {
            let c = ctx.client().await?;
            let st = c
                .prepare_cached(&format!(
                    "INSERT INTO nodes (id, sip, http, version, started_ms, seen_ms)
                     VALUES ($1, $2, $3, $4, $5, {NOW})
                     ON CONFLICT (id) DO UPDATE SET sip = $2, http = $3, version = $4,
                         started_ms = $5, seen_ms = {NOW}"
                ))
                .await?;
            c.execute(
                &st,
                &[
                    &&*ctx.node,
                    &info.sip,
                    &info.http,
                    &info.version,
                    &info.started_ms,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.run(|ctx| async move {
            let c = ctx.client().await?;
            c.query(
                &format!(
                    "SELECT n.id, n.sip, n.http, n.version, n.started_ms, n.seen_ms,
                         {NOW} - n.seen_ms AS age_ms,
                         (SELECT COUNT(*) FROM callbacks cb
                          WHERE cb.lease_node = n.id AND cb.lease_expires_ms > {NOW}) AS leases
                     FROM nodes n ORDER BY n.id"
                ),
                &[],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(NodeRow {
                    id: r.try_get(0)?,
                    sip: r.try_get(1)?,
                    http: r.try_get(2)?,
                    version: r.try_get(3)?,
                    started_ms: r.try_get(4)?,
                    seen_ms: r.try_get(5)?,
                    age_ms: r.try_get(6)?,
                    leases: r.try_get::<_, i64>(7)?.max(0) as u64,
                })
            })
            .collect()
        })
    }
}
