//! An inbound call as the gateway answers it: the UAS side of RFC 3261
//! §13.3. Once answered, everything is the shared `Session`.

pub use super::session::{EndReason, Session, Waited};
use crate::endpoint::capabilities::{ACCEPT, ALLOW};
use crate::endpoint::tu::{CallEvent, CallRef, SipHandle};
use crate::media::engine::MediaEngine;
use crate::media::sdp::{self, SessionDescription};
use crate::sip::dialog::Dialog;
use crate::sip::dialog::session_timer::UasTimer;
use crate::sip::message::{HeaderName, MessageExt, Request, Response};
use crate::sip::transaction::ServerTxId;
use crate::sip::transaction::layer::tag_for;
use crate::sip::transport::Peer;
use bytes::Bytes;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{info, warn};

pub struct InboundCall {
    pub session: Session,
    pub invite: Request,
    tx: ServerTxId,
    local_tag: String,
    answered: bool,
}

impl Deref for InboundCall {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl DerefMut for InboundCall {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
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
        // The transaction's one To tag: the CANCEL's 200, answered by the
        // transaction layer, carries it too (RFC 3261 §9.2).
        let local_tag = tag_for(tx);
        let mut session = Session::new(call, sip, events, peer, media);
        let r487 = Response::to_request(&invite, 487, Some(&local_tag));
        session.pending_invite = Some((tx, r487));
        InboundCall {
            session,
            invite,
            tx,
            local_tag,
            answered: false,
        }
    }

    pub fn call_id(&self) -> &str {
        self.invite.call_id().unwrap_or_default()
    }

    /// The dialled number (Request-URI user part, unescaped).
    pub fn dialled(&self) -> String {
        self.invite.uri.user_unescaped().unwrap_or_default()
    }

    /// The caller's number as signalled: P-Asserted-Identity when present
    /// (set by a trusted trunk), else From.
    pub fn caller_user(&self) -> Option<String> {
        let pai = self
            .invite
            .headers
            .get(&HeaderName::PAssertedIdentity)
            .and_then(|v| crate::sip::message::NameAddr::parse(v).ok());
        let from = self.invite.addr_from().ok();
        pai.or(from).and_then(|a| a.uri.user_unescaped())
    }

    fn response(&self, status: u16) -> Response {
        Response::to_request(&self.invite, status, Some(&self.local_tag))
    }

    /// 180 Ringing (optional before answering).
    pub fn ring(&self) {
        if !self.answered && self.session.ended.is_none() {
            self.session.sip.respond(self.tx, self.response(180));
        }
    }

    /// Refuses the call (404, 486, 503…), with optional extra headers.
    pub fn reject(&mut self, status: u16, reason: Option<&str>, extra: &[(HeaderName, String)]) {
        if self.answered || self.session.ended.is_some() {
            return;
        }
        let mut r = self.response(status);
        if let Some(reason) = reason {
            r = r.with_reason(reason);
        }
        for (n, v) in extra {
            r.headers.push(n.clone(), v.clone());
        }
        self.session.sip.respond(self.tx, r);
        self.session.pending_invite = None;
        self.session.ended = Some(EndReason::Rejected(status));
    }

    /// Negotiates media and answers 200 OK (RFC 3264 answer to the
    /// INVITE's offer). A refused offer gets 488 and ends the call.
    pub fn answer(&mut self) -> Result<(), EndReason> {
        self.session.poll_events();
        if let Some(r) = self.session.ended {
            return Err(r);
        }
        if self.answered {
            return Ok(());
        }
        let offer = match SessionDescription::parse(&self.invite.body) {
            Ok(o) => o,
            Err(e) => {
                // An INVITE without an offer (RFC 3261 §13.2.1 allows it)
                // is not what a contact-centre trunk sends; refuse clearly.
                warn!(error = %e, "INVITE without a usable SDP offer");
                self.reject(488, Some("SDP offer required"), &[]);
                return Err(EndReason::Rejected(488));
            }
        };
        let mut leg = match self.session.media.open_leg() {
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
        let local = self.session.media.local_media(&leg, 1);
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
        // RFC 4028: a session timer if the caller (or a proxy) asks for
        // one, or supports it.
        let timer = UasTimer::negotiate(&self.invite, self.session.sip.local.session_timer);
        if let UasTimer::TooSmall(min) = timer {
            info!(min_se = min, "session interval too short: 422");
            self.reject(422, None, &[(HeaderName::MinSe, min.to_string())]);
            return Err(EndReason::Rejected(422));
        }
        leg.set_params(params);
        let contact = self.session.sip.contact("callgate", &self.session.peer);
        let Some(dialog) = Dialog::uas(&self.invite, &self.local_tag, &contact) else {
            self.reject(400, Some("INVITE lacks Contact"), &[]);
            return Err(EndReason::Rejected(400));
        };
        let answer = Bytes::from(answer);
        let r = self
            .response(200)
            .with_header(HeaderName::Contact, contact)
            .with_header(HeaderName::Allow, ALLOW)
            .with_header(HeaderName::Accept, ACCEPT)
            .with_body("application/sdp", answer.clone());
        let r = timer.apply(self.session.with_supported(r));
        self.session.sip.respond(self.tx, r);
        self.session.pending_invite = None;
        self.session.dialog = Some(dialog);
        self.session.leg = Some(leg);
        self.session.local_sdp = Some(answer);
        self.session.peer_allows_update = allows(&self.invite, "UPDATE");
        self.session
            .liveness
            .set_timer(timer.running(), std::time::Instant::now());
        self.session.update_held();
        self.answered = true;
        info!(codec = ?params.law, dtmf_pt = ?params.dtmf_pt, remote = ?params.remote, "call answered");
        Ok(())
    }

    /// Ends the call from our side: BYE once answered, 480 before.
    pub fn hangup(&mut self) {
        if !self.answered {
            self.reject(480, None, &[]);
            return;
        }
        self.session.hangup();
    }

    /// Why the call ended (a live call is hung up when dropped).
    pub fn end_reason(&self) -> EndReason {
        self.session.ended.unwrap_or(EndReason::LocalHangup)
    }
}

/// Whether `msg` lists `method` in its Allow header.
pub fn allows(msg: &impl MessageExt, method: &str) -> bool {
    msg.headers()
        .get_all(&HeaderName::Allow)
        .any(|v| v.split(',').any(|m| m.trim().eq_ignore_ascii_case(method)))
}

/// However the call's task ends (done, an early return, a panic, the task
/// aborted at shutdown) the caller is not left hanging: 480 if never
/// answered, BYE if answered. The session then releases the SIP core's
/// routes and the media leg.
impl Drop for InboundCall {
    fn drop(&mut self) {
        if self.session.ended.is_none() {
            self.hangup();
        }
        info!(
            reason = self.end_reason().as_str(),
            secs = self.session.started.elapsed().as_secs(),
            "call ended"
        );
    }
}
