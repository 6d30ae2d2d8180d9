//! SIP over TCP (RFC 3261 §18.3): accepting and opening connections,
//! admitting them against the global and per-source caps, and routing
//! what the SIP core sends to the right connection. Serving one
//! connection (framing, deadlines, back-pressure) is in `tcp_conn`, its
//! outbound queue in `outbox`.

use super::admission::{Admission, SourceKey, Verdict};
use super::outbox::Outbox;
use super::tcp_conn::{self, Closed};
use super::{ConnId, Inbound, InboundKind, Peer};
use crate::security::Cidr;
use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

#[derive(Debug, Clone)]
pub struct TcpLimits {
    /// All connections, accepted and opened.
    pub max_connections: usize,
    /// Accepted connections from one IPv4 address or IPv6 /64.
    pub max_per_source: usize,
    /// Exempt from `max_per_source`.
    pub trusted: Vec<Cidr>,
    pub idle_timeout: Duration,
    /// From a message's first byte to its last.
    pub message_timeout: Duration,
    /// For the peer to take a batch we write.
    pub send_timeout: Duration,
    pub max_message: usize,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    remote: SocketAddr,
    outbox: Arc<Outbox>,
}

struct Inner {
    conns: DashMap<ConnId, Conn>,
    next_id: AtomicU64,
    admission: Mutex<Admission>,
    limits: TcpLimits,
    inbound: mpsc::Sender<Inbound>,
}

#[derive(Clone)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

/// A connection's slot and map entry, given back however its task ends.
struct Registered {
    inner: Arc<Inner>,
    id: ConnId,
    source: Option<SourceKey>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.inner.conns.remove(&self.id);
        self.inner.admission.lock().release(self.source);
    }
}

/// Refuses an accepted connection with a RST: no TIME_WAIT left behind
/// for connections a flood makes by the thousand.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

impl TcpTransport {
    pub fn new(limits: TcpLimits, inbound: mpsc::Sender<Inbound>) -> Self {
        let admission = Admission::new(
            limits.max_connections,
            limits.max_per_source,
            limits.trusted.clone(),
        );
        TcpTransport {
            inner: Arc::new(Inner {
                conns: DashMap::new(),
                next_id: AtomicU64::new(1),
                admission: Mutex::new(admission),
                limits,
                inbound,
            }),
        }
    }

    pub fn spawn_listener(&self, listener: TcpListener) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut accept_failing = false;
            loop {
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        accept_failing = false;
                        this.admit(stream, remote);
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning,
                        // and say so once per episode.
                        if !accept_failing {
                            warn!(error = %e, "TCP accept failing; backing off");
                        }
                        accept_failing = true;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    fn admit(&self, stream: TcpStream, remote: SocketAddr) {
        let limits = &self.inner.limits;
        let verdict = self.inner.admission.lock().admit(remote.ip());
        match verdict {
            Verdict::Admit(key) => {
                self.spawn_connection(stream, remote, Some(key));
            }
            Verdict::SourceFull { key, first } => {
                if first {
                    warn!(
                        source = %key,
                        limit = limits.max_per_source,
                        "TCP per-source connection limit reached; refusing further connections from this source"
                    );
                } else {
                    debug!(%remote, "TCP per-source connection limit; refused");
                }
                reset(stream);
            }
            Verdict::Full { first } => {
                if first {
                    warn!(
                        limit = limits.max_connections,
                        "TCP connection limit reached; refusing new connections"
                    );
                } else {
                    debug!(%remote, "TCP connection limit; refused");
                }
                reset(stream);
            }
        }
    }

    /// Gives a connection (accepted, or being opened) its id, outbox and
    /// map entry; both live until the returned `Registered` is dropped.
    fn register(
        &self,
        remote: SocketAddr,
        source: Option<SourceKey>,
    ) -> (
        Registered,
        Peer,
        Arc<Outbox>,
        mpsc::UnboundedReceiver<Bytes>,
    ) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (outbox, rx) = Outbox::new();
        let outbox = Arc::new(outbox);
        self.inner.conns.insert(
            id,
            Conn {
                remote,
                outbox: outbox.clone(),
            },
        );
        let reg = Registered {
            inner: self.inner.clone(),
            id,
            source,
        };
        (reg, Peer::tcp(remote, Some(id)), outbox, rx)
    }

    fn spawn_connection(&self, stream: TcpStream, remote: SocketAddr, source: Option<SourceKey>) {
        let (reg, peer, outbox, rx) = self.register(remote, source);
        tokio::spawn(async move {
            let inner = reg.inner.clone();
            let closed =
                tcp_conn::serve(stream, peer, &inner.limits, &outbox, rx, &inner.inbound).await;
            log_closed(&peer, &closed, &inner.limits);
            drop(reg);
        });
    }

    /// Sends on the peer's connection: the one it came in on, or any open
    /// one to the same address, or a new one. Never waits: the SIP core
    /// calls this for every peer.
    pub fn send(&self, peer: &Peer, data: Bytes) {
        let mut data = data;
        if let Some(id) = peer.conn {
            let outbox = self.inner.conns.get(&id).map(|c| c.outbox.clone());
            if let Some(o) = outbox {
                match o.push(data) {
                    Ok(()) => return,
                    Err(d) => data = d,
                }
            }
        }
        let other = self
            .inner
            .conns
            .iter()
            .find(|c| c.remote == peer.addr && !c.outbox.is_closed())
            .map(|c| c.outbox.clone());
        if let Some(o) = other {
            match o.push(data) {
                Ok(()) => return,
                Err(d) => data = d,
            }
        }
        self.connect(*peer, data);
    }

    /// Opens a connection to `addr` carrying `first`. The connection is
    /// registered at once, so that what is sent to `addr` while it is
    /// being opened queues behind `first`, in order, on the same one.
    /// When it cannot be opened, the core hears of every message queued
    /// for it, so a request's transaction ends at once (RFC 3261 §17.1.4)
    /// instead of waiting out Timer B or F: an offer to a phone whose TCP
    /// flow has closed fails now, not at the offer timeout.
    fn connect(&self, to: Peer, first: Bytes) {
        let addr = to.addr;
        if !self.inner.admission.lock().admit_outbound() {
            debug!(%addr, "TCP connection limit reached; message not sent");
            self.undeliverable(to, vec![first]);
            return;
        }
        let (reg, peer, outbox, mut rx) = self.register(addr, None);
        if let Err(first) = outbox.push(first) {
            self.undeliverable(to, vec![first]);
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let inner = reg.inner.clone();
            let failed = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => Ok(s),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            };
            let stream = match failed {
                Ok(s) => s,
                Err(error) => {
                    debug!(%addr, %error, queued = outbox.queued(), "TCP connect failed");
                    // Unlisted first, so that nothing more queues here.
                    drop(reg);
                    rx.close();
                    let mut lost = Vec::new();
                    while let Ok(d) = rx.try_recv() {
                        lost.push(d);
                    }
                    this.undeliverable(to, lost);
                    return;
                }
            };
            let closed =
                tcp_conn::serve(stream, peer, &inner.limits, &outbox, rx, &inner.inbound).await;
            log_closed(&peer, &closed, &inner.limits);
            drop(reg);
        });
    }
}

impl TcpTransport {
    fn undeliverable(&self, peer: Peer, lost: Vec<Bytes>) {
        let inbound = self.inner.inbound.clone();
        tokio::spawn(async move {
            for data in lost {
                let failed = Inbound {
                    data,
                    peer,
                    kind: InboundKind::Undeliverable,
                    slot: None,
                };
                if inbound.send(failed).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One line per connection: a warning for a peer that stopped reading
/// (an operator wants to know), debug for every ordinary end.
fn log_closed(peer: &Peer, closed: &Closed, limits: &TcpLimits) {
    if closed.is_stuck_peer() {
        warn!(
            %peer,
            send_timeout_s = limits.send_timeout.as_secs(),
            "TCP peer not reading what we send; connection closed: {closed}"
        );
    } else {
        debug!(%peer, reason = %closed, "TCP connection closed");
    }
}
