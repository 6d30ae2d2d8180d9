//! What the other side sends inside an established dialog, and how the
//! `Session` answers it: BYE, re-INVITE and UPDATE (hold, unhold, a new
//! address, RFC 4028 session refreshes, glare with our own refresh), INFO
//! DTMF, OPTIONS.

use super::session::{EndReason, Session};
use crate::endpoint::capabilities::{ACCEPT, ALLOW};
use crate::media::sdp::{self, SessionDescription};
use crate::sip::dialog::session_timer::UasTimer;
use crate::sip::message::{HeaderName, MessageExt, Method, Request, Response};
use crate::sip::transaction::ServerTxId;
use bytes::Bytes;
use std::time::Instant;
use tracing::info;

impl Session {
    /// Adds `Supported: timer` when session timers are on.
    pub fn with_supported(&self, r: Response) -> Response {
        if self.sip.local.session_timer.session_expires > 0 {
            r.with_header(HeaderName::Supported, "timer")
        } else {
            r
        }
    }

    pub fn reply_in_dialog(&self, req: &Request, status: u16) -> Response {
        let tag = self.dialog.as_ref().map(|d| d.id.local_tag.clone());
        let mut r = Response::to_request(req, status, tag.as_deref());
        if status == 200 || status == 405 {
            r.headers.push(HeaderName::Allow, ALLOW);
        }
        r
    }

    pub(super) fn on_request(&mut self, tx: ServerTxId, req: Request) {
        let Some(dialog) = self.dialog.as_mut() else {
            let r = self.reply_in_dialog(&req, 481);
            self.sip.respond(tx, r);
            return;
        };
        if req.method == Method::Invite && self.reinvite.is_some() {
            // Glare: our refresh re-INVITE is pending (RFC 3261 §14.2).
            let r = self.reply_in_dialog(&req, 491);
            self.sip.respond(tx, r);
            return;
        }
        if dialog.on_request(&req).is_err() {
            let r = self
                .reply_in_dialog(&req, 500)
                .with_reason("CSeq out of order");
            self.sip.respond(tx, r);
            return;
        }
        match req.method {
            Method::Bye => {
                let r = self.reply_in_dialog(&req, 200);
                self.sip.respond(tx, r);
                if self.ended.is_none() {
                    info!("other side hung up");
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
                let r = self.reply_in_dialog(&req, 200);
                self.sip.respond(tx, r);
            }
            Method::Options => {
                let r = self
                    .reply_in_dialog(&req, 200)
                    .with_header(HeaderName::Accept, ACCEPT);
                self.sip.respond(tx, r);
            }
            _ => {
                let r = self.reply_in_dialog(&req, 405);
                self.sip.respond(tx, r);
            }
        }
    }

    /// re-INVITE or UPDATE: a new offer (hold, unhold, new address), or a
    /// session refresh (with the same SDP, or none). Either refreshes an
    /// RFC 4028 session timer, renegotiated as on the first INVITE.
    fn on_reoffer(&mut self, tx: ServerTxId, req: &Request) {
        let contact = self.sip.contact("callgate", &self.peer);
        let timer = UasTimer::negotiate(req, self.sip.local.session_timer);
        if let UasTimer::TooSmall(_) = timer {
            let r = timer.apply(self.reply_in_dialog(req, 422));
            self.sip.respond(tx, r);
            return;
        }
        self.liveness.set_timer(timer.running(), Instant::now());
        let ok = |s: &Self| {
            let r = s
                .reply_in_dialog(req, 200)
                .with_header(HeaderName::Contact, contact.clone());
            timer.apply(s.with_supported(r))
        };
        if req.body.is_empty() || self.leg.is_none() {
            let r = ok(self);
            self.sip.respond(tx, r);
            return;
        }
        let Ok(offer) = SessionDescription::parse(&req.body) else {
            let r = self.reply_in_dialog(req, 488);
            self.sip.respond(tx, r);
            return;
        };
        let version = self.next_sdp_version();
        let result = match self.leg.as_mut() {
            Some(leg) => {
                let local = self.media.local_media(leg, version);
                sdp::answer(&offer, &local).map(|(answer, params)| {
                    leg.set_params(params);
                    (answer, params)
                })
            }
            None => return,
        };
        match result {
            Ok((answer, params)) => {
                info!(direction = params.direction.as_str(), remote = ?params.remote, "media renegotiated");
                let answer = Bytes::from(answer);
                self.local_sdp = Some(answer.clone());
                let r = ok(self).with_body("application/sdp", answer);
                self.sip.respond(tx, r);
                self.update_held();
            }
            Err(_) => {
                // RFC 3264 §8: a refused re-offer leaves the session as it was.
                let r = self.reply_in_dialog(req, 488);
                self.sip.respond(tx, r);
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
                let (k, v) = l.split_once('=')?;
                k.trim().eq_ignore_ascii_case("signal").then_some(v)
            })?
            .trim(),
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let c = value.chars().next()?;
    crate::media::dtmf::char_to_event(c).and_then(crate::media::dtmf::event_to_char)
}
