//! The transaction-user interface: what the SIP core tells a call task
//! (`CallEvent`) and what a call task asks of it (`Command`, sent through a
//! `SipHandle`). Calls sit above the endpoint and use this; the endpoint
//! knows nothing of what a call does.

use crate::sip::dialog::session_timer::Limits;
use crate::sip::message::{Request, Response};
use crate::sip::transaction::ServerTxId;
use crate::sip::transport::{Peer, TransportKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Identifies one call (one task) to the SIP core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

impl std::fmt::Display for CallRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What the SIP core tells a call.
#[derive(Debug, Clone)]
pub enum CallEvent {
    /// A request inside one of the call's dialogs (BYE, re-INVITE, INFO…)
    /// or, for an outbound call, nothing else: answer it with `respond`.
    Request {
        tx: ServerTxId,
        request: Request,
        peer: Peer,
    },
    /// The ACK for our 2xx.
    Ack { request: Request },
    /// The caller cancelled the INVITE (already answered 200 to the CANCEL).
    Cancelled,
    /// Our 2xx (or final response) was never acknowledged.
    AckTimeout,
    /// A response to one of the call's requests.
    Response { response: Response, peer: Peer },
    /// A 2xx retransmission after its transaction ended: ACK it again.
    StrayOk { response: Response, peer: Peer },
    /// One of the call's client transactions timed out (Timer B or F):
    /// `branch` names it.
    Timeout { branch: String },
}

/// What a call asks of the SIP core. (Variants carry whole messages; they
/// are moved once through a channel, so boxing would only add allocations.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Respond {
        tx: ServerTxId,
        response: Response,
    },
    /// Starts a client transaction (or sends an ACK as is).
    Request {
        call: CallRef,
        request: Request,
        peer: Peer,
    },
    /// CANCEL the INVITE client transaction with this branch (§9.1).
    Cancel {
        branch: String,
    },
    /// The call is over: forget everything routed to it.
    Ended {
        call: CallRef,
    },
    /// Registers a call created by the application (outbound), so its
    /// events can be delivered.
    Attach {
        call: CallRef,
        events: mpsc::UnboundedSender<CallEvent>,
    },
    /// Shutting down: refuse new calls (503 with Retry-After) and answer
    /// OPTIONS probes 503, so proxies and load balancers send elsewhere;
    /// calls in progress go on.
    Drain,
    /// Whether the database answers: while it does not, OPTIONS probes
    /// are answered 503 so a proxy's dispatcher (Kamailio's OPTIONS
    /// probing) sends new calls and registrations to another node.
    DatabaseOk(bool),
}

/// Our own SIP addresses, for Via and Contact of the requests we send.
#[derive(Debug, Clone)]
pub struct LocalSip {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// Host to advertise instead of the bound address (NAT, DNS name).
    pub public_host: Option<String>,
    pub user_agent: String,
    /// RFC 4028 limits for calls' session timers.
    pub session_timer: Limits,
    /// In-dialog OPTIONS interval while the far end holds (`None`: never).
    pub hold_ping: Option<Duration>,
}

impl LocalSip {
    /// `host:port` we are reachable at for a peer over `kind`.
    pub fn sent_by(&self, kind: TransportKind, peer: &SocketAddr) -> String {
        let list = match kind {
            TransportKind::Udp => &self.udp,
            TransportKind::Tcp => &self.tcp,
        };
        let addr = list
            .iter()
            .find(|a| a.is_ipv4() == peer.is_ipv4())
            .or_else(|| list.first())
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)));
        match &self.public_host {
            Some(h) => format!("{h}:{}", addr.port()),
            None => addr.to_string(),
        }
    }
}

/// A call task's way to the SIP core.
#[derive(Clone)]
pub struct SipHandle {
    tx: mpsc::UnboundedSender<Command>,
    ids: Arc<AtomicU64>,
    pub local: Arc<LocalSip>,
}

impl SipHandle {
    pub fn new(
        tx: mpsc::UnboundedSender<Command>,
        ids: Arc<AtomicU64>,
        local: Arc<LocalSip>,
    ) -> Self {
        SipHandle { tx, ids, local }
    }

    pub fn send(&self, cmd: Command) {
        // The core outlives every call; if it is gone we are shutting down.
        let _ = self.tx.send(cmd);
    }

    pub fn respond(&self, tx: ServerTxId, response: Response) {
        self.send(Command::Respond { tx, response });
    }

    pub fn request(&self, call: CallRef, request: Request, peer: Peer) {
        self.send(Command::Request {
            call,
            request,
            peer,
        });
    }

    /// A new call id for an outbound call.
    pub fn new_call(&self) -> CallRef {
        CallRef(self.ids.fetch_add(1, Ordering::Relaxed))
    }

    pub fn attach(&self, call: CallRef, events: mpsc::UnboundedSender<CallEvent>) {
        self.send(Command::Attach { call, events });
    }

    /// A fresh RFC 3261 branch.
    pub fn branch() -> String {
        format!("z9hG4bK{}", hex::encode(rand::random::<[u8; 8]>()))
    }

    /// A fresh tag.
    pub fn tag() -> String {
        hex::encode(rand::random::<[u8; 6]>())
    }

    /// A Via value with a fresh branch for a request to `peer`.
    pub fn via(&self, peer: &Peer) -> String {
        format!(
            "SIP/2.0/{} {};rport;branch={}",
            peer.kind.via_name(),
            self.local.sent_by(peer.kind, &peer.addr),
            Self::branch()
        )
    }

    /// Our Contact for dialogs with `peer`.
    pub fn contact(&self, user: &str, peer: &Peer) -> String {
        let transport = match peer.kind {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:{user}@{}{transport}>",
            self.local.sent_by(peer.kind, &peer.addr)
        )
    }
}
