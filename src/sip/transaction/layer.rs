//! The transaction layer: owns every client and server transaction, matches
//! incoming messages to them, runs their timers and reports to the
//! transaction user (TU). Sans-IO: `on_*` methods take the current time and
//! return `Output`s; the caller owns sockets and the clock.

use super::invite_client::InviteClient;
use super::invite_server::{self, InviteServer};
use super::key::{ClientKey, MergeKey, ServerKey};
use super::non_invite_client::NonInviteClient;
use super::non_invite_server::NonInviteServer;
use super::{Action, TimerConfig};
use crate::sip::message::{MessageExt, Method, Request, Response};
use crate::sip::transport::Peer;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(pub u64);

/// What the layer asks of its owner.
#[derive(Debug, Clone)]
pub enum Output {
    /// Put these bytes on the wire.
    Transmit { peer: Peer, data: Bytes },
    /// A new request (not ACK, not a retransmission). INVITEs have already
    /// been answered 100 Trying.
    Request {
        tx: ServerTxId,
        request: Request,
        peer: Peer,
    },
    /// An ACK outside any transaction: the ACK for a 2xx (§13.3.1.4),
    /// for the dialog layer.
    Ack { request: Request, peer: Peer },
    /// A CANCEL matched this INVITE, which is still proceeding. The CANCEL
    /// was answered 200; the TU must now answer the INVITE 487 (§9.2).
    Cancelled { tx: ServerTxId },
    /// A final INVITE response was never ACKed (Timer H, or Timer L after a
    /// 2xx): the TU should tear the session down (§13.3.1.4).
    AckTimeout { tx: ServerTxId },
    /// A response for one of our client transactions.
    Response {
        tx: ClientTxId,
        response: Response,
        peer: Peer,
    },
    /// A 2xx for an INVITE whose client transaction is gone: the dialog
    /// must ACK it again (§13.2.2.4).
    StrayOk { response: Response, peer: Peer },
    /// Timer B or F fired: treat as 408 (§8.1.3.1).
    Timeout { tx: ClientTxId },
}

enum ServerMachine {
    Invite(InviteServer),
    NonInvite(NonInviteServer),
}

struct ServerEntry {
    key: ServerKey,
    machine: ServerMachine,
    /// Where responses go (§18.2.2, RFC 3581).
    peer: Peer,
    merge: Option<MergeKey>,
    /// For INVITEs answered 2xx: (Call-ID, CSeq) so that the ACK, which has
    /// its own branch, can find us.
    accepted: Option<(String, u32)>,
}

enum ClientMachine {
    Invite(InviteClient),
    NonInvite(NonInviteClient),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    None,
    /// The TU asked to cancel before any provisional response: §9.1 says
    /// wait for one.
    Pending,
    Sent,
}

struct ClientEntry {
    key: ClientKey,
    machine: ClientMachine,
    peer: Peer,
    request: Request,
    ack: Option<Bytes>,
    cancel: CancelState,
}

/// A server transaction past its final response (and, for INVITE, its
/// ACK): what a retransmission still needs and nothing else (issue 15).
/// Under a flood of short transactions these outnumber live ones by far
/// (every one lives 64·T1 over UDP), so they hold no request, no strings
/// and no machine: a keyed hash of the transaction key, the bytes to
/// resend, and the deadline.
struct Retained {
    /// `None`: absorb retransmissions silently (an ACKed INVITE).
    response: Option<Bytes>,
    /// The INVITE was answered 2xx: an ACK reusing its branch (RFC 2543
    /// style) is still the dialog's.
    accepted: bool,
    until: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TxRef {
    Server(ServerTxId),
    Client(ClientTxId),
}

pub struct TransactionLayer {
    timers: TimerConfig,
    next_id: u64,
    servers: HashMap<ServerTxId, ServerEntry>,
    server_keys: HashMap<ServerKey, ServerTxId>,
    merged: HashMap<MergeKey, ServerTxId>,
    accepted: HashMap<(String, u32), ServerTxId>,
    /// By Call-ID, the accepted INVITEs whose ACK has not come yet: a BYE
    /// in that dialog waits for it (§15).
    unacked: HashMap<String, ServerTxId>,
    clients: HashMap<ClientTxId, ClientEntry>,
    client_keys: HashMap<ClientKey, ClientTxId>,
    /// Min-heap of (deadline, transaction). Entries go stale when a machine
    /// re-arms; `on_timeout` checks each against the machine's real deadline.
    heap: BinaryHeap<Reverse<(Instant, TxRef)>>,
    /// Finished server transactions by `hash_key` of their key.
    retained: HashMap<u64, Retained>,
    /// When each retained transaction may go, oldest first.
    retained_heap: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> Self {
        TransactionLayer {
            timers,
            next_id: 1,
            servers: HashMap::new(),
            server_keys: HashMap::new(),
            merged: HashMap::new(),
            accepted: HashMap::new(),
            unacked: HashMap::new(),
            clients: HashMap::new(),
            client_keys: HashMap::new(),
            heap: BinaryHeap::new(),
            retained: HashMap::new(),
            retained_heap: BinaryHeap::new(),
        }
    }

    /// Finished server transactions still answering retransmissions, and
    /// the response bytes they hold: for metrics and tests.
    pub fn retained(&self) -> (usize, usize) {
        let bytes = self
            .retained
            .values()
            .map(|r| r.response.as_ref().map_or(0, Bytes::len))
            .sum();
        (self.retained.len(), bytes)
    }

    pub fn timers(&self) -> TimerConfig {
        self.timers
    }

    /// Number of live transactions (server, client): for metrics and tests.
    pub fn counts(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    /// Client transactions still waiting for a final response (a BYE or
    /// CANCEL sent at shutdown, say).
    pub fn awaiting_answer(&self) -> usize {
        self.clients
            .values()
            .filter(|e| match &e.machine {
                ClientMachine::Invite(m) => matches!(
                    m.state(),
                    super::invite_client::State::Calling | super::invite_client::State::Proceeding
                ),
                ClientMachine::NonInvite(m) => matches!(
                    m.state(),
                    super::non_invite_client::State::Trying
                        | super::non_invite_client::State::Proceeding
                ),
            })
            .count()
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- server side ------------------------------------------------------

    /// A validated request arrived. `peer` is where responses must go.
    pub fn on_request(&mut self, req: Request, peer: Peer, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(key) = ServerKey::for_request(&req) else {
            return out;
        };
        if let Some(&id) = self.server_keys.get(&key) {
            self.on_matched_request(id, &req, peer, now, &mut out);
            return out;
        }
        if let Some(r) = self.retained.get(&hash_key(&key)) {
            // §17.2.1/§17.2.2: a retransmission of a request already
            // answered gets the final response again (or is absorbed).
            if req.method == Method::Ack {
                if r.accepted {
                    out.push(Output::Ack { request: req, peer });
                }
            } else if let Some(data) = &r.response {
                out.push(Output::Transmit {
                    peer,
                    data: data.clone(),
                });
            }
            return out;
        }
        match req.method {
            Method::Ack => self.on_unmatched_ack(req, peer, now, &mut out),
            Method::Cancel => self.on_cancel(req, key, peer, now, &mut out),
            _ => {
                let merge = MergeKey::for_request(&req);
                if let Some(m) = &merge
                    && self.merged.contains_key(m)
                {
                    // Same request by another path (§8.2.2.2): 482, and
                    // no transaction of its own beyond the answer.
                    let id = self.create_server(key, &req, peer, None, now);
                    let resp = Response::to_request(&req, 482, Some(&tag_for(id)));
                    self.respond(id, &resp, now, &mut out);
                    return out;
                }
                let id = self.create_server(key, &req, peer, merge, now);
                if req.method == Method::Invite {
                    // §17.2.1: a 100 right away keeps the client's Timer A
                    // from retransmitting while the TU decides.
                    let trying = Response::to_request(&req, 100, None);
                    self.respond(id, &trying, now, &mut out);
                }
                out.push(Output::Request {
                    tx: id,
                    request: req,
                    peer,
                });
            }
        }
        out
    }

    fn create_server(
        &mut self,
        key: ServerKey,
        req: &Request,
        peer: Peer,
        merge: Option<MergeKey>,
        now: Instant,
    ) -> ServerTxId {
        let id = ServerTxId(self.id());
        let reliable = peer.kind.is_reliable();
        let machine = if req.method == Method::Invite {
            ServerMachine::Invite(InviteServer::new(now, reliable, self.timers))
        } else {
            ServerMachine::NonInvite(NonInviteServer::new(now, reliable, self.timers))
        };
        self.server_keys.insert(key.clone(), id);
        if let Some(m) = &merge {
            self.merged.insert(m.clone(), id);
        }
        self.servers.insert(
            id,
            ServerEntry {
                key,
                machine,
                peer,
                merge,
                accepted: None,
            },
        );
        self.arm(TxRef::Server(id));
        id
    }

    fn on_matched_request(
        &mut self,
        id: ServerTxId,
        req: &Request,
        peer: Peer,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(entry) = self.servers.get_mut(&id) else {
            return;
        };
        let actions = match (&mut entry.machine, &req.method) {
            (ServerMachine::Invite(m), Method::Ack) => {
                let was_accepted = m.state() == invite_server::State::Accepted;
                let a = m.on_ack(now);
                if was_accepted {
                    // An RFC 2543-style ACK for our 2xx reused the branch.
                    out.push(Output::Ack {
                        request: req.clone(),
                        peer,
                    });
                }
                a
            }
            (ServerMachine::Invite(m), _) => m.on_request_retransmit(),
            (ServerMachine::NonInvite(m), _) => m.on_request_retransmit(),
        };
        self.apply_server(id, actions, out);
    }

    fn on_unmatched_ack(&mut self, req: Request, peer: Peer, now: Instant, out: &mut Vec<Output>) {
        if let (Some(call_id), Ok(cseq)) = (req.call_id(), req.cseq())
            && let Some(&id) = self.accepted.get(&(call_id.to_string(), cseq.seq))
            && let Some(ServerEntry {
                machine: ServerMachine::Invite(m),
                ..
            }) = self.servers.get_mut(&id)
        {
            let actions = m.on_ack(now);
            if self.unacked.get(call_id) == Some(&id) {
                self.unacked.remove(call_id);
            }
            self.apply_server(id, actions, out);
        }
        out.push(Output::Ack { request: req, peer });
    }

    fn on_cancel(
        &mut self,
        req: Request,
        key: ServerKey,
        peer: Peer,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let invite_key = ServerKey::invite_for_cancel(&req);
        let invite = invite_key
            .as_ref()
            .and_then(|k| self.server_keys.get(k).copied());
        let answered = invite_key.is_some_and(|k| self.retained.contains_key(&hash_key(&k)));
        let id = self.create_server(key, &req, peer, None, now);
        match invite {
            // §9.2: the INVITE has its final response and ACK already;
            // the CANCEL has no effect but matched a transaction.
            None if answered => {
                let resp = Response::to_request(&req, 200, Some(&tag_for(id)));
                self.respond(id, &resp, now, out);
            }
            None => {
                let resp = Response::to_request(&req, 481, Some(&tag_for(id)));
                self.respond(id, &resp, now, out);
            }
            Some(invite_id) => {
                // The CANCEL's 200 carries the To tag the INVITE's responses
                // will carry (§9.2), so both use the INVITE's id.
                let resp = Response::to_request(&req, 200, Some(&tag_for(invite_id)));
                self.respond(id, &resp, now, out);
                let proceeding = matches!(
                    self.servers.get(&invite_id).map(|e| &e.machine),
                    Some(ServerMachine::Invite(m)) if m.state() == invite_server::State::Proceeding
                );
                if proceeding {
                    out.push(Output::Cancelled { tx: invite_id });
                }
            }
        }
    }

    /// The TU answers a server transaction. Unknown or finished
    /// transactions are ignored (the TU may race a CANCEL or a timeout).
    pub fn respond(
        &mut self,
        id: ServerTxId,
        resp: &Response,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let bytes = resp.encode();
        let Some(entry) = self.servers.get_mut(&id) else {
            return;
        };
        let actions = match &mut entry.machine {
            ServerMachine::Invite(m) => {
                let a = m.respond(resp.status, bytes, now);
                if (200..300).contains(&resp.status)
                    && entry.accepted.is_none()
                    && let (Some(cid), Ok(cseq)) = (resp.call_id(), resp.cseq())
                {
                    let k = (cid.to_string(), cseq.seq);
                    self.accepted.insert(k.clone(), id);
                    self.unacked.insert(k.0.clone(), id);
                    entry.accepted = Some(k);
                }
                a
            }
            ServerMachine::NonInvite(m) => m.respond(resp.status, bytes, now),
        };
        self.apply_server(id, actions, out);
    }

    /// Answers a server transaction and forgets it at once: a
    /// retransmission of the request is then handled as a new request.
    /// For answers that cost nothing to recompute and change no state (a
    /// REGISTER's digest challenge, RFC 3261 §8.2.7), so that a flood of
    /// them holds no memory.
    pub fn respond_stateless(&mut self, id: ServerTxId, resp: &Response, out: &mut Vec<Output>) {
        if let Some(entry) = self.servers.get(&id) {
            out.push(Output::Transmit {
                peer: entry.peer,
                data: resp.encode(),
            });
            self.remove_server(id);
        }
    }

    /// Convenience wrapper returning the outputs.
    pub fn respond_now(&mut self, id: ServerTxId, resp: &Response, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        self.respond(id, resp, now, &mut out);
        out
    }

    /// The INVITE server transaction of `call_id` whose 2xx is still
    /// being retransmitted, waiting for its ACK (§13.3.1.4).
    pub fn awaiting_ack(&self, call_id: &str) -> Option<ServerTxId> {
        self.unacked.get(call_id).copied()
    }

    /// Where responses for this server transaction are sent.
    pub fn server_peer(&self, id: ServerTxId) -> Option<Peer> {
        self.servers.get(&id).map(|e| e.peer)
    }

    fn apply_server(&mut self, id: ServerTxId, actions: Vec<Action>, out: &mut Vec<Output>) {
        let Some(peer) = self.servers.get(&id).map(|e| e.peer) else {
            return;
        };
        let mut terminated = false;
        for a in actions {
            match a {
                Action::Transmit(data) => out.push(Output::Transmit { peer, data }),
                Action::Timeout => {
                    // Never acknowledged: nothing waits for that ACK now.
                    if let Some(cid) = self.servers.get(&id).and_then(|e| e.accepted.as_ref())
                        && self.unacked.get(&cid.0) == Some(&id)
                    {
                        self.unacked.remove(&cid.0);
                    }
                    out.push(Output::AckTimeout { tx: id })
                }
                Action::Terminated => terminated = true,
                Action::Deliver | Action::SendAck => {}
            }
        }
        if terminated {
            self.remove_server(id);
        } else if !self.retire(id) {
            self.arm(TxRef::Server(id));
        }
    }

    /// Replaces a server transaction that will only ever answer
    /// retransmissions again by its `Retained` record.
    fn retire(&mut self, id: ServerTxId) -> bool {
        let Some(entry) = self.servers.get(&id) else {
            return false;
        };
        let (response, accepted, until) = match &entry.machine {
            ServerMachine::NonInvite(m) => match m.retention() {
                Some((response, until)) => (response, false, until),
                None => return false,
            },
            ServerMachine::Invite(m) => match m.retention() {
                Some((until, accepted)) => (None, accepted, until),
                None => return false,
            },
        };
        let h = hash_key(&entry.key);
        self.remove_server(id);
        self.retained.insert(
            h,
            Retained {
                response,
                accepted,
                until,
            },
        );
        self.retained_heap.push(Reverse((until, h)));
        true
    }

    fn remove_server(&mut self, id: ServerTxId) {
        if let Some(entry) = self.servers.remove(&id) {
            if self.server_keys.get(&entry.key) == Some(&id) {
                self.server_keys.remove(&entry.key);
            }
            if let Some(m) = entry.merge
                && self.merged.get(&m) == Some(&id)
            {
                self.merged.remove(&m);
            }
            if let Some(a) = entry.accepted {
                if self.unacked.get(&a.0) == Some(&id) {
                    self.unacked.remove(&a.0);
                }
                if self.accepted.get(&a) == Some(&id) {
                    self.accepted.remove(&a);
                }
            }
        }
    }

    // ---- client side ------------------------------------------------------

    /// Starts a client transaction for `req`, whose top Via must carry a
    /// fresh branch. ACKs are not transactions: they are sent as is.
    pub fn send_request(
        &mut self,
        req: Request,
        peer: Peer,
        now: Instant,
    ) -> (Option<ClientTxId>, Vec<Output>) {
        let bytes = req.encode();
        if req.method == Method::Ack {
            return (None, vec![Output::Transmit { peer, data: bytes }]);
        }
        let Some(key) = ClientKey::for_request(&req) else {
            return (None, Vec::new());
        };
        let id = ClientTxId(self.id());
        let reliable = peer.kind.is_reliable();
        let (machine, actions) = if req.method == Method::Invite {
            let (m, a) = InviteClient::new(bytes, now, reliable, self.timers);
            (ClientMachine::Invite(m), a)
        } else {
            let (m, a) = NonInviteClient::new(bytes, now, reliable, self.timers);
            (ClientMachine::NonInvite(m), a)
        };
        self.client_keys.insert(key.clone(), id);
        self.clients.insert(
            id,
            ClientEntry {
                key,
                machine,
                peer,
                request: req,
                ack: None,
                cancel: CancelState::None,
            },
        );
        let mut out = Vec::new();
        self.apply_client(id, actions, None, &mut out);
        (Some(id), out)
    }

    /// Cancels a pending INVITE (§9.1): now if a provisional response came,
    /// otherwise as soon as one does. Returns the CANCEL's transaction id
    /// when it was sent.
    pub fn cancel(&mut self, id: ClientTxId, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(entry) = self.clients.get_mut(&id) else {
            return out;
        };
        let ClientMachine::Invite(m) = &entry.machine else {
            return out;
        };
        match (m.state(), entry.cancel) {
            (super::invite_client::State::Calling, CancelState::None) => {
                entry.cancel = CancelState::Pending;
            }
            (super::invite_client::State::Proceeding, CancelState::None) => {
                self.send_cancel(id, now, &mut out);
            }
            _ => {}
        }
        out
    }

    fn send_cancel(&mut self, id: ClientTxId, now: Instant, out: &mut Vec<Output>) {
        let Some(entry) = self.clients.get_mut(&id) else {
            return;
        };
        entry.cancel = CancelState::Sent;
        let cancel = entry.request.cancel();
        let peer = entry.peer;
        let (_, o) = self.send_request(cancel, peer, now);
        out.extend(o);
    }

    /// A request of client transaction `id` could not be sent (no TCP
    /// connection could be opened): the transaction ends at once and its
    /// user hears of it as of a timeout (§17.1.4, §8.1.3.1).
    pub fn transport_error(&mut self, id: ClientTxId) -> Vec<Output> {
        let mut out = Vec::new();
        if self.clients.contains_key(&id) {
            self.apply_client(
                id,
                vec![Action::Timeout, Action::Terminated],
                None,
                &mut out,
            );
        }
        out
    }

    pub fn on_response(&mut self, resp: Response, peer: Peer, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(id) =
            ClientKey::for_response(&resp).and_then(|k| self.client_keys.get(&k).copied())
        else {
            let is_invite_ok = (200..300).contains(&resp.status)
                && resp.cseq().is_ok_and(|c| c.method == Method::Invite);
            if is_invite_ok {
                out.push(Output::StrayOk {
                    response: resp,
                    peer,
                });
            }
            return out;
        };
        let Some(entry) = self.clients.get_mut(&id) else {
            return out;
        };
        let actions = match &mut entry.machine {
            ClientMachine::Invite(m) => m.on_response(resp.status, now),
            ClientMachine::NonInvite(m) => m.on_response(resp.status, now),
        };
        let cancel_now = entry.cancel == CancelState::Pending && resp.status < 200;
        if resp.status >= 200 && entry.cancel == CancelState::Pending {
            entry.cancel = CancelState::None;
        }
        self.apply_client(id, actions, Some((resp, peer)), &mut out);
        if cancel_now {
            self.send_cancel(id, now, &mut out);
        }
        out
    }

    fn apply_client(
        &mut self,
        id: ClientTxId,
        actions: Vec<Action>,
        resp: Option<(Response, Peer)>,
        out: &mut Vec<Output>,
    ) {
        let mut terminated = false;
        for a in actions {
            let Some(entry) = self.clients.get_mut(&id) else {
                return;
            };
            match a {
                Action::Transmit(data) => out.push(Output::Transmit {
                    peer: entry.peer,
                    data,
                }),
                Action::SendAck => {
                    if entry.ack.is_none()
                        && let Some((r, _)) = &resp
                    {
                        entry.ack = Some(entry.request.ack_for_non_2xx(r).encode());
                    }
                    if let Some(ack) = &entry.ack {
                        out.push(Output::Transmit {
                            peer: entry.peer,
                            data: ack.clone(),
                        });
                    }
                }
                Action::Deliver => {
                    if let Some((r, p)) = &resp {
                        out.push(Output::Response {
                            tx: id,
                            response: r.clone(),
                            peer: *p,
                        });
                    }
                }
                Action::Timeout => out.push(Output::Timeout { tx: id }),
                Action::Terminated => terminated = true,
            }
        }
        if terminated {
            if let Some(entry) = self.clients.remove(&id)
                && self.client_keys.get(&entry.key) == Some(&id)
            {
                self.client_keys.remove(&entry.key);
            }
        } else {
            self.arm(TxRef::Client(id));
        }
    }

    // ---- timers -----------------------------------------------------------

    fn deadline(&self, r: TxRef) -> Option<Instant> {
        match r {
            TxRef::Server(id) => self.servers.get(&id).and_then(|e| match &e.machine {
                ServerMachine::Invite(m) => m.next_deadline(),
                ServerMachine::NonInvite(m) => m.next_deadline(),
            }),
            TxRef::Client(id) => self.clients.get(&id).and_then(|e| match &e.machine {
                ClientMachine::Invite(m) => m.next_deadline(),
                ClientMachine::NonInvite(m) => m.next_deadline(),
            }),
        }
    }

    fn arm(&mut self, r: TxRef) {
        if let Some(at) = self.deadline(r) {
            self.heap.push(Reverse((at, r)));
        }
        // Stale entries (a machine re-armed, finished or retired) would
        // otherwise stay until their deadline, up to 64·T1 for every
        // transaction of a flood: drop them once they outnumber the live.
        // Compaction leaves at most one entry per live transaction, so it
        // runs again only after as many pushes: amortised O(log n).
        let live = self.servers.len() + self.clients.len();
        if self.heap.len() > 2 * live + 1024 {
            let mut entries: Vec<(Instant, TxRef)> = std::mem::take(&mut self.heap)
                .into_iter()
                .map(|Reverse(e)| e)
                .filter(|(at, r)| self.deadline(*r) == Some(*at))
                .collect();
            entries.sort_unstable();
            entries.dedup();
            self.heap = entries.into_iter().map(Reverse).collect();
        }
    }

    /// When `on_timeout` should next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        let live = self.heap.peek().map(|Reverse((at, _))| *at);
        let retained = self.retained_heap.peek().map(|Reverse((at, _))| *at);
        match (live, retained) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(Reverse((at, h))) = self.retained_heap.peek().copied() {
            if at > now {
                break;
            }
            self.retained_heap.pop();
            // Timer J, I or L: the record goes, silently. (A key retired
            // twice, by a new transaction reusing it, keeps the later one.)
            if self.retained.get(&h).is_some_and(|r| r.until == at) {
                self.retained.remove(&h);
            }
        }
        if self.retained.is_empty() && self.retained.capacity() > 1024 {
            // A flood is over: give its table back.
            self.retained.shrink_to_fit();
            self.retained_heap.shrink_to_fit();
        }
        while let Some(Reverse((at, r))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            // Skip stale heap entries: the machine re-armed or finished.
            if self.deadline(r) != Some(at) {
                continue;
            }
            match r {
                TxRef::Server(id) => {
                    let actions = match self.servers.get_mut(&id).map(|e| &mut e.machine) {
                        Some(ServerMachine::Invite(m)) => m.on_timeout(now),
                        Some(ServerMachine::NonInvite(m)) => m.on_timeout(now),
                        None => continue,
                    };
                    self.apply_server(id, actions, &mut out);
                }
                TxRef::Client(id) => {
                    let actions = match self.clients.get_mut(&id).map(|e| &mut e.machine) {
                        Some(ClientMachine::Invite(m)) => m.on_timeout(now),
                        Some(ClientMachine::NonInvite(m)) => m.on_timeout(now),
                        None => continue,
                    };
                    self.apply_client(id, actions, None, &mut out);
                }
            }
        }
        out
    }
}

/// A retained transaction's key: a keyed 64-bit hash of its `ServerKey`.
/// The key is secret and random per process, so a collision cannot be
/// aimed at (it would hand one client another's response); by chance it
/// is ~10⁻⁹ with a million transactions retained.
fn hash_key(key: &ServerKey) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEY.get_or_init(std::collections::hash_map::RandomState::new)
        .hash_one(key)
}

/// The To tag of every response of server transaction `id`: the one
/// source of it, for the layer's own answers (the CANCEL's 200, 481, 482)
/// and the transaction user's (the UAS's 180/200/487, the registrar's), so
/// the CANCEL's 200 and the INVITE's 487 carry the same tag (RFC 3261
/// §9.2). A keyed hash of the id: no state per transaction, yet tags are
/// unguessable (§19.3 wants 32 random bits; a predictable tag would let a
/// third party aim in-dialog requests at our calls).
pub fn tag_for(id: ServerTxId) -> String {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    format!("{:016x}", key.hash_one(id.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse_datagram};
    use std::time::Duration;

    fn req(text: &str) -> Request {
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn resp(bytes: &Bytes) -> Response {
        match parse_datagram(bytes) {
            Ok(SipMessage::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn invite(branch: &str) -> Request {
        req(&format!(
            "INVITE sip:100@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:100@gw>\r\nCall-ID: call1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\r\n"
        ))
    }

    fn peer() -> Peer {
        Peer::udp("10.0.0.1:5060".parse().unwrap())
    }

    fn transmitted(out: &[Output]) -> Vec<Response> {
        out.iter()
            .filter_map(|o| match o {
                Output::Transmit { data, .. } => Some(resp(data)),
                _ => None,
            })
            .collect()
    }

    /// §17.1.4: a request that could not be sent ends its transaction at
    /// once; the user hears a timeout, nothing is retransmitted later.
    #[test]
    fn a_transport_error_ends_the_client_transaction() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let tcp = Peer::tcp("10.0.0.1:5060".parse().unwrap(), None);
        let (tx, _) = l.send_request(invite("z9hG4bKte"), tcp, t0);
        let tx = tx.unwrap();
        let out = l.transport_error(tx);
        assert!(matches!(out.as_slice(), [Output::Timeout { tx: t }] if *t == tx));
        assert_eq!(l.awaiting_answer(), 0);
        assert!(l.on_timeout(t0 + Duration::from_secs(60)).is_empty());
        assert!(l.transport_error(tx).is_empty(), "once");
    }

    #[test]
    fn invite_gets_trying_and_reaches_tu_once() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let out = l.on_request(invite("z9hG4bKa"), peer(), t0);
        assert_eq!(transmitted(&out)[0].status, 100);
        assert!(out.iter().any(|o| matches!(o, Output::Request { .. })));
        // retransmission: 100 again, TU not bothered
        let out = l.on_request(invite("z9hG4bKa"), peer(), t0 + Duration::from_millis(500));
        assert_eq!(transmitted(&out).len(), 1);
        assert!(!out.iter().any(|o| matches!(o, Output::Request { .. })));
    }

    #[test]
    fn cancel_matches_invite_then_487_and_ack_end_it() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let out = l.on_request(invite("z9hG4bKc"), peer(), t0);
        let (tx, inv) = out
            .iter()
            .find_map(|o| match o {
                Output::Request { tx, request, .. } => Some((*tx, request.clone())),
                _ => None,
            })
            .unwrap();
        let cancel = req(core::str::from_utf8(&inv.cancel().encode()).unwrap());
        let out = l.on_request(cancel, peer(), t0);
        let sent = transmitted(&out);
        assert_eq!(sent[0].status, 200);
        assert_eq!(sent[0].cseq().unwrap().method, Method::Cancel);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Cancelled { tx: t } if *t == tx))
        );
        let r487 = Response::to_request(&inv, 487, Some(&tag_for(tx)));
        let out = l.respond_now(tx, &r487, t0);
        assert_eq!(transmitted(&out)[0].status, 487);
        // the CANCEL's 200 and the 487 carry the same To tag (§9.2)
        assert_eq!(sent[0].to_tag(), transmitted(&out)[0].to_tag());
        let ack = inv.ack_for_non_2xx(&r487);
        let ack = req(core::str::from_utf8(&ack.encode()).unwrap());
        let out = l.on_request(ack, peer(), t0 + Duration::from_millis(10));
        assert!(out.is_empty());
        // Timer I then ends both transactions
        l.on_timeout(t0 + Duration::from_secs(40));
        assert_eq!(l.counts(), (0, 0));
    }

    #[test]
    fn cancel_without_invite_gets_481() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let cancel = invite("z9hG4bKx").cancel();
        let cancel = req(core::str::from_utf8(&cancel.encode()).unwrap());
        let out = l.on_request(cancel, peer(), t0);
        assert_eq!(transmitted(&out)[0].status, 481);
    }

    #[test]
    fn merged_request_gets_482() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        l.on_request(invite("z9hG4bK1"), peer(), t0);
        let out = l.on_request(invite("z9hG4bK2"), peer(), t0);
        let sent = transmitted(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].status, 482);
        assert!(!out.iter().any(|o| matches!(o, Output::Request { .. })));
    }

    #[test]
    fn ok_retransmitted_until_ack_with_new_branch() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let out = l.on_request(invite("z9hG4bKo"), peer(), t0);
        let (tx, inv) = out
            .iter()
            .find_map(|o| match o {
                Output::Request { tx, request, .. } => Some((*tx, request.clone())),
                _ => None,
            })
            .unwrap();
        l.respond_now(tx, &Response::to_request(&inv, 200, Some("t")), t0);
        assert_eq!(
            transmitted(&l.on_timeout(t0 + Duration::from_millis(500))).len(),
            1
        );
        let ack = req(
            "ACK sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnew\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:100@gw>;tag=t\r\nCall-ID: call1\r\nCSeq: 1 ACK\r\n\r\n",
        );
        let out = l.on_request(ack, peer(), t0 + Duration::from_millis(600));
        assert!(matches!(out.as_slice(), [Output::Ack { .. }]));
        assert!(transmitted(&l.on_timeout(t0 + Duration::from_millis(1500))).is_empty());
        assert!(l.on_timeout(t0 + Duration::from_secs(33)).is_empty());
        assert_eq!(l.counts(), (0, 0));
    }

    fn options(branch: &str) -> Request {
        req(&format!(
            "OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:gw>\r\nCall-ID: opt-{branch}\r\nCSeq: 1 OPTIONS\r\n\r\n"
        ))
    }

    fn new_tx(out: &[Output]) -> Option<(ServerTxId, Request)> {
        out.iter().find_map(|o| match o {
            Output::Request { tx, request, .. } => Some((*tx, request.clone())),
            _ => None,
        })
    }

    /// Issue 15: after its final response a non-INVITE transaction keeps
    /// only the response bytes (no live machine, no request), resends
    /// exactly them to retransmissions, and is gone after Timer J.
    #[test]
    fn a_completed_transaction_keeps_only_its_response_until_j() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let (tx, r) = new_tx(&l.on_request(options("z9hG4bKr1"), peer(), t0)).unwrap();
        assert_eq!(l.counts(), (1, 0));
        let ok = Response::to_request(&r, 200, Some(&tag_for(tx)));
        let sent = l.respond_now(tx, &ok, t0);
        let Some(Output::Transmit { data: first, .. }) = sent.first() else {
            panic!("{sent:?}")
        };
        assert_eq!(l.counts(), (0, 0), "no live transaction left");
        assert_eq!(l.retained(), (1, first.len()), "only the response bytes");
        let t = t0 + Duration::from_secs(20);
        let again = l.on_request(options("z9hG4bKr1"), peer(), t);
        assert!(
            matches!(again.as_slice(), [Output::Transmit { data, .. }] if data == first),
            "{again:?}"
        );
        // Another branch is another transaction.
        assert!(new_tx(&l.on_request(options("z9hG4bKr2"), peer(), t)).is_some());
        assert_eq!(l.next_timeout(), Some(t0 + Duration::from_secs(32)));
        assert!(l.on_timeout(t0 + Duration::from_secs(32)).is_empty());
        assert_eq!(l.retained().0, 0, "Timer J ended it");
        // Past J the same request is new to us (the client gave up at F).
        let late = l.on_request(options("z9hG4bKr1"), peer(), t0 + Duration::from_secs(33));
        assert!(new_tx(&late).is_some());
    }

    /// Issue 15: an ACKed INVITE keeps nothing to send: retransmitted
    /// INVITEs and ACKs are absorbed until Timer I (non-2xx) or L (2xx),
    /// and an ACK reusing a 2xx's branch still reaches the dialog.
    #[test]
    fn an_acked_invite_keeps_no_response() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let (tx, inv) = new_tx(&l.on_request(invite("z9hG4bKi1"), peer(), t0)).unwrap();
        let r486 = Response::to_request(&inv, 486, Some(&tag_for(tx)));
        l.respond_now(tx, &r486, t0);
        assert_eq!(l.retained().0, 0, "the 486 is resent until the ACK");
        let ack = inv.ack_for_non_2xx(&r486);
        let ack = req(core::str::from_utf8(&ack.encode()).unwrap());
        assert!(
            l.on_request(ack.clone(), peer(), t0 + Duration::from_millis(5))
                .is_empty()
        );
        assert_eq!(l.counts(), (0, 0));
        assert_eq!(l.retained(), (1, 0));
        assert!(
            l.on_request(invite("z9hG4bKi1"), peer(), t0 + Duration::from_secs(1))
                .is_empty()
        );
        assert!(
            l.on_request(ack, peer(), t0 + Duration::from_secs(1))
                .is_empty()
        );
        // §9.2: a late CANCEL still finds it, and changes nothing.
        let cancel = req(core::str::from_utf8(&inv.cancel().encode()).unwrap());
        let out = l.on_request(cancel, peer(), t0 + Duration::from_secs(2));
        assert_eq!(transmitted(&out)[0].status, 200);
        assert!(!out.iter().any(|o| matches!(o, Output::Cancelled { .. })));
        l.on_timeout(t0 + Duration::from_secs(6));
        assert_eq!(l.retained().0, 1, "the CANCEL's own 200 is retained");
        l.on_timeout(t0 + Duration::from_secs(40));
        assert_eq!(l.retained().0, 0);

        let (tx, inv) = new_tx(&l.on_request(invite("z9hG4bKi2"), peer(), t0)).unwrap();
        l.respond_now(tx, &Response::to_request(&inv, 200, Some("t")), t0);
        let same_branch_ack = req(
            "ACK sip:100@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKi2\r\nFrom: <sip:a@x>;tag=f1\r\nTo: <sip:100@gw>;tag=t\r\nCall-ID: call1\r\nCSeq: 1 ACK\r\n\r\n",
        );
        let out = l.on_request(
            same_branch_ack.clone(),
            peer(),
            t0 + Duration::from_millis(5),
        );
        assert!(matches!(out.as_slice(), [Output::Ack { .. }]));
        assert_eq!(l.retained(), (1, 0), "a 2xx is not kept once ACKed");
        assert!(
            l.on_request(invite("z9hG4bKi2"), peer(), t0 + Duration::from_secs(1))
                .is_empty()
        );
        let out = l.on_request(same_branch_ack, peer(), t0 + Duration::from_secs(1));
        assert!(matches!(out.as_slice(), [Output::Ack { .. }]));
        assert!(l.on_timeout(t0 + Duration::from_secs(40)).is_empty());
        assert_eq!(l.retained().0, 0);
    }

    /// Re-arming a machine at the same deadline (every provisional
    /// response, every absorbed retransmission) must not grow the timer
    /// heap without bound, nor make each arm rebuild it.
    #[test]
    fn the_timer_heap_stays_bounded() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let (tx, inv) = new_tx(&l.on_request(invite("z9hG4bKh1"), peer(), t0)).unwrap();
        let ringing = Response::to_request(&inv, 180, Some(&tag_for(tx)));
        for _ in 0..5_000 {
            l.respond_now(tx, &ringing, t0);
        }
        assert!(l.heap.len() <= 1026, "{}", l.heap.len());
    }

    /// A stateless answer leaves nothing behind: the retransmission is a
    /// new request.
    #[test]
    fn a_stateless_answer_keeps_nothing() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let (tx, r) = new_tx(&l.on_request(options("z9hG4bKs1"), peer(), t0)).unwrap();
        let mut out = Vec::new();
        l.respond_stateless(tx, &Response::to_request(&r, 401, Some("t")), &mut out);
        assert_eq!(transmitted(&out)[0].status, 401);
        assert_eq!(l.counts(), (0, 0));
        assert_eq!(l.retained().0, 0);
        assert!(l.on_timeout(t0 + Duration::from_secs(70)).is_empty());
        assert!(new_tx(&l.on_request(options("z9hG4bKs1"), peer(), t0)).is_some());
    }

    #[test]
    fn client_cancel_waits_for_provisional() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let (tx, out) = l.send_request(invite("z9hG4bKcl"), peer(), t0);
        let tx = tx.unwrap();
        assert_eq!(out.len(), 1);
        assert!(l.cancel(tx, t0).is_empty(), "no CANCEL before a 1xx");
        let ringing = resp(&Response::to_request(&invite("z9hG4bKcl"), 180, Some("r")).encode());
        let out = l.on_response(ringing, peer(), t0);
        let cancel_sent = out.iter().any(|o| match o {
            Output::Transmit { data, .. } => data.starts_with(b"CANCEL "),
            _ => false,
        });
        assert!(cancel_sent);
        // 487 for the INVITE: ACKed by the layer, delivered to TU
        let r487 = resp(&Response::to_request(&invite("z9hG4bKcl"), 487, Some("r")).encode());
        let out = l.on_response(r487, peer(), t0);
        let ack = out.iter().any(|o| match o {
            Output::Transmit { data, .. } => data.starts_with(b"ACK "),
            _ => false,
        });
        assert!(ack);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Response { response, .. } if response.status == 487))
        );
    }

    #[test]
    fn client_timeout_is_reported() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let opts = req(
            "OPTIONS sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP me;branch=z9hG4bKopt\r\nFrom: <sip:gw@me>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        let (tx, _) = l.send_request(opts, peer(), t0);
        let mut retrans = 0;
        let mut timeout = false;
        while let Some(at) = l.next_timeout() {
            for o in l.on_timeout(at) {
                match o {
                    Output::Transmit { .. } => retrans += 1,
                    Output::Timeout { tx: t } => timeout = Some(t) == tx,
                    _ => {}
                }
            }
        }
        assert_eq!(retrans, 10);
        assert!(timeout);
        assert_eq!(l.counts(), (0, 0));
    }
}
