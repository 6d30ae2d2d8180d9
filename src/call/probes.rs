//! The in-dialog requests a `Session` sends on its own to learn whether
//! the peer is still there (`call::liveness` decides when): OPTIONS pings
//! while the far end holds, RFC 4028 session refreshes (UPDATE when the
//! peer allows it, else a re-INVITE with the SDP last sent), and what
//! their answers mean.

use super::liveness::{Due, Verdict};
use super::session::{EndReason, Session};
use crate::media::sdp::{self, SessionDescription};
use crate::sip::dialog::session_timer::{Refresher, SessionExpires};
use crate::sip::message::{HeaderName, MessageExt, Method, Response};
use std::time::Instant;
use tracing::{debug, info, warn};

impl Session {
    /// The liveness deadline passed: send what is due, or end the call.
    pub(super) fn on_probe_due(&mut self) {
        if self.ended.is_some() || self.dialog.is_none() {
            return;
        }
        match self.liveness.on_deadline(Instant::now()) {
            None => {}
            Some(Due::Expired) => {
                warn!("the other side did not refresh the session (RFC 4028): hanging up");
                self.hangup();
                self.ended = Some(EndReason::SessionExpired);
            }
            Some(Due::Ping) => {
                let sent = self.send_in_dialog(|d, via| d.request(Method::Options, via, None));
                if let Some((seq, branch)) = sent {
                    debug!(seq, "in-dialog OPTIONS while held");
                    self.liveness.sent(seq, branch, false);
                }
            }
            Some(Due::Refresh) => self.send_refresh(),
        }
    }

    /// A session refresh (RFC 4028 §7.4, §10): we send it, so we are the
    /// UAC of the refresh and name ourselves the refresher.
    fn send_refresh(&mut self) {
        let interval = self.liveness.interval_secs().unwrap_or(0);
        let se = SessionExpires {
            interval,
            refresher: Some(Refresher::Uac),
        }
        .header_value();
        let update = self.peer_allows_update || self.local_sdp.is_none();
        let body = self
            .local_sdp
            .clone()
            .filter(|_| !update)
            .map(|b| ("application/sdp", b));
        let method = if update {
            Method::Update
        } else {
            Method::Invite
        };
        let sent = self.send_in_dialog(|d, via| {
            let mut r = d.request(method.clone(), via, body);
            r.headers.push(HeaderName::SessionExpires, se);
            r.headers.push(HeaderName::Supported, "timer");
            r
        });
        if let Some((seq, branch)) = sent {
            info!(method = %method, seq, "refreshing the session");
            if method == Method::Invite {
                self.reinvite = Some(seq);
            }
            self.liveness.sent(seq, branch, true);
        }
    }

    /// Handles a response to one of our in-dialog requests; false if it
    /// is for the call's set-up (the caller reads those).
    pub(super) fn on_probe_response(&mut self, resp: &Response) -> bool {
        let Ok(cseq) = resp.cseq() else { return false };
        let ours_reinvite = cseq.method == Method::Invite && self.reinvite == Some(cseq.seq);
        if ours_reinvite && resp.status >= 200 {
            self.reinvite = None;
            if (200..300).contains(&resp.status) {
                // Our refresh re-INVITE was answered: ACK it (§13.2.2.4)
                // and take its answer (the peer may hold meanwhile).
                self.send_in_dialog(|d, via| d.ack(cseq.seq, via, None));
                self.apply_refresh_answer(resp);
            }
        }
        let verdict = self
            .liveness
            .on_response(cseq.seq, resp.status, Instant::now());
        match verdict {
            Verdict::NotOurs => {
                // Answers to our BYE, and provisional answers to probes,
                // need nothing; set-up responses go to the caller.
                ours_reinvite || (cseq.method != Method::Invite && self.dialog.is_some())
            }
            Verdict::Alive => true,
            Verdict::Gone => {
                self.peer_gone(&format!("{} {}", resp.status, resp.reason));
                true
            }
        }
    }

    /// A client transaction timed out; true if it was a probe (the call
    /// is then over).
    pub(super) fn on_probe_timeout(&mut self, branch: &str) -> bool {
        match self.liveness.on_timeout(branch) {
            Verdict::Gone => {
                self.reinvite = None;
                self.peer_gone("no answer");
                true
            }
            _ => false,
        }
    }

    /// RFC 3261 §12.2.1.2: a 408 or 481 (or silence) to an in-dialog
    /// request means the dialog is gone. The BYE is a courtesy to proxies
    /// keeping state.
    fn peer_gone(&mut self, why: &str) {
        if self.ended.is_some() {
            return;
        }
        warn!(
            answer = why,
            "the other side is gone (in-dialog probe): hanging up"
        );
        self.hangup();
        self.ended = Some(EndReason::Unreachable);
    }

    fn apply_refresh_answer(&mut self, resp: &Response) {
        if resp.body.is_empty() {
            return;
        }
        let Ok(sd) = SessionDescription::parse(&resp.body) else {
            return;
        };
        match (sdp::read_answer(&sd), self.leg.as_mut()) {
            (Ok(params), Some(leg)) => leg.set_params(params),
            (Err(e), _) => warn!(error = %e, "unusable SDP answer to our refresh"),
            _ => {}
        }
        self.update_held();
    }
}
