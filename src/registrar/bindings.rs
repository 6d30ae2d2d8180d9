//! Registered contacts of agents (RFC 3261 §10.3), shared with the router
//! that offers contacts to agents.

use crate::sip::message::{NameAddr, Uri};
use crate::sip::transport::hop::{anchored, contact_flow};
use crate::sip::transport::{Peer, TransportKind};
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
    /// The REGISTER's Path values, top first (RFC 3327): the proxies
    /// between callgate and the phone, which offers must go through. The
    /// registrar accepted them only if the first names the proxy that
    /// sent the REGISTER.
    pub path: Vec<String>,
    pub registered_at: SystemTime,
}

impl Binding {
    pub fn uri(&self) -> &Uri {
        &self.contact.uri
    }

    pub fn remaining_secs(&self, now: Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }

    /// Where an offer to this binding goes, and the Route headers it
    /// carries (see `sip::transport::hop` for why the host is always the
    /// REGISTER's source, never a host the phone wrote):
    /// - with a Path, through the proxies: the Path as the Route set
    ///   (RFC 3327 §5.3), to the first Path hop's port and transport;
    /// - without, back over the REGISTER's flow (RFC 5626 §5.3): its
    ///   source address, in the transport the Contact asks for
    ///   (`;transport=tcp` from a phone that registered over UDP).
    pub fn next_hop(&self) -> (Peer, Vec<String>) {
        let top = self
            .path
            .first()
            .and_then(|p| NameAddr::parse(p).ok())
            .map(|n| n.uri);
        match top {
            Some(hop) => (
                anchored(&hop, self.source, TransportKind::Udp),
                self.path.clone(),
            ),
            None => (contact_flow(&self.contact.uri, self.source), Vec::new()),
        }
    }

    /// The transport an offer to this binding leaves on.
    pub fn transport(&self) -> TransportKind {
        self.next_hop().0.kind
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

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(contact: &str, source: Peer, path: &[&str]) -> Binding {
        Binding {
            contact: NameAddr::parse(contact).unwrap(),
            expires_at: Instant::now(),
            call_id: "c".into(),
            cseq: 1,
            instance: None,
            source,
            path: path.iter().map(|p| p.to_string()).collect(),
            registered_at: SystemTime::now(),
        }
    }

    fn udp(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    /// Issue 9: whatever the Contact says, an offer never goes to a host
    /// other than the REGISTER's source.
    #[test]
    fn offers_go_to_the_registering_flow_never_the_contact_host() {
        let src = udp("203.0.113.5:40000");
        for contact in [
            "<sip:alice@192.168.1.10:5060>",
            "<sip:alice@198.51.100.7:5062>",
            "<sip:alice@198.51.100.7:5062;transport=tcp>",
            "<sip:alice@198.51.100.7:5062;ob>",
            "<sip:alice@phone.example.com>",
            "<sip:+19005550100@127.0.0.1:5080;user=phone>",
        ] {
            let (peer, route) = binding(contact, src, &[]).next_hop();
            // Only the transport may come from the Contact (`transport=tcp`).
            assert_eq!(peer.addr, src.addr, "{contact}");
            assert!(route.is_empty());
        }
        let tcp = Peer::tcp("203.0.113.5:40000".parse().unwrap(), Some(3));
        let (peer, _) = binding("<sip:alice@198.51.100.7:5062>", tcp, &[]).next_hop();
        assert_eq!(peer, tcp, "TCP: same connection");
    }

    /// Issue 13 item 3: the Contact's `transport=tcp` is honoured (at the
    /// source's address and port, never the Contact's), and a TCP flow is
    /// reused.
    #[test]
    fn contact_transport_at_the_source_address() {
        let src = udp("192.0.2.20:5060");
        let (peer, _) = binding("<sip:alice@192.0.2.20:5062;transport=tcp>", src, &[]).next_hop();
        assert_eq!(peer, Peer::tcp("192.0.2.20:5060".parse().unwrap(), None));
        let tcp = Peer::tcp("192.0.2.20:50123".parse().unwrap(), Some(9));
        let b = binding("<sip:alice@192.0.2.20:5062;transport=tcp>", tcp, &[]);
        assert_eq!(b.next_hop().0, tcp);
        assert_eq!(b.transport(), TransportKind::Tcp);
    }

    /// Issue 13 item 4: behind a proxy the offer goes to the first Path
    /// hop (its port and transport), with the Path as its Route set.
    #[test]
    fn path_is_the_route_set_of_offers() {
        let proxy = udp("192.0.2.10:5060");
        let path = [
            "<sip:192.0.2.10:5070;transport=tcp;lr;received=sip:198.51.100.9:41000>",
            "<sip:edge2.example.com;lr>",
        ];
        let b = binding("<sip:alice@10.1.1.1:5060;transport=tcp>", proxy, &path);
        let (peer, route) = b.next_hop();
        assert_eq!(peer, Peer::tcp("192.0.2.10:5070".parse().unwrap(), None));
        assert_eq!(route, path);
        let b = binding("<sip:alice@10.1.1.1:5060>", proxy, &["<sip:192.0.2.10;lr>"]);
        assert_eq!(b.next_hop().0, udp("192.0.2.10:5060"));
    }
}
