//! What every call has once it is set up, inbound or outbound: the dialog,
//! the media leg, and the handling of whatever the other side sends while
//! the call logic waits (BYE, re-INVITE and UPDATE for hold and session
//! refreshes, INFO DTMF, OPTIONS), and the probes that find a peer gone
//! while it holds (`call::liveness`, sent from `call::probes`).

use super::liveness::Liveness;
use crate::endpoint::tu::{CallEvent, CallRef, Command, SipHandle};
use crate::media::engine::MediaEngine;
use crate::media::leg::{Leg, LegEvent};
use crate::media::prompt::Prompt;
use crate::sip::dialog::Dialog;
use crate::sip::message::{MessageExt, Method, Request, Response};
use crate::sip::transaction::ServerTxId;
use crate::sip::transport::hop::{anchored, contact_flow};
use crate::sip::transport::{Peer, TransportKind};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The other side sent BYE.
    RemoteHangup,
    /// The caller cancelled before we answered.
    Cancelled,
    /// Our 200 was never acknowledged.
    AckTimeout,
    /// No RTP from the other side for the configured time.
    RtpTimeout,
    /// An in-dialog probe or refresh got 408 or 481, or no answer.
    Unreachable,
    /// The peer was to refresh the session (RFC 4028) and did not.
    SessionExpired,
    /// We hung up.
    LocalHangup,
    /// We refused the call (or it was refused) with this status.
    Rejected(u16),
    /// No media port, no transport, or the SIP core went away.
    Failure,
}

impl EndReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::RemoteHangup => "remote hung up",
            EndReason::Cancelled => "caller cancelled",
            EndReason::AckTimeout => "no ACK",
            EndReason::RtpTimeout => "RTP timeout",
            EndReason::Unreachable => "peer unreachable",
            EndReason::SessionExpired => "session expired",
            EndReason::LocalHangup => "gateway hung up",
            EndReason::Rejected(_) => "rejected",
            EndReason::Failure => "failure",
        }
    }
}

/// The outcome of waiting on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    PlaybackDone,
    Digit(char),
    Timeout,
    /// A response to one of our requests arrived (outbound set-up).
    Response,
}

pub struct Session {
    pub call: CallRef,
    pub sip: SipHandle,
    events: mpsc::UnboundedReceiver<CallEvent>,
    /// The flow the dialog was set up on: where the INVITE came from, or
    /// went to. In-dialog requests go where `next_hop` says.
    pub peer: Peer,
    pub dialog: Option<Dialog>,
    pub leg: Option<Leg>,
    pub media: Arc<MediaEngine>,
    sdp_version: u64,
    pub(super) digits: VecDeque<char>,
    pub ended: Option<EndReason>,
    acked: bool,
    /// Inbound calls before they are answered: CANCEL is answered 487 here.
    pub pending_invite: Option<(ServerTxId, Response)>,
    /// Responses to our requests, for the outbound set-up to read.
    pub responses: VecDeque<(Response, Peer)>,
    /// Branches of our client transactions that timed out.
    pub timeouts: Vec<String>,
    pub started: Instant,
    /// Whether the peer is still there while it holds (pings, session
    /// timer).
    pub(super) liveness: Liveness,
    /// The SDP we last sent (offer or answer), for a refresh re-INVITE.
    pub(super) local_sdp: Option<Bytes>,
    /// The peer listed UPDATE in Allow: refreshes use it (no SDP).
    pub(super) peer_allows_update: bool,
    /// CSeq of our re-INVITE (a refresh) awaiting its final response.
    pub(super) reinvite: Option<u32>,
}

impl Session {
    pub fn new(
        call: CallRef,
        sip: SipHandle,
        events: mpsc::UnboundedReceiver<CallEvent>,
        peer: Peer,
        media: Arc<MediaEngine>,
    ) -> Session {
        let hold_ping = sip.local.hold_ping;
        Session {
            call,
            sip,
            events,
            peer,
            dialog: None,
            leg: None,
            media,
            sdp_version: 1,
            digits: VecDeque::new(),
            ended: None,
            acked: false,
            pending_invite: None,
            responses: VecDeque::new(),
            timeouts: Vec::new(),
            started: Instant::now(),
            liveness: Liveness::new(hold_ping),
            local_sdp: None,
            peer_allows_update: false,
            reinvite: None,
        }
    }

    /// Where in-dialog requests physically go (RFC 3261 §12.2.1.1,
    /// §8.1.2): the first route of the route set, at the flow's address
    /// with the port and transport the route names (a proxy's listening
    /// side); without a route set, back over the flow itself, in the
    /// transport the remote target asks for (see `sip::transport::hop`:
    /// never a host or port the peer merely wrote in its Contact).
    pub fn next_hop(&self) -> Peer {
        match &self.dialog {
            Some(d) if d.has_routes() => match d.next_hop() {
                Some(hop) => anchored(&hop, self.peer, TransportKind::Udp),
                None => self.peer,
            },
            Some(d) => contact_flow(&d.remote_target, self.peer),
            None => self.peer,
        }
    }

    /// Sends a request built in the dialog (`build` gets the Via for the
    /// next hop) and returns its CSeq number and branch.
    pub(super) fn send_in_dialog(
        &mut self,
        build: impl FnOnce(&mut Dialog, &str) -> Request,
    ) -> Option<(u32, String)> {
        let hop = self.next_hop();
        let via = self.sip.via(&hop);
        let req = build(self.dialog.as_mut()?, &via);
        let seq = req.cseq().ok()?.seq;
        let branch = req.top_branch().unwrap_or_default();
        self.sip.request(self.call, req, hop);
        Some((seq, branch))
    }

    /// Reads whether the peer now holds the call from the leg's
    /// negotiated direction.
    pub(super) fn update_held(&mut self) {
        let held = self.leg.as_ref().is_some_and(|l| l.is_held());
        if held != self.liveness.is_held() {
            info!(
                held,
                "the other side {}",
                if held {
                    "holds the call"
                } else {
                    "resumed the call"
                }
            );
        }
        self.liveness.set_held(held, Instant::now());
    }

    pub fn next_sdp_version(&mut self) -> u64 {
        self.sdp_version += 1;
        self.sdp_version
    }

    pub fn play(&mut self, prompts: Vec<Arc<Prompt>>, looping: bool) -> Option<u64> {
        self.leg.as_ref().map(|l| l.play(prompts, looping))
    }

    pub fn stop_playback(&self) {
        if let Some(l) = &self.leg {
            l.stop_playback();
        }
    }

    pub fn clear_digits(&mut self) {
        self.digits.clear();
    }

    /// Waits for the first of: the end of playback `token`, a digit (when
    /// `digits` is set; buffered type-ahead digits count), a response (when
    /// `responses` is set), or `deadline`. Handles every other event in the
    /// meantime. `Err` when the call ended.
    pub async fn wait_for(
        &mut self,
        token: Option<u64>,
        digits: bool,
        responses: bool,
        deadline: Option<Instant>,
    ) -> Result<Waited, EndReason> {
        loop {
            if let Some(r) = self.ended {
                return Err(r);
            }
            if digits
                && !self.digits.is_empty()
                && let Some(d) = self.digits.pop_front()
            {
                return Ok(Waited::Digit(d));
            }
            if responses && (!self.responses.is_empty() || !self.timeouts.is_empty()) {
                return Ok(Waited::Response);
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let leg_event = async {
                match self.leg.as_mut() {
                    Some(l) => l.next_event().await,
                    None => std::future::pending().await,
                }
            };
            let probe_due = self.liveness.deadline();
            let probe = async {
                match probe_due {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => self.ended = Some(EndReason::Failure),
                },
                le = leg_event => match le {
                    Some(LegEvent::Dtmf(d)) => {
                        info!(digit = %d, "dtmf received");
                        self.digits.push_back(d);
                    }
                    Some(LegEvent::PlaybackDone(t)) if Some(t) == token => return Ok(Waited::PlaybackDone),
                    Some(LegEvent::PlaybackDone(_)) => {}
                    Some(LegEvent::RtpTimeout) => {
                        warn!("no RTP from the other side: hanging up");
                        self.hangup();
                        self.ended = Some(EndReason::RtpTimeout);
                    }
                    None => {}
                },
                _ = probe => self.on_probe_due(),
                _ = sleep => return Ok(Waited::Timeout),
            }
        }
    }

    pub async fn wait(
        &mut self,
        token: Option<u64>,
        digits: bool,
        deadline: Option<Instant>,
    ) -> Result<Waited, EndReason> {
        self.wait_for(token, digits, false, deadline).await
    }

    /// Plays prompts to the end (or until a digit when `barge_in`).
    pub async fn play_and_wait(
        &mut self,
        prompts: Vec<Arc<Prompt>>,
        barge_in: bool,
    ) -> Result<Waited, EndReason> {
        let token = self.play(prompts, false);
        let r = self.wait(token, barge_in, None).await;
        if matches!(r, Ok(Waited::Digit(_))) {
            self.stop_playback();
        }
        r
    }

    /// Waits up to `d` while handling events; returns early if the call ends.
    pub async fn pause(&mut self, d: Duration) -> Result<(), EndReason> {
        let until = Instant::now() + d;
        loop {
            if let Waited::Timeout = self.wait(None, false, Some(until)).await? {
                return Ok(());
            }
        }
    }

    /// Handles SIP events that are already queued, without waiting.
    pub fn poll_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.on_event(ev);
        }
    }

    fn on_event(&mut self, ev: CallEvent) {
        match ev {
            CallEvent::Request { tx, request, .. } => self.on_request(tx, request),
            CallEvent::Ack { .. } => {
                self.acked = true;
                if let Some(d) = self.dialog.as_mut() {
                    d.confirm();
                }
            }
            CallEvent::Cancelled => {
                if let Some((tx, resp487)) = self.pending_invite.take()
                    && self.ended.is_none()
                {
                    self.sip.respond(tx, resp487);
                    self.ended = Some(EndReason::Cancelled);
                    info!("caller cancelled");
                }
            }
            CallEvent::AckTimeout => {
                if self.dialog.is_some() && !self.acked && self.ended.is_none() {
                    warn!("200 OK never acknowledged: hanging up");
                    self.hangup();
                    self.ended = Some(EndReason::AckTimeout);
                }
            }
            CallEvent::Response { response, peer } => {
                if !self.on_probe_response(&response) {
                    self.responses.push_back((response, peer))
                }
            }
            CallEvent::StrayOk { response, .. } => {
                // A retransmitted 2xx after our INVITE transaction ended:
                // our ACK was lost, send it again (RFC 3261 §13.2.2.4),
                // along the route set like the first.
                if self.dialog.is_some()
                    && let Ok(cseq) = response.cseq()
                {
                    self.send_in_dialog(|d, via| d.ack(cseq.seq, via, None));
                }
            }
            CallEvent::Timeout { branch } => {
                if !self.on_probe_timeout(&branch) {
                    self.timeouts.push(branch)
                }
            }
        }
    }

    /// Sends BYE in an established dialog and marks the call ended.
    pub fn hangup(&mut self) {
        if self.ended.is_some() {
            return;
        }
        if self.dialog.is_some() {
            debug!(to = %self.next_hop(), "sending BYE");
            self.send_in_dialog(|d, via| d.request(Method::Bye, via, None));
        }
        self.ended = Some(EndReason::LocalHangup);
        info!("gateway hung up");
    }
}

/// The SIP core forgets the call (its transactions' and dialogs' routes)
/// however the call's task ends: a normal finish, an early return on an
/// error, or a panic unwinding through it.
impl Drop for Session {
    fn drop(&mut self) {
        self.sip.send(Command::Ended { call: self.call });
    }
}
