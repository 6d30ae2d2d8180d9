//! The SIP endpoint: everything between bytes arriving and the transaction
//! user deciding what to do. Parses, refuses what is malformed or hostile,
//! feeds the transaction layer and answers what needs no call logic
//! (OPTIONS, REGISTER, unknown methods). Sans-IO: the runtime passes
//! datagrams, stream frames and the time; it gets back transmissions.

pub mod addressing;
pub mod capabilities;
mod held_bye;
pub mod tu;

use crate::config::Config;
use crate::registrar::{Bindings, Registrar};
use crate::security::RateLimiter;
use crate::sip::dialog::DialogId;
use crate::sip::message::validate::{Rejection, validate_request};
use crate::sip::message::{
    BadMessage, HeaderName, Headers, MessageExt, Method, Request, Response, SipMessage, Via,
    parse_datagram, parse_stream_message,
};
use crate::sip::transaction::ClientTxId;
use crate::sip::transaction::layer::tag_for;
use crate::sip::transaction::{Output as TxOutput, ServerTxId, TimerConfig, TransactionLayer};
use crate::sip::transport::Peer;
use crate::telemetry::{TxOutcome, TxRole};
use addressing::{response_peer, stamp_received};
use bytes::Bytes;
use held_bye::{Held, HeldByes};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::debug;
use tu::{CallEvent, CallRef, Command};

/// What the endpoint asks of the runtime.
#[derive(Debug, Clone)]
pub enum Output {
    Transmit {
        peer: Peer,
        data: Bytes,
    },
    /// A new INVITE: the application decides what to do with it. 100
    /// Trying has been sent.
    NewCall {
        call: CallRef,
        tx: ServerTxId,
        request: Request,
        peer: Peer,
    },
    /// Something for an existing call.
    ToCall {
        call: CallRef,
        event: CallEvent,
    },
}

/// Where a call's messages are routed.
#[derive(Debug, Default)]
struct CallRoutes {
    server_txs: Vec<ServerTxId>,
    client_txs: Vec<ClientTxId>,
    dialogs: Vec<DialogId>,
}

/// Counters for metrics, shared with the HTTP side.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub rejected: AtomicU64,
    pub rate_limited: AtomicU64,
    pub banned_dropped: AtomicU64,
    pub oversized: AtomicU64,
    pub calls_active: AtomicU64,
    /// Our requests still waiting for a final response.
    pub requests_in_flight: AtomicU64,
    pub calls_total: AtomicU64,
    /// Responses sent and received, by status code.
    pub responses: crate::telemetry::StatusCounts,
    /// Transactions ended, by role, method and outcome.
    pub transactions: crate::telemetry::TxCounts,
    /// Outbound INVITEs: time to the first response beyond 100.
    pub call_setup: crate::telemetry::CallSetup,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub struct Endpoint {
    layer: TransactionLayer,
    call_ids: Arc<AtomicU64>,
    calls: HashMap<CallRef, CallRoutes>,
    server_owner: HashMap<ServerTxId, CallRef>,
    client_owner: HashMap<ClientTxId, (CallRef, String)>,
    branches: HashMap<String, ClientTxId>,
    dialogs: HashMap<DialogId, CallRef>,
    registrar: Registrar,
    rate: RateLimiter,
    max_message: usize,
    server_header: String,
    stats: Arc<Stats>,
    /// Our requests in flight: method, and when an INVITE was sent until
    /// its first response beyond 100 (call set-up time).
    client_started: HashMap<ClientTxId, (Method, Option<Instant>)>,
    /// Shutting down: new calls and probes get 503.
    draining: bool,
    /// The database does not answer: probes get 503.
    database_down: bool,
    held_byes: HeldByes,
}

impl Endpoint {
    pub fn new(config: &Config, bindings: Bindings, now: Instant) -> Self {
        let exempt = config.exempt_sources();
        let timers = TimerConfig {
            t1: Duration::from_millis(config.sip.t1_ms),
            ..TimerConfig::default()
        };
        Endpoint {
            layer: TransactionLayer::new(timers),
            call_ids: Arc::new(AtomicU64::new(1)),
            calls: HashMap::new(),
            server_owner: HashMap::new(),
            client_owner: HashMap::new(),
            branches: HashMap::new(),
            dialogs: HashMap::new(),
            registrar: Registrar::new(config, bindings, now),
            rate: RateLimiter::new(config.security.max_requests_per_source_per_s, exempt),
            max_message: config.sip.max_message_bytes,
            server_header: config.sip.user_agent.clone(),
            stats: Arc::new(Stats::default()),
            client_started: HashMap::new(),
            draining: false,
            database_down: false,
            held_byes: HeldByes::default(),
        }
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The allocator of call ids, shared with outbound call creation.
    pub fn call_ids(&self) -> Arc<AtomicU64> {
        self.call_ids.clone()
    }

    /// One UDP datagram.
    pub fn on_datagram(&mut self, data: &[u8], peer: Peer, now: Instant) -> Vec<Output> {
        self.on_bytes(data, peer, now, true)
    }

    /// One message framed from a TCP stream.
    pub fn on_stream_message(&mut self, data: &[u8], peer: Peer, now: Instant) -> Vec<Output> {
        self.on_bytes(data, peer, now, false)
    }

    /// `data`, which we sent, could not be delivered to `peer` (no TCP
    /// connection). A request of one of our client transactions ends that
    /// transaction now (its call hears a timeout: an offer to an agent
    /// whose flow is gone fails at once, RFC 5626 §5.3); anything else
    /// (an ACK, a response, a CANCEL) is only logged.
    pub fn on_undeliverable(&mut self, data: &[u8], peer: Peer, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let first = data.split(|b| *b == b' ').next().unwrap_or_default();
        let request = !looks_like_response(data) && first != b"ACK" && first != b"CANCEL";
        let branch = branch_of(data);
        debug!(%peer, request, ?branch, "message could not be sent");
        if let Some(&tx) = branch
            .as_deref()
            .filter(|_| request)
            .and_then(|b| self.branches.get(b))
        {
            tracing::info!(%peer, "no connection to the next hop: the request fails");
            let tx_out = self.layer.transport_error(tx);
            self.handle_tx_outputs(tx_out, now, &mut out);
        }
        out
    }

    fn on_bytes(&mut self, data: &[u8], peer: Peer, now: Instant, datagram: bool) -> Vec<Output> {
        bump(&self.stats.received);
        let mut out = Vec::new();
        if data.len() > self.max_message {
            bump(&self.stats.oversized);
            debug!(%peer, len = data.len(), "dropping oversized message");
            return out;
        }
        // Rate limits and bans are for requests. A response can only
        // matter if it answers one of our own client transactions (the
        // trunk's 180 and 200, an agent's answer), and dropping those
        // would burn the callback: over the limit, a response is still
        // taken when its branch is one of ours (a cheap byte scan, before
        // any parsing).
        let response = looks_like_response(data);
        let allowed =
            self.rate.allow(peer.addr.ip(), now) || (response && self.is_our_branch(data));
        if !allowed {
            bump(&self.stats.rate_limited);
            return out;
        }
        let banned = !response && self.registrar.is_banned(&peer, now);
        if banned {
            bump(&self.stats.banned_dropped);
            return out;
        }
        let parsed = if datagram {
            parse_datagram(data)
        } else {
            parse_stream_message(data)
        };
        match parsed {
            Err(bad) => self.on_malformed(bad, peer, now, &mut out),
            Ok(SipMessage::Request(_)) if self.registrar.is_banned(&peer, now) => {
                // (Only reached if the scan above misread the start line.)
                bump(&self.stats.banned_dropped);
            }
            Ok(SipMessage::Request(mut req)) => {
                let via = stamp_received(&mut req, &peer);
                let reply_to = response_peer(via.as_ref(), peer);
                if let Err(rej) = validate_request(&req) {
                    bump(&self.stats.rejected);
                    debug!(%peer, status = rej.status, reason = %rej.reason, "request rejected");
                    if req.method != Method::Ack {
                        self.stateless(&req.headers, &rej, reply_to, &mut out);
                    }
                    return out;
                }
                let tx_out = self.layer.on_request(req, reply_to, now);
                self.handle_tx_outputs(tx_out, now, &mut out);
            }
            Ok(SipMessage::Response(resp)) => {
                let tx_out = self.layer.on_response(resp, peer, now);
                self.handle_tx_outputs(tx_out, now, &mut out);
            }
        }
        out
    }

    fn on_malformed(&mut self, bad: BadMessage, peer: Peer, now: Instant, out: &mut Vec<Output>) {
        bump(&self.stats.malformed);
        debug!(%peer, reason = %bad.reason, "malformed message");
        let Some(headers) = bad.request_headers else {
            return;
        };
        if self.registrar.is_banned(&peer, now) {
            bump(&self.stats.banned_dropped);
            return;
        }
        // A 400 needs somewhere to go: the top Via, or the source itself.
        let via = headers
            .get(&HeaderName::Via)
            .and_then(|v| Via::parse(v).ok());
        if via.is_none() {
            return;
        }
        let is_ack = headers
            .get(&HeaderName::CSeq)
            .is_some_and(|c| c.split_whitespace().nth(1) == Some("ACK"));
        if is_ack {
            return;
        }
        let reply_to = response_peer(via.as_ref(), peer);
        let rej = Rejection::new(400, bad.reason);
        self.stateless(&headers, &rej, reply_to, out);
    }

    /// Whether the top Via branch in `data` is one of our client
    /// transactions' (found by scanning for the first `branch=`, which in
    /// a response is the top Via's: RFC 3261 §8.1.3.3 lets a response
    /// reaching us carry only our Via).
    fn is_our_branch(&self, data: &[u8]) -> bool {
        branch_of(data).is_some_and(|b| self.branches.contains_key(&b))
    }

    /// Answers outside any transaction (RFC 3261 §8.2.7): used for requests
    /// too broken to match one.
    fn stateless(&self, headers: &Headers, rej: &Rejection, to: Peer, out: &mut Vec<Output>) {
        let mut tag = [0u8; 6];
        rand::fill(&mut tag);
        let mut resp = Response::for_headers(headers, rej.status, Some(&hex::encode(tag)))
            .with_reason(rej.reason.clone());
        for (n, v) in &rej.headers {
            resp.headers.push(n.clone(), v.clone());
        }
        resp.headers
            .push(HeaderName::Server, self.server_header.clone());
        self.stats.responses.sent(resp.status);
        out.push(Output::Transmit {
            peer: to,
            data: resp.encode(),
        });
    }

    fn handle_tx_outputs(&mut self, tx_out: Vec<TxOutput>, now: Instant, out: &mut Vec<Output>) {
        for o in tx_out {
            match o {
                TxOutput::Transmit { peer, data } => out.push(Output::Transmit { peer, data }),
                TxOutput::Request { tx, request, peer } => {
                    self.dispatch(tx, request, peer, now, out)
                }
                TxOutput::Ack { request, .. } => {
                    if let Some(held) = request.call_id().and_then(|c| self.held_byes.on_ack(c)) {
                        self.release_bye(held, now, out);
                    }
                    let call = DialogId::for_incoming(&request)
                        .and_then(|id| self.dialogs.get(&id).copied());
                    if let Some(call) = call {
                        out.push(Output::ToCall {
                            call,
                            event: CallEvent::Ack { request },
                        });
                    }
                }
                TxOutput::Cancelled { tx } => {
                    if let Some(&call) = self.server_owner.get(&tx) {
                        out.push(Output::ToCall {
                            call,
                            event: CallEvent::Cancelled,
                        });
                    }
                }
                TxOutput::AckTimeout { tx } => {
                    if let Some(held) = self.held_byes.on_ack_timeout(tx) {
                        self.release_bye(held, now, out);
                    }
                    self.stats
                        .transactions
                        .ended(TxRole::Server, "INVITE", TxOutcome::NoAck);
                    if let Some(&call) = self.server_owner.get(&tx) {
                        out.push(Output::ToCall {
                            call,
                            event: CallEvent::AckTimeout,
                        });
                    }
                }
                TxOutput::Response { tx, response, peer } => {
                    self.client_response(tx, &response, now);
                    if let Some((call, _)) = self.client_owner.get(&tx) {
                        // A 2xx to an INVITE creates the dialog now, not when
                        // the call task gets round to it: a far end may send
                        // BYE right behind its 200.
                        let invite_ok = (200..300).contains(&response.status)
                            && response.cseq().is_ok_and(|c| c.method == Method::Invite);
                        let call = *call;
                        if let Some(id) = DialogId::for_response(&response).filter(|_| invite_ok) {
                            self.route_dialog(id, call);
                        }
                        out.push(Output::ToCall {
                            call,
                            event: CallEvent::Response { response, peer },
                        });
                    }
                }
                TxOutput::Timeout { tx } => {
                    if let Some((method, _)) = self.client_started.remove(&tx) {
                        self.stats.transactions.ended(
                            TxRole::Client,
                            method.as_str(),
                            TxOutcome::Timeout,
                        );
                    }
                    if let Some((call, branch)) = self.client_owner.get(&tx) {
                        out.push(Output::ToCall {
                            call: *call,
                            event: CallEvent::Timeout {
                                branch: branch.clone(),
                            },
                        });
                    }
                }
                TxOutput::StrayOk { response, peer } => {
                    let call = DialogId::for_response(&response)
                        .and_then(|id| self.dialogs.get(&id).copied());
                    if let Some(call) = call {
                        out.push(Output::ToCall {
                            call,
                            event: CallEvent::StrayOk { response, peer },
                        });
                    }
                }
            }
        }
    }

    /// Counts a response to one of our requests; a final one ends the
    /// transaction, the first beyond 100 to an INVITE ends its set-up.
    fn client_response(&mut self, tx: ClientTxId, response: &Response, now: Instant) {
        self.stats.responses.received(response.status);
        let Some((method, sent)) = self.client_started.get_mut(&tx) else {
            return;
        };
        if response.status > 100
            && let Some(at) = sent.take()
        {
            self.stats
                .call_setup
                .0
                .observe(now.saturating_duration_since(at).as_secs_f64());
        }
        if response.status >= 200 {
            let method = method.as_str().to_string();
            self.client_started.remove(&tx);
            self.stats.transactions.ended(
                TxRole::Client,
                &method,
                TxOutcome::Final(response.status),
            );
        }
    }

    /// Every response of a transaction, ours or a call's, leaves here and
    /// gets its Server header here.
    fn respond(&mut self, tx: ServerTxId, mut resp: Response, now: Instant, out: &mut Vec<Output>) {
        resp.headers
            .push(HeaderName::Server, self.server_header.clone());
        self.stats.responses.sent(resp.status);
        if resp.status >= 200 {
            let method = resp.cseq().map(|c| c.method.as_str().to_string());
            self.stats.transactions.ended(
                TxRole::Server,
                method.as_deref().unwrap_or("other"),
                TxOutcome::Final(resp.status),
            );
        }
        // A call's 2xx to an INVITE opens its dialog (§12.1.1): from now on
        // in-dialog requests go to that call. The endpoint installs dialog
        // routes for both directions (here for calls answered, on a 2xx
        // received for calls placed), and removes them when the call ends.
        let invite_ok = (200..300).contains(&resp.status)
            && resp.cseq().is_ok_and(|c| c.method == Method::Invite);
        if invite_ok
            && let Some(&call) = self.server_owner.get(&tx)
            && let Some(id) = DialogId::for_sent_response(&resp)
        {
            self.route_dialog(id, call);
        }
        let tx_out = self.layer.respond_now(tx, &resp, now);
        self.handle_tx_outputs(tx_out, now, out);
    }

    /// A final answer that leaves no transaction behind (see
    /// `Registrar::answer`): a retransmission is handled afresh.
    fn respond_stateless(
        &mut self,
        tx: ServerTxId,
        mut resp: Response,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        resp.headers
            .push(HeaderName::Server, self.server_header.clone());
        self.stats.responses.sent(resp.status);
        let method = resp.cseq().map(|c| c.method.as_str().to_string());
        self.stats.transactions.ended(
            TxRole::Server,
            method.as_deref().unwrap_or("other"),
            TxOutcome::Final(resp.status),
        );
        let mut tx_out = Vec::new();
        self.layer.respond_stateless(tx, &resp, &mut tx_out);
        self.handle_tx_outputs(tx_out, now, out);
    }

    fn route_dialog(&mut self, id: DialogId, call: CallRef) {
        if !self.dialogs.contains_key(&id) {
            self.dialogs.insert(id.clone(), call);
            self.calls.entry(call).or_default().dialogs.push(id);
        }
    }

    fn dispatch(
        &mut self,
        tx: ServerTxId,
        req: Request,
        peer: Peer,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let tag = tag_for(tx);
        let max_forwards = req.header_u32(&HeaderName::MaxForwards).ok().flatten();
        // RFC 3261 §16.3 lets an element answer an OPTIONS that ran out of
        // hops itself; every other request with none left is refused.
        if max_forwards == Some(0) && req.method != Method::Options {
            let r = Response::to_request(&req, 483, Some(&tag));
            return self.respond(tx, r, now, out);
        }
        let out_of_dialog = !req.addr_to().is_ok_and(|t| t.tag().is_some());
        if self.draining && out_of_dialog && matches!(req.method, Method::Invite | Method::Options)
        {
            // RFC 3261 §21.5.4: unavailable for now, try again (or elsewhere).
            let r = Response::to_request(&req, 503, Some(&tag))
                .with_reason("Shutting Down")
                .with_header(HeaderName::RetryAfter, "30");
            return self.respond(tx, r, now, out);
        }
        if self.database_down && out_of_dialog && req.method == Method::Options {
            let r = Response::to_request(&req, 503, Some(&tag))
                .with_reason("Database Unavailable")
                .with_header(HeaderName::RetryAfter, "5");
            return self.respond(tx, r, now, out);
        }
        let resp = match &req.method {
            Method::Options => capabilities::options_response(&req, &tag),
            Method::Register => {
                let (resp, stateless) = self.registrar.answer(&req, peer, &tag, now);
                if stateless {
                    return self.respond_stateless(tx, resp, now, out);
                }
                resp
            }
            _ if req.addr_to().is_ok_and(|t| t.tag().is_some()) => {
                // In-dialog: to the call that owns the dialog, or 481.
                let call =
                    DialogId::for_incoming(&req).and_then(|id| self.dialogs.get(&id).copied());
                match call {
                    Some(call) => {
                        self.server_owner.insert(tx, call);
                        if let Some(r) = self.calls.get_mut(&call) {
                            r.server_txs.push(tx);
                        }
                        out.push(Output::ToCall {
                            call,
                            event: CallEvent::Request {
                                tx,
                                request: req,
                                peer,
                            },
                        });
                        return;
                    }
                    None => {
                        debug!(method = %req.method, call_id = req.call_id().unwrap_or_default(), "no dialog for an in-dialog request: 481");
                        Response::to_request(&req, 481, Some(&tag))
                    }
                }
            }
            Method::Invite => match capabilities::check_offer_content(&req) {
                Err(rej) => rej.respond_to(&req, &tag),
                Ok(()) => {
                    let call = CallRef(self.call_ids.fetch_add(1, Ordering::Relaxed));
                    bump(&self.stats.calls_total);
                    self.server_owner.insert(tx, call);
                    self.calls.insert(
                        call,
                        CallRoutes {
                            server_txs: vec![tx],
                            ..CallRoutes::default()
                        },
                    );
                    out.push(Output::NewCall {
                        call,
                        tx,
                        request: req,
                        peer,
                    });
                    return;
                }
            },
            Method::Bye | Method::Info | Method::Update | Method::Prack => {
                Response::to_request(&req, 481, Some(&tag))
            }
            Method::Ack | Method::Cancel => return,
            Method::Subscribe
            | Method::Notify
            | Method::Refer
            | Method::Message
            | Method::Publish => {
                capabilities::with_allow(Response::to_request(&req, 405, Some(&tag)))
            }
            Method::Other(_) => {
                capabilities::with_allow(Response::to_request(&req, 501, Some(&tag)))
            }
        };
        self.respond(tx, resp, now, out);
    }

    /// Starts a client transaction for a call's request.
    fn send_request(
        &mut self,
        call: CallRef,
        request: Request,
        peer: Peer,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let branch = request.top_branch().unwrap_or_default();
        let method = request.method.clone();
        let (tx, tx_out) = self.layer.send_request(request, peer, now);
        if let Some(tx) = tx {
            let invite = (method == Method::Invite).then_some(now);
            self.client_started.insert(tx, (method, invite));
            self.client_owner.insert(tx, (call, branch.clone()));
            self.branches.insert(branch, tx);
            self.calls.entry(call).or_default().client_txs.push(tx);
        }
        self.handle_tx_outputs(tx_out, now, out);
    }

    /// A BYE that waited for an ACK. If its call's task has finished
    /// meanwhile, the BYE goes out without routes: its answer has nobody
    /// to go to, and routes would outlive the call.
    fn release_bye(&mut self, held: Held, now: Instant, out: &mut Vec<Output>) {
        if self.calls.contains_key(&held.call) {
            self.send_request(held.call, held.request, held.peer, now, out);
        } else {
            let (_, tx_out) = self.layer.send_request(held.request, held.peer, now);
            self.handle_tx_outputs(tx_out, now, out);
        }
    }

    /// A command from a call task.
    pub fn on_command(&mut self, cmd: Command, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match cmd {
            Command::Respond { tx, response } => self.respond(tx, response, now, &mut out),
            Command::Request {
                call,
                request,
                peer,
            } => {
                let unacked = (request.method == Method::Bye)
                    .then(|| request.call_id())
                    .flatten()
                    .and_then(|cid| Some((cid.to_string(), self.layer.awaiting_ack(cid)?)));
                match unacked {
                    Some((call_id, invite)) => {
                        debug!(%call_id, "BYE held until our 200 OK is acknowledged");
                        let held = Held {
                            call,
                            request,
                            peer,
                            invite,
                        };
                        self.held_byes.hold(&call_id, held);
                    }
                    None => self.send_request(call, request, peer, now, &mut out),
                }
            }
            Command::Cancel { branch } => {
                if let Some(&tx) = self.branches.get(&branch) {
                    let tx_out = self.layer.cancel(tx, now);
                    self.handle_tx_outputs(tx_out, now, &mut out);
                }
            }
            Command::Ended { call } => {
                if let Some(routes) = self.calls.remove(&call) {
                    for tx in routes.server_txs {
                        self.server_owner.remove(&tx);
                    }
                    for tx in routes.client_txs {
                        self.client_started.remove(&tx);
                        if let Some((_, branch)) = self.client_owner.remove(&tx) {
                            self.branches.remove(&branch);
                        }
                    }
                    for id in routes.dialogs {
                        self.dialogs.remove(&id);
                    }
                }
            }
            Command::Attach { call, .. } => {
                self.calls.entry(call).or_default();
            }
            Command::Drain => self.draining = true,
            Command::DatabaseOk(ok) => self.database_down = !ok,
        }
        out
    }

    /// Refuses a new call before any task was started for it (capacity).
    pub fn refuse_call(
        &mut self,
        call: CallRef,
        tx: ServerTxId,
        request: &Request,
        status: u16,
        retry_after: Option<u32>,
        now: Instant,
    ) -> Vec<Output> {
        let mut resp = Response::to_request(request, status, Some(&tag_for(tx)));
        if let Some(s) = retry_after {
            resp.headers.push(HeaderName::RetryAfter, s.to_string());
        }
        let mut out = self.on_command(Command::Respond { tx, response: resp }, now);
        out.extend(self.on_command(Command::Ended { call }, now));
        out
    }

    /// Publishes gauges the runtime reads (metrics, shutdown).
    pub fn update_gauges(&self) {
        self.stats
            .requests_in_flight
            .store(self.layer.awaiting_answer() as u64, Ordering::Relaxed);
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.layer.next_timeout()
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let tx_out = self.layer.on_timeout(now);
        self.handle_tx_outputs(tx_out, now, &mut out);
        out
    }

    /// Once a second or so: expire bindings, prune replay and ban state.
    pub fn housekeeping(&mut self, now: Instant) {
        self.registrar.tick(now);
        self.rate.prune(now);
    }
}

/// A status line (`SIP/2.0 200 OK`) rather than a request line, after the
/// CRLFs RFC 3261 §7.5 lets a sender put first.
fn looks_like_response(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(data.len());
    data[start..].starts_with(b"SIP/")
}

/// The first `branch=` value in `data` (the top Via's, in a message we
/// built or a response to one).
fn branch_of(data: &[u8]) -> Option<String> {
    let at = find(data, b"branch=")?;
    let rest = &data[at + 7..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b';' | b',' | b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok().map(str::to_string)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_told_from_requests_by_their_first_line() {
        assert!(looks_like_response(b"SIP/2.0 200 OK\r\n\r\n"));
        assert!(looks_like_response(b"\r\n\r\nSIP/2.0 180 Ringing\r\n"));
        assert!(!looks_like_response(b"REGISTER sip:x SIP/2.0\r\n"));
        assert!(!looks_like_response(b"OPTIONS SIP/2.0 x\r\n"));
        assert!(!looks_like_response(b""));
        assert!(!looks_like_response(b"\r\n"));
    }

    /// Issue 15: a flood of REGISTERs without credentials is answered
    /// 401 and leaves no transaction behind, live or retained; the
    /// retransmission of one is challenged again.
    #[test]
    fn register_challenges_keep_no_transaction() {
        let t0 = Instant::now();
        let mut config = Config::default();
        config.security.max_requests_per_source_per_s = 0;
        let mut ep = Endpoint::new(&config, Bindings::new(), t0);
        let peer = Peer::udp("192.0.2.10:5060".parse().unwrap());
        let register = |i: u32| {
            format!(
                "REGISTER sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKreg{i}\r\n\
                 From: <sip:alice@gw>;tag=f{i}\r\nTo: <sip:alice@gw>\r\nCall-ID: r{i}\r\n\
                 CSeq: 1 REGISTER\r\nContact: <sip:alice@192.0.2.10:5060>\r\nMax-Forwards: 70\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        };
        for i in 0..1000 {
            let out = ep.on_datagram(register(i).as_bytes(), peer, t0);
            let sent: Vec<&Bytes> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Transmit { data, .. } => Some(data),
                    _ => None,
                })
                .collect();
            assert_eq!(sent.len(), 1);
            assert!(sent[0].starts_with(b"SIP/2.0 401 "));
        }
        assert_eq!(ep.layer.counts(), (0, 0));
        assert_eq!(ep.layer.retained().0, 0);
        let again = ep.on_datagram(register(7).as_bytes(), peer, t0);
        assert!(
            matches!(again.as_slice(), [Output::Transmit { data, .. }] if data.starts_with(b"SIP/2.0 401 "))
        );
    }

    #[test]
    fn only_our_branches_pass_an_exhausted_rate_limit() {
        let mut ep = Endpoint::new(&Config::default(), Bindings::new(), Instant::now());
        ep.branches.insert("z9hG4bKours1".into(), ClientTxId(1));
        let ours =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKours1;rport\r\n\r\n";
        let theirs =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKours12\r\n\r\n";
        assert!(ep.is_our_branch(ours));
        assert!(
            !ep.is_our_branch(theirs),
            "a longer branch is another branch"
        );
        assert!(!ep.is_our_branch(b"SIP/2.0 200 OK\r\n\r\n"));
        assert!(!ep.is_our_branch(b"branch="));
    }
}
