//! This node among several on a shared database: claiming callbacks for
//! the agents it has free, keeping its leases and heartbeat, and letting
//! go of what it lost. (With the embedded store none of this runs: every
//! callback is in this node's router from start-up.)

use super::{Centre, now_ms};
use crate::routing::{AgentStatus, ContactKind};
use crate::store::NodeInfo;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How often a node with free agents looks for callbacks to claim.
pub const CLAIM_POLL: Duration = Duration::from_millis(250);

/// How many callbacks to claim now, and from which queues: one per free
/// agent not already facing a contact due in line, from the queues those
/// agents serve. Claiming no more than can be offered at once keeps the
/// line order across nodes: the rest stay for whichever node frees an
/// agent first.
pub fn room(centre: &Centre, now: i64) -> (Vec<String>, usize) {
    let router = centre.router.lock();
    let free: Vec<&str> = router
        .agents()
        .filter(|a| a.registered && a.status == AgentStatus::Available)
        .filter_map(|a| a.profile.as_deref())
        .collect();
    let waiting = router
        .contacts()
        .filter(|c| c.offered_to.is_none() && c.eligible <= now)
        .count();
    let limit = free.len().saturating_sub(waiting);
    let queues: BTreeSet<String> = centre
        .config
        .routing_profiles
        .iter()
        .filter(|p| free.contains(&p.name.as_str()))
        .flat_map(|p| p.queues.iter().map(|q| q.queue.clone()))
        .collect();
    (queues.into_iter().collect(), limit)
}

/// Claims what this node's free agents can take and puts it in line.
pub async fn claim(centre: &Arc<Centre>, now: i64) {
    let (queues, limit) = room(centre, now);
    if limit == 0 || queues.is_empty() {
        return;
    }
    let claimed = centre
        .dialer
        .book
        .claim(queues, limit, now, centre.dialer.rules.clone())
        .await;
    match claimed {
        Ok(found) => {
            let mut router = centre.router.lock();
            for rec in found {
                info!(callback = %rec.id, queue = %rec.queue, "callback claimed");
                if let Err(e) = router.restore(super::queued(&rec)) {
                    warn!(callback = %rec.id, error = %e, "claimed callback not queued");
                }
            }
        }
        Err(e) => warn!(error = %e, "cannot claim callbacks"),
    }
}

/// Renews this node's leases and heartbeat every `heartbeat_s`; a
/// callback whose lease was lost (stopped by another node, or taken over
/// after this node stalled) leaves this node's line and its ringing offer
/// is cancelled.
pub fn spawn_keeper(centre: Arc<Centre>, info: NodeInfo) {
    if !centre.dialer.book.is_shared() {
        return;
    }
    let every = Duration::from_secs(centre.config.cluster.heartbeat_s.max(1));
    let weak = Arc::downgrade(&centre);
    drop(centre);
    tokio::spawn(async move {
        loop {
            let Some(centre) = weak.upgrade() else { return };
            // Ids in line before renewing: one claimed meanwhile is not
            // mistaken for one lost.
            let before: Vec<String> = centre
                .router
                .lock()
                .contacts()
                .filter(|c| c.kind == ContactKind::Callback)
                .map(|c| c.id.clone())
                .collect();
            match centre.dialer.book.renew().await {
                Ok(held) => {
                    let held: HashSet<String> = held.into_iter().collect();
                    for id in before.iter().filter(|id| !held.contains(*id)) {
                        warn!(callback = %id, "callback no longer this node's: withdrawn");
                        centre.withdraw(id);
                    }
                }
                Err(e) => warn!(error = %e, "leases not renewed"),
            }
            if let Err(e) = centre.dialer.book.heartbeat(info.clone()).await {
                warn!(error = %e, "heartbeat not written");
            }
            drop(centre);
            tokio::time::sleep(every).await;
        }
    });
}

/// At start-up on a shared store: nothing to restore (callbacks are
/// claimed as agents free up); what this node held before a crash is
/// resumed like a dead node's.
pub fn start(centre: &Centre) -> Result<u64, crate::store::StoreError> {
    let voided = centre.dialer.book.void_own_leases()?;
    if voided > 0 {
        info!(
            voided,
            at = now_ms(),
            "leases from this node's previous run made void"
        );
    }
    Ok(voided)
}
