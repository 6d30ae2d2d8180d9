//! An outbound call: the gateway as UAC (RFC 3261 §13.2), used to offer
//! contacts to agents and to dial customers back. Handles provisional
//! responses, ring timeout with CANCEL (§9.1), digest authentication
//! towards a trunk (§22.2), and a 200 that races our CANCEL (ACK, then
//! BYE). Once answered, everything is the shared `Session`.

use super::session::{EndReason, Session, Waited};
use crate::endpoint::tu::{CallEvent, Command, SipHandle};
use crate::media::engine::MediaEngine;
use crate::media::sdp::{self, Direction, SessionDescription};
use crate::sip::auth::{Algorithm, DigestInput};
use crate::sip::dialog::Dialog;
use crate::sip::dialog::session_timer::uac_timer;
use crate::sip::message::{HeaderName, Headers, MessageExt, Method, Request, Response, Uri};
use crate::sip::transport::Peer;
use bytes::Bytes;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What to dial.
#[derive(Debug, Clone)]
pub struct DialSpec {
    pub uri: Uri,
    /// Where the INVITE physically goes.
    pub peer: Peer,
    /// A pre-loaded route set (an agent's Path, RFC 3327 §5.3): Route
    /// headers of the INVITE, top first.
    pub route: Vec<String>,
    /// Display name and user of our From (the caller ID shown).
    pub from_display: Option<String>,
    pub from_user: String,
    /// P-Asserted-Identity value (RFC 3325), e.g. `"Acme" <sip:+1...@host>`.
    pub asserted_identity: Option<String>,
    pub extra_headers: Vec<(HeaderName, String)>,
    /// Digest credentials if the far end challenges.
    pub credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialOutcome {
    Answered,
    /// It rang (or not) and nobody answered: our ring timeout fired and we
    /// cancelled (the status is then the 487), or the far end gave up
    /// (408/480/487), or no response came at all (Timer B, as 408).
    NoAnswer(u16),
    /// Any other final failure (486 busy, 603 decline, 404…).
    Failed(u16),
    /// We cancelled on request (the contact went away).
    Cancelled,
}

/// How long to wait for the 487 after sending CANCEL.
const CANCEL_GRACE: Duration = Duration::from_secs(4);

pub struct OutboundCall {
    pub session: Session,
    invite: Request,
    branch: String,
    local_tag: String,
    cseq: u32,
    ringing_since: Option<Instant>,
    cancelled: bool,
    /// Digest credentials if the far end challenges (tried once).
    credentials: Option<(String, String)>,
    auth_tried: bool,
    /// A 422 asked for a longer session interval (tried once).
    interval_raised: bool,
    answered: bool,
}

impl Deref for OutboundCall {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl DerefMut for OutboundCall {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

fn quote(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

impl OutboundCall {
    /// Opens a media leg and sends the INVITE with our SDP offer.
    pub fn dial(
        sip: SipHandle,
        media: Arc<MediaEngine>,
        spec: &DialSpec,
    ) -> Result<OutboundCall, EndReason> {
        let leg = media.open_leg().map_err(|e| {
            warn!(error = %e, "no media for an outbound call");
            EndReason::Failure
        })?;
        let call = sip.new_call();
        let (tx, rx) = mpsc::unbounded_channel::<CallEvent>();
        sip.attach(call, tx);
        let mut session = Session::new(call, sip.clone(), rx, spec.peer, media.clone());
        let offer = Bytes::from(sdp::offer(&media.local_media(&leg, 1), Direction::SendRecv));
        session.leg = Some(leg);
        session.local_sdp = Some(offer.clone());
        let local_tag = SipHandle::tag();
        let sent_by = sip.local.sent_by(spec.peer.kind, &spec.peer.addr);
        let from = match &spec.from_display {
            Some(d) => format!(
                "\"{}\" <sip:{}@{sent_by}>;tag={local_tag}",
                quote(d),
                spec.from_user
            ),
            None => format!("<sip:{}@{sent_by}>;tag={local_tag}", spec.from_user),
        };
        let mut h = Headers::new();
        h.push(HeaderName::Via, sip.via(&spec.peer));
        for r in &spec.route {
            h.push(HeaderName::Route, r.clone());
        }
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, from);
        h.push(HeaderName::To, format!("<{}>", spec.uri));
        h.push(
            HeaderName::CallId,
            format!("{}@callgate", uuid::Uuid::new_v4().simple()),
        );
        h.push(HeaderName::CSeq, "1 INVITE");
        h.push(HeaderName::Contact, sip.contact("callgate", &spec.peer));
        if let Some(pai) = &spec.asserted_identity {
            h.push(HeaderName::PAssertedIdentity, pai.clone());
        }
        h.push(HeaderName::Allow, crate::endpoint::capabilities::ALLOW);
        // RFC 4028: we support session timers and propose our interval;
        // the answerer picks who refreshes.
        let limits = sip.local.session_timer;
        if limits.session_expires > 0 {
            h.push(HeaderName::Supported, "timer");
            h.push(
                HeaderName::SessionExpires,
                limits.session_expires.to_string(),
            );
            h.push(HeaderName::MinSe, limits.min_se.to_string());
        }
        h.push(HeaderName::UserAgent, sip.local.user_agent.clone());
        for (n, v) in &spec.extra_headers {
            h.push(n.clone(), v.clone());
        }
        h.push(HeaderName::ContentType, "application/sdp");
        let invite = Request {
            method: Method::Invite,
            uri: spec.uri.clone(),
            version: "SIP/2.0".into(),
            headers: h,
            body: offer,
        };
        let branch = invite.top_branch().unwrap_or_default();
        info!(to = %spec.uri, peer = %spec.peer, call_id = invite.call_id().unwrap_or_default(), "dialling");
        sip.request(call, invite.clone(), spec.peer);
        Ok(OutboundCall {
            session,
            invite,
            branch,
            local_tag,
            cseq: 1,
            ringing_since: None,
            cancelled: false,
            credentials: spec.credentials.clone(),
            auth_tried: false,
            interval_raised: false,
            answered: false,
        })
    }

    pub fn call_id(&self) -> &str {
        self.invite.call_id().unwrap_or_default()
    }

    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// CANCELs the INVITE (sent once a provisional response arrived).
    pub fn cancel(&mut self) {
        if !self.cancelled && !self.answered {
            self.cancelled = true;
            self.session.sip.send(Command::Cancel {
                branch: self.branch.clone(),
            });
        }
    }

    /// Waits for the final answer. `ring_timeout` counts from the first
    /// 18x; `no_response` bounds the wait for any answer at all;
    /// `abandon` cancels the attempt when it resolves (the contact went
    /// away).
    pub async fn wait_answer<F: Future<Output = ()>>(
        &mut self,
        ring_timeout: Duration,
        abandon: F,
    ) -> DialOutcome {
        tokio::pin!(abandon);
        let mut abandoned = false;
        let mut cancelled_at: Option<Instant> = None;
        loop {
            if self.cancelled && cancelled_at.is_none() {
                cancelled_at = Some(Instant::now());
            }
            // After a CANCEL the far end owes us a 487; a broken one that
            // never sends it must not hold an agent for 32 s (Timer B).
            let deadline = match (self.ringing_since, cancelled_at) {
                (_, Some(t)) => Some(t + CANCEL_GRACE),
                (Some(t), None) => Some(t + ring_timeout),
                _ => None,
            };
            let waited = if abandoned {
                self.session.wait_for(None, false, true, deadline).await
            } else {
                tokio::select! {
                    w = self.session.wait_for(None, false, true, deadline) => w,
                    _ = &mut abandon => {
                        abandoned = true;
                        info!("abandoning the outbound call");
                        self.cancel();
                        continue;
                    }
                }
            };
            match waited {
                Err(_) => return DialOutcome::Failed(500),
                Ok(Waited::Timeout) if cancelled_at.is_some() => {
                    warn!("no final response after CANCEL: giving up");
                    return if abandoned {
                        DialOutcome::Cancelled
                    } else {
                        DialOutcome::NoAnswer(487)
                    };
                }
                Ok(Waited::Timeout) => {
                    info!(
                        secs = ring_timeout.as_secs(),
                        "no answer within the ring timeout: CANCEL"
                    );
                    self.cancel();
                }
                Ok(Waited::Response) => {
                    if self.session.timeouts.contains(&self.branch) {
                        self.session.timeouts.clear();
                        // Timer B: no final response at all (§8.1.3.1: as 408).
                        return if abandoned {
                            DialOutcome::Cancelled
                        } else {
                            DialOutcome::NoAnswer(408)
                        };
                    }
                    self.session.timeouts.clear();
                    while let Some((resp, _)) = self.session.responses.pop_front() {
                        if let Some(outcome) = self.on_response(resp, abandoned) {
                            return outcome;
                        }
                    }
                }
                Ok(_) => {}
            }
        }
    }

    fn on_response(&mut self, resp: Response, abandoned: bool) -> Option<DialOutcome> {
        let Ok(cseq) = resp.cseq() else { return None };
        if cseq.method != Method::Invite || cseq.seq != self.cseq {
            return None;
        }
        match resp.status {
            100 => None,
            101..=199 => {
                if self.ringing_since.is_none() {
                    info!(status = resp.status, "ringing");
                    self.ringing_since = Some(Instant::now());
                }
                // Early media (183 with SDP): play what the far end sends.
                if !resp.body.is_empty() {
                    self.apply_answer(&resp);
                }
                None
            }
            200..=299 => {
                let Some(mut dialog) = Dialog::uac(&self.invite, &resp) else {
                    warn!("2xx without a To tag");
                    return Some(DialOutcome::Failed(resp.status));
                };
                dialog.confirm();
                self.session.dialog = Some(dialog);
                // The ACK and every later request follow the route set the
                // 2xx's Record-Route gave (RFC 3261 §12.2.1.1, §13.2.2.4):
                // through the proxies that asked to stay in the path.
                let seq = self.cseq;
                let ack = self.session.send_in_dialog(|d, via| d.ack(seq, via, None));
                if ack.is_some() {
                    info!(to = %self.session.next_hop(), "ACK sent");
                }
                self.session.peer_allows_update = super::uas::allows(&resp, "UPDATE");
                self.session
                    .liveness
                    .set_timer(uac_timer(&resp), Instant::now());
                self.apply_answer(&resp);
                self.session.update_held();
                if self.cancelled {
                    // The 200 crossed our CANCEL (§9.1): the call exists,
                    // so end it properly.
                    info!("200 OK crossed the CANCEL: ACK and BYE");
                    self.session.hangup();
                    return Some(if abandoned {
                        DialOutcome::Cancelled
                    } else {
                        DialOutcome::NoAnswer(487)
                    });
                }
                self.answered = true;
                info!("answered");
                Some(DialOutcome::Answered)
            }
            422 if !self.interval_raised => {
                // RFC 4028 §7.3: our interval was below theirs; ask again
                // with their Min-SE.
                self.interval_raised = true;
                let Some(min) = resp
                    .header_u32(&HeaderName::MinSe)
                    .ok()
                    .flatten()
                    .filter(|m| *m > 0)
                else {
                    return Some(DialOutcome::Failed(422));
                };
                info!(min_se = min, "422: raising the session interval");
                let mut invite = self.invite.clone();
                invite
                    .headers
                    .set(HeaderName::SessionExpires, min.to_string());
                invite.headers.set(HeaderName::MinSe, min.to_string());
                let invite = self.resend(invite);
                self.invite = invite;
                None
            }
            401 | 407 if !self.auth_tried && self.credentials.is_some() => {
                self.auth_tried = true;
                match self.authorized_invite(&resp) {
                    Some(invite) => {
                        info!("authenticating the INVITE");
                        self.invite = self.resend(invite);
                        None
                    }
                    None => Some(DialOutcome::Failed(resp.status)),
                }
            }
            status => {
                info!(status, reason = %resp.reason, "call not answered");
                if abandoned {
                    return Some(DialOutcome::Cancelled);
                }
                Some(match status {
                    408 | 480 | 487 => DialOutcome::NoAnswer(status),
                    _ => DialOutcome::Failed(status),
                })
            }
        }
    }

    fn apply_answer(&mut self, resp: &Response) {
        let Ok(sd) = SessionDescription::parse(&resp.body) else {
            return;
        };
        match sdp::read_answer(&sd) {
            Ok(params) => {
                if let Some(leg) = self.session.leg.as_mut() {
                    leg.set_params(params);
                }
            }
            Err(e) => warn!(error = %e, "unusable SDP answer"),
        }
    }

    /// The INVITE again with credentials for the challenge in `resp`
    /// (RFC 3261 §22.2), a new branch and the next CSeq.
    fn authorized_invite(&mut self, resp: &Response) -> Option<Request> {
        let (user, password) = self.credentials.clone()?;
        let (header, out_header) = if resp.status == 407 {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        // Take the first challenge whose algorithm we implement.
        let (params, algorithm) = resp.headers.get_all(&header).find_map(|v| {
            let (scheme, params) = crate::sip::auth::credentials::parse_auth_params(v).ok()?;
            if !scheme.eq_ignore_ascii_case("Digest") {
                return None;
            }
            let alg = Algorithm::parse(
                params
                    .iter()
                    .find(|(k, _)| k == "algorithm")
                    .map(|(_, v)| v.as_str()),
            )?;
            Some((params, alg))
        })?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let realm = get("realm")?;
        let nonce = get("nonce")?;
        let qop = get("qop").filter(|q| q.split(',').any(|x| x.trim() == "auth"));
        let cnonce = hex::encode(rand::random::<[u8; 8]>());
        let uri = self.invite.uri.to_string();
        let response = DigestInput {
            algorithm,
            username: &user,
            realm: &realm,
            password: &password,
            method: "INVITE",
            uri: &uri,
            nonce: &nonce,
            qop: qop.as_ref().map(|_| "auth"),
            nc: "00000001",
            cnonce: &cnonce,
        }
        .response();
        let mut value = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            algorithm.as_str()
        );
        if qop.is_some() {
            value.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = get("opaque") {
            value.push_str(&format!(", opaque=\"{o}\""));
        }
        let mut invite = self.invite.clone();
        invite.headers.remove(&out_header);
        invite.headers.push(out_header, value);
        Some(invite)
    }

    /// Sends `invite` again as a new transaction (§8.1.3.5, RFC 4028
    /// §7.3): next CSeq, fresh branch, same peer. Returns what was sent.
    fn resend(&mut self, mut invite: Request) -> Request {
        self.cseq += 1;
        invite
            .headers
            .set(HeaderName::CSeq, format!("{} INVITE", self.cseq));
        // The Via leads and Route follows: `set` keeps the Via's place.
        invite
            .headers
            .set(HeaderName::Via, self.session.sip.via(&self.session.peer));
        self.branch = invite.top_branch().unwrap_or_default();
        self.session
            .sip
            .request(self.session.call, invite.clone(), self.session.peer);
        invite
    }

    /// Ends the call: BYE once answered, CANCEL while ringing.
    pub fn hangup(&mut self) {
        if self.answered {
            self.session.hangup();
        } else {
            self.cancel();
            if self.session.ended.is_none() {
                self.session.ended = Some(EndReason::LocalHangup);
            }
        }
    }
}

/// However the call's task ends, the far end is not left ringing or
/// talking to nobody: CANCEL while unanswered, BYE once answered.
impl Drop for OutboundCall {
    fn drop(&mut self) {
        if self.session.ended.is_none() {
            self.hangup();
        }
    }
}

/// The identity `P-Asserted-Identity` carries for a caller ID.
pub fn asserted_identity(display: Option<&str>, number: &str, host: &str) -> String {
    match display {
        Some(d) => format!("\"{}\" <sip:{number}@{host};user=phone>", quote(d)),
        None => format!("<sip:{number}@{host};user=phone>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_id_strings_are_sanitised() {
        assert_eq!(quote("Acme \"Support\"\r\n"), "Acme Support");
        assert_eq!(
            asserted_identity(Some("Acme"), "+12015550000", "gw"),
            "\"Acme\" <sip:+12015550000@gw;user=phone>"
        );
    }
}
