//! An inbound call as the gateway answers it: the UAS side of RFC 3261
//! §13.3 with its dialog (§12), its media leg and the in-dialog requests
//! that can arrive at any time (BYE, re-INVITE for hold, INFO, OPTIONS).

use super::handle::{CallEvent, CallRef, Command, SipHandle};
use crate::endpoint::capabilities::{ACCEPT, ALLOW};
use crate::media::engine::MediaEngine;
use crate::media::leg::{Leg, LegEvent};
use crate::media::prompt::Prompt;
use crate::media::sdp::{self, SessionDescription};
use crate::sip::dialog::{Dialog, DialogId};
use crate::sip::message::{HeaderName, MessageExt, Method, Request, Response};
use crate::sip::transaction::ServerTxId;
use crate::sip::transport::Peer;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteHangup,
    /// The caller cancelled before we answered.
    Cancelled,
    /// Our 200 was never acknowledged.
    AckTimeout,
    /// No RTP from the caller for the configured time.
    RtpTimeout,
    /// We hung up (flow finished, Disconnect block).
    LocalHangup,
    /// We refused the call with this status.
    Rejected(u16),
    /// No RTP port was free, or the SIP core went away.
    Failure,
}

impl EndReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            EndReason::RemoteHangup => "caller hung up",
            EndReason::Cancelled => "caller cancelled",
            EndReason::AckTimeout => "no ACK",
            EndReason::RtpTimeout => "RTP timeout",
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
}

pub struct InboundCall {
    pub call: CallRef,
    pub sip: SipHandle,
    events: mpsc::UnboundedReceiver<CallEvent>,
    pub invite: Request,
    tx: ServerTxId,
    /// Where responses and in-dialog requests go.
    pub peer: Peer,
    local_tag: String,
    dialog: Option<Dialog>,
    leg: Option<Leg>,
    media: Arc<MediaEngine>,
    sdp_version: u64,
    digits: VecDeque<char>,
    answered: bool,
    acked: bool,
    ended: Option<EndReason>,
    pub started: Instant,
    pub started_wall: std::time::SystemTime,
}

impl InboundCall {
    pub fn new(
        call: CallRef,
        sip: SipHandle,
        events: mpsc::UnboundedReceiver<CallEvent>,
        invite: Request,
        tx: ServerTxId,
        peer: Peer,
        media: Arc<MediaEngine>,
    ) -> InboundCall {
        InboundCall {
            call,
            sip,
            events,
            invite,
            tx,
            peer,
            local_tag: SipHandle::tag(),
            dialog: None,
            leg: None,
            media,
            sdp_version: 1,
            digits: VecDeque::new(),
            answered: false,
            acked: false,
            ended: None,
            started: Instant::now(),
            started_wall: std::time::SystemTime::now(),
        }
    }

    pub fn call_id(&self) -> &str {
        self.invite.call_id().unwrap_or_default()
    }

    /// The dialled number (Request-URI user part, unescaped).
    pub fn dialled(&self) -> String {
        self.invite.uri.user_unescaped().unwrap_or_default()
    }

    pub fn is_answered(&self) -> bool {
        self.answered
    }

    pub fn ended(&self) -> Option<EndReason> {
        self.ended
    }

    pub fn leg(&self) -> Option<&Leg> {
        self.leg.as_ref()
    }

    pub fn media(&self) -> &Arc<MediaEngine> {
        &self.media
    }

    fn response(&self, status: u16) -> Response {
        let mut r = Response::to_request(&self.invite, status, Some(&self.local_tag));
        r.headers
            .push(HeaderName::Server, self.sip.local.user_agent.clone());
        r
    }

    /// 180 Ringing (optional before answering).
    pub fn ring(&self) {
        if !self.answered && self.ended.is_none() {
            self.sip.respond(self.tx, self.response(180));
        }
    }

    /// Refuses the call (404, 486, 503…), with optional extra headers.
    pub fn reject(&mut self, status: u16, reason: Option<&str>, extra: &[(HeaderName, String)]) {
        if self.answered || self.ended.is_some() {
            return;
        }
        let mut r = self.response(status);
        if let Some(reason) = reason {
            r = r.with_reason(reason);
        }
        for (n, v) in extra {
            r.headers.push(n.clone(), v.clone());
        }
        self.sip.respond(self.tx, r);
        self.ended = Some(EndReason::Rejected(status));
    }

    /// Negotiates media and answers 200 OK (RFC 3264 answer to the
    /// INVITE's offer). A refused offer gets 488 and ends the call.
    pub fn answer(&mut self) -> Result<(), EndReason> {
        if let Some(r) = self.ended {
            return Err(r);
        }
        if self.answered {
            return Ok(());
        }
        let offer = match SessionDescription::parse(&self.invite.body) {
            Ok(o) => o,
            Err(e) => {
                // No offer in the INVITE (RFC 3261 §13.2.1 allows it) is
                // not something a contact centre trunk does; refuse clearly.
                warn!(error = %e, "INVITE without a usable SDP offer");
                self.reject(488, Some("SDP offer required"), &[]);
                return Err(EndReason::Rejected(488));
            }
        };
        let mut leg = match self.media.open_leg() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "no media for the call");
                self.reject(
                    503,
                    Some("No media resources"),
                    &[(HeaderName::RetryAfter, "5".into())],
                );
                return Err(EndReason::Failure);
            }
        };
        let local = self.media.local_media(&leg, self.sdp_version);
        let (answer, params) = match sdp::answer(&offer, &local) {
            Ok(a) => a,
            Err(e) => {
                info!(error = %e, "no codec in common");
                self.reject(
                    488,
                    None,
                    &[(
                        HeaderName::Warning,
                        "304 callgate \"Media type not available\"".into(),
                    )],
                );
                return Err(EndReason::Rejected(488));
            }
        };
        leg.set_params(params);
        let contact = self.sip.contact("callgate", &self.peer);
        let Some(dialog) = Dialog::uas(&self.invite, &self.local_tag, &contact) else {
            self.reject(400, Some("INVITE lacks Contact"), &[]);
            return Err(EndReason::Rejected(400));
        };
        self.sip.send(Command::DialogUp {
            call: self.call,
            id: dialog.id.clone(),
        });
        let r = self
            .response(200)
            .with_header(HeaderName::Contact, contact)
            .with_header(HeaderName::Allow, ALLOW)
            .with_header(HeaderName::Accept, ACCEPT)
            .with_body("application/sdp", Bytes::from(answer));
        self.sip.respond(self.tx, r);
        self.dialog = Some(dialog);
        self.leg = Some(leg);
        self.answered = true;
        info!(codec = ?params.law, dtmf_pt = ?params.dtmf_pt, remote = ?params.remote, "call answered");
        Ok(())
    }

    /// Plays prompts; returns the token for `wait`.
    pub fn play(&mut self, prompts: Vec<Arc<Prompt>>, looping: bool) -> Option<u64> {
        self.leg.as_ref().map(|l| l.play(prompts, looping))
    }

    pub fn stop_playback(&self) {
        if let Some(l) = &self.leg {
            l.stop_playback();
        }
    }

    /// Digits received but not yet consumed (type-ahead).
    pub fn take_digit(&mut self) -> Option<char> {
        self.digits.pop_front()
    }

    pub fn clear_digits(&mut self) {
        self.digits.clear();
    }

    /// Waits for the first of: the end of playback `token`, a digit (when
    /// `digits` is set; buffered type-ahead digits count), or `deadline`.
    /// Handles every SIP event in the meantime. `Err` when the call ended.
    pub async fn wait(
        &mut self,
        token: Option<u64>,
        digits: bool,
        deadline: Option<Instant>,
    ) -> Result<Waited, EndReason> {
        loop {
            if let Some(r) = self.ended {
                return Err(r);
            }
            if digits && let Some(d) = self.digits.pop_front() {
                return Ok(Waited::Digit(d));
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
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_event(ev),
                    None => {
                        self.ended = Some(EndReason::Failure);
                    }
                },
                le = leg_event => match le {
                    Some(LegEvent::Dtmf(d)) => {
                        info!(digit = %d, "dtmf received");
                        self.digits.push_back(d);
                    }
                    Some(LegEvent::PlaybackDone(t)) if Some(t) == token => return Ok(Waited::PlaybackDone),
                    Some(LegEvent::PlaybackDone(_)) => {}
                    Some(LegEvent::RtpTimeout) => {
                        warn!("no RTP from the caller: hanging up");
                        self.hangup();
                        self.ended = Some(EndReason::RtpTimeout);
                    }
                    None => {}
                },
                _ = sleep => return Ok(Waited::Timeout),
            }
        }
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

    /// Handles SIP events that are already queued, without waiting.
    pub fn poll_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.on_event(ev);
        }
    }

    fn on_event(&mut self, ev: CallEvent) {
        match ev {
            CallEvent::Request { tx, request, peer } => self.on_request(tx, request, peer),
            CallEvent::Ack { .. } => {
                self.acked = true;
                if let Some(d) = self.dialog.as_mut() {
                    d.confirm();
                }
            }
            CallEvent::Cancelled => {
                if !self.answered && self.ended.is_none() {
                    self.sip.respond(self.tx, self.response(487));
                    self.ended = Some(EndReason::Cancelled);
                    info!("caller cancelled");
                }
            }
            CallEvent::AckTimeout => {
                if self.answered && !self.acked && self.ended.is_none() {
                    warn!("200 OK never acknowledged: hanging up");
                    self.hangup();
                    self.ended = Some(EndReason::AckTimeout);
                }
            }
            CallEvent::Response { .. } | CallEvent::StrayOk { .. } | CallEvent::Timeout { .. } => {}
        }
    }

    fn reply_in_dialog(&self, tx: ServerTxId, req: &Request, status: u16) -> Response {
        let mut r = Response::to_request(req, status, Some(&self.local_tag));
        r.headers
            .push(HeaderName::Server, self.sip.local.user_agent.clone());
        if status == 200 || status == 405 {
            r.headers.push(HeaderName::Allow, ALLOW);
        }
        let _ = tx;
        r
    }

    fn on_request(&mut self, tx: ServerTxId, req: Request, _peer: Peer) {
        let Some(dialog) = self.dialog.as_mut() else {
            let r = self.reply_in_dialog(tx, &req, 481);
            self.sip.respond(tx, r);
            return;
        };
        if dialog.on_request(&req).is_err() {
            let r = self
                .reply_in_dialog(tx, &req, 500)
                .with_reason("CSeq out of order");
            self.sip.respond(tx, r);
            return;
        }
        match req.method {
            Method::Bye => {
                let r = self.reply_in_dialog(tx, &req, 200);
                self.sip.respond(tx, r);
                if self.ended.is_none() {
                    info!("caller hung up");
                    self.ended = Some(EndReason::RemoteHangup);
                }
            }
            Method::Invite | Method::Update => self.on_reoffer(tx, &req),
            Method::Info => {
                // SIP INFO DTMF (application/dtmf-relay, "Signal=5"), still
                // sent by some phones instead of RFC 4733.
                if let Some(d) = info_digit(&req) {
                    info!(digit = %d, "dtmf received (SIP INFO)");
                    self.digits.push_back(d);
                }
                let r = self.reply_in_dialog(tx, &req, 200);
                self.sip.respond(tx, r);
            }
            Method::Options => {
                let r = self
                    .reply_in_dialog(tx, &req, 200)
                    .with_header(HeaderName::Accept, ACCEPT);
                self.sip.respond(tx, r);
            }
            _ => {
                let r = self.reply_in_dialog(tx, &req, 405);
                self.sip.respond(tx, r);
            }
        }
    }

    /// re-INVITE or UPDATE: a new offer (hold, unhold, new address), or a
    /// session refresh without a body.
    fn on_reoffer(&mut self, tx: ServerTxId, req: &Request) {
        let contact = self.sip.contact("callgate", &self.peer);
        let (Some(leg), false) = (self.leg.as_mut(), req.body.is_empty()) else {
            let r = self
                .reply_in_dialog(tx, req, 200)
                .with_header(HeaderName::Contact, contact);
            self.sip.respond(tx, r);
            return;
        };
        let offer = match SessionDescription::parse(&req.body) {
            Ok(o) => o,
            Err(_) => {
                let r = self.reply_in_dialog(tx, req, 488);
                self.sip.respond(tx, r);
                return;
            }
        };
        self.sdp_version += 1;
        let local = self.media.local_media(leg, self.sdp_version);
        match sdp::answer(&offer, &local) {
            Ok((answer, params)) => {
                leg.set_params(params);
                info!(direction = params.direction.as_str(), remote = ?params.remote, "media renegotiated");
                let r = self
                    .reply_in_dialog(tx, req, 200)
                    .with_header(HeaderName::Contact, contact)
                    .with_body("application/sdp", Bytes::from(answer));
                self.sip.respond(tx, r);
            }
            Err(_) => {
                // RFC 3264 §8: a refused re-offer leaves the session as it was.
                let r = self.reply_in_dialog(tx, req, 488);
                self.sip.respond(tx, r);
            }
        }
    }

    /// Ends the call from our side: BYE once answered, 480 before.
    pub fn hangup(&mut self) {
        if self.ended.is_some() {
            return;
        }
        if !self.answered {
            self.reject(480, None, &[]);
            return;
        }
        if let Some(d) = self.dialog.as_mut() {
            let via = self.sip.via(&self.peer);
            let bye = d.request(Method::Bye, &via, None);
            debug!("sending BYE");
            self.sip.request(self.call, bye, self.peer);
        }
        self.ended = Some(EndReason::LocalHangup);
        info!("gateway hung up");
    }

    /// The dialog's id, once answered.
    pub fn dialog_id(&self) -> Option<DialogId> {
        self.dialog.as_ref().map(|d| d.id.clone())
    }

    /// Releases the call in the SIP core; media closes when this drops.
    pub fn finish(mut self) -> EndReason {
        if self.ended.is_none() {
            self.hangup();
        }
        let reason = self.ended.unwrap_or(EndReason::LocalHangup);
        // Let the BYE's client transaction run to completion before the
        // core forgets the call: responses to it then have an owner.
        self.sip.send(Command::Ended { call: self.call });
        info!(
            reason = reason.as_str(),
            secs = self.started.elapsed().as_secs(),
            "call ended"
        );
        reason
    }

    /// Waits up to `d` while handling events; returns early if the call ends.
    pub async fn pause(&mut self, d: Duration) -> Result<(), EndReason> {
        let until = Instant::now() + d;
        loop {
            match self.wait(None, false, Some(until)).await? {
                Waited::Timeout => return Ok(()),
                _ => continue,
            }
        }
    }
}

/// The digit of a SIP INFO carrying `application/dtmf-relay` or
/// `application/dtmf`.
fn info_digit(req: &Request) -> Option<char> {
    let ct = req.content_type()?;
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = match ct.as_str() {
        "application/dtmf-relay" => body
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Signal=")
                    .or_else(|| l.trim().strip_prefix("Signal ="))
            })?
            .trim(),
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let c = value.chars().next()?;
    crate::media::dtmf::char_to_event(c).and_then(crate::media::dtmf::event_to_char)
}
