//! Registered contacts of agents (RFC 3261 §10.3), shared with the router
//! that offers contacts to agents.

use crate::sip::message::{NameAddr, Uri};
use crate::sip::transport::Peer;
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct Binding {
    /// The Contact value exactly as the phone sent it (its URI is what we
    /// INVITE; phones add parameters they expect back).
    pub contact: NameAddr,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// RFC 5626 instance id, when the phone sent one.
    pub instance: Option<String>,
    /// Where the REGISTER came from: the way back through NAT, and the TCP
    /// connection to reuse.
    pub source: Peer,
    pub registered_at: SystemTime,
}

impl Binding {
    pub fn uri(&self) -> &Uri {
        &self.contact.uri
    }

    pub fn remaining_secs(&self, now: Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }
}

/// Agent user → bindings. A `DashMap` because the registrar writes while
/// the router and the HTTP API read from other tasks. Changes are pushed:
/// whoever routes contacts waits on `changed()` and reads `take_changed()`
/// rather than polling every agent.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    map: Arc<DashMap<String, Vec<Binding>>>,
    changes: Arc<Changes>,
}

#[derive(Debug, Default)]
struct Changes {
    users: parking_lot::Mutex<HashSet<String>>,
    notify: tokio::sync::Notify,
}

impl Bindings {
    pub fn new() -> Self {
        Self::default()
    }

    fn touched(&self, user: &str) {
        self.changes.users.lock().insert(user.to_string());
        // One waiter (the dispatcher); a permit is kept if it is busy.
        self.changes.notify.notify_one();
    }

    /// Resolves once some user's bindings changed since the last
    /// `take_changed`.
    pub async fn changed(&self) {
        self.changes.notify.notified().await;
    }

    /// Users whose bindings were added, refreshed, removed or expired.
    pub fn take_changed(&self) -> Vec<String> {
        self.changes.users.lock().drain().collect()
    }

    /// Live bindings of `user` (a copy: never hold a map guard elsewhere).
    pub fn of(&self, user: &str, now: Instant) -> Vec<Binding> {
        self.map
            .get(user)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_registered(&self, user: &str, now: Instant) -> bool {
        self.map
            .get(user)
            .is_some_and(|v| v.iter().any(|b| b.expires_at > now))
    }

    pub(crate) fn with_mut<R>(&self, user: &str, f: impl FnOnce(&mut Vec<Binding>) -> R) -> R {
        let mut entry = self.map.entry(user.to_string()).or_default();
        let r = f(entry.value_mut());
        let empty = entry.is_empty();
        drop(entry);
        if empty {
            self.map.remove_if(user, |_, v| v.is_empty());
        }
        self.touched(user);
        r
    }

    /// Removes expired bindings; returns (user, contact) of each.
    pub fn expire(&self, now: Instant) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        self.map.retain(|user, v| {
            v.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    gone.push((user.clone(), b.contact.uri.to_string()));
                }
                live
            });
            !v.is_empty()
        });
        for (user, _) in &gone {
            self.touched(user);
        }
        gone
    }

    /// Users with at least one live binding.
    pub fn users(&self, now: Instant) -> Vec<String> {
        self.map
            .iter()
            .filter(|e| e.value().iter().any(|b| b.expires_at > now))
            .map(|e| e.key().clone())
            .collect()
    }
}
