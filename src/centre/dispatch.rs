//! The dispatcher: keeps the router in step with the world (agents'
//! registrations, callbacks becoming routable or expiring) and turns its
//! offers into calls to agents' phones.

use super::{Centre, now_ms, offer};
use crate::dialer::scheduler;
use crate::routing::{ContactKind, Offer};
use crate::store::ContactRecord;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// With nothing scheduled, look again this often (callbacks' expiry).
const IDLE_TICK: Duration = Duration::from_secs(5);
/// Expiry is checked against the database this often.
const EXPIRY_EVERY_MS: i64 = 5_000;

pub fn spawn(centre: Arc<Centre>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { run(centre).await })
}

async fn run(centre: Arc<Centre>) {
    let mut last_expiry = 0i64;
    // On a shared store callbacks created by any node are claimed: look
    // for them often.
    let shared = centre.dialer.book.is_shared();
    let tick = if shared {
        super::cluster::CLAIM_POLL
    } else {
        IDLE_TICK
    };
    loop {
        let now = now_ms();
        let wait = centre
            .router
            .lock()
            .next_deadline(now)
            .map(|d| Duration::from_millis((d - now).max(1) as u64).min(tick))
            .unwrap_or(tick);
        tokio::select! {
            _ = centre.wake.notified() => {}
            _ = centre.bindings.changed() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = centre.tasks.stopping() => return,
        }
        if centre.is_draining() {
            // No offers while shutting down: wait to be stopped.
            centre.tasks.stopping().await;
            return;
        }
        let now = now_ms();
        sync_registrations(&centre, centre.bindings.take_changed(), now);
        if now - last_expiry >= EXPIRY_EVERY_MS {
            last_expiry = now;
            expire(&centre, now).await;
        }
        if shared {
            super::cluster::claim(&centre, now).await;
        }
        let (offers, promoted) = {
            let mut router = centre.router.lock();
            let offers = router.assign(now);
            (offers, router.take_promoted())
        };
        if !shared {
            mark_routable(&centre, promoted, &offers, now).await;
        }
        for o in offers {
            info!(agent = %o.agent, contact = %o.contact, queue = %o.queue, kind = ?o.kind, "offering");
            centre.record(ContactRecord {
                offered_ms: Some(now),
                ..ContactRecord::update(&o.contact)
            });
            let mut callback = None;
            if o.kind == ContactKind::Callback {
                match centre.dialer.book.offer(&o.contact, &o.agent, now).await {
                    Ok(rec) => callback = Some(rec),
                    Err(e) => {
                        // Stopped or expired in the meantime: take it back.
                        warn!(error = %e, "callback no longer offerable");
                        centre.withdraw(&o.contact);
                        continue;
                    }
                }
            }
            offer::spawn(centre.clone(), o, callback);
        }
    }
}

/// Brings the router up to date with the registrations that changed.
fn sync_registrations(centre: &Centre, users: Vec<String>, now: i64) {
    if users.is_empty() {
        return;
    }
    let at = std::time::Instant::now();
    let mut router = centre.router.lock();
    for name in users {
        let Some(was) = router.agent(&name).map(|a| a.registered) else {
            continue;
        };
        let is = centre.bindings.is_registered(&name, at);
        if is != was {
            info!(agent = %name, registered = is, "agent registration changed");
            router.set_registered(&name, is, now);
        }
    }
}

/// Callbacks whose initial delay is over move from "scheduled" to
/// "queued" in the database (the state a restart resumes from). The router
/// says which did; one offered at once went straight to "offered".
async fn mark_routable(centre: &Arc<Centre>, promoted: Vec<String>, offers: &[Offer], now: i64) {
    for id in promoted {
        if offers.iter().any(|o| o.contact == id) {
            continue;
        }
        // Refused if it was stopped or expired meanwhile: fine.
        let _ = centre.dialer.book.routable(&id, now).await;
    }
}

async fn expire(centre: &Arc<Centre>, now: i64) {
    let due = match centre.dialer.book.expiring(now).await {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "cannot read callbacks");
            return;
        }
    };
    for cb in due {
        if scheduler::is_expired(&cb, now) && centre.dialer.book.expire(&cb.id, now).await.is_ok() {
            info!(callback = %cb.id, number = %cb.number, "callback expired");
            centre.withdraw(&cb.id);
        }
    }
}
