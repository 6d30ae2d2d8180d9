//! Dialogs (RFC 3261 §12): the state two user agents share for the length
//! of a call: identifiers, sequence numbers, route set and remote target.
//! Plain data and pure functions; the call that owns a dialog decides
//! what to send.

use crate::sip::message::{
    HeaderName, Headers, MessageExt, Method, NameAddr, Request, Response, Uri,
};
use bytes::Bytes;

pub mod session_timer;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog an in-dialog request belongs to, seen from the
    /// receiving side (§12.2.2): our tag is in To, theirs in From.
    pub fn for_incoming(req: &Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: req.call_id()?.to_string(),
            local_tag: req.addr_to().ok()?.tag()?.to_string(),
            remote_tag: req.addr_from().ok()?.tag().unwrap_or_default().to_string(),
        })
    }

    /// The id for a response we send to a dialog-creating request: our tag
    /// in To, theirs in From (the same id `for_incoming` gives their later
    /// requests).
    pub fn for_sent_response(resp: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.call_id()?.to_string(),
            local_tag: resp.addr_to().ok()?.tag()?.to_string(),
            remote_tag: resp.addr_from().ok()?.tag().unwrap_or_default().to_string(),
        })
    }

    /// The id for a response to one of our requests: our tag in From.
    pub fn for_response(resp: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.call_id()?.to_string(),
            local_tag: resp.addr_from().ok()?.tag()?.to_string(),
            remote_tag: resp.addr_to().ok()?.tag()?.to_string(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// Our From (UAC) or To (UAS) value, with our tag.
    pub local: String,
    /// Their address with their tag.
    pub remote: String,
    /// Where in-dialog requests go: the peer's Contact (§12.1.1).
    pub remote_target: Uri,
    /// Route headers for in-dialog requests, in the order to send them.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// Highest CSeq seen from the peer; `None` until they send a request.
    pub remote_cseq: Option<u32>,
    /// Our Contact, sent in every request and 2xx.
    pub local_contact: String,
}

/// Why an in-dialog request was refused (§12.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDialogError {
    /// CSeq lower than one already seen: answer 500.
    CSeqOutOfOrder,
}

impl Dialog {
    /// The dialog a UAS creates by answering `invite` with To tag
    /// `local_tag` (§12.1.1).
    pub fn uas(invite: &Request, local_tag: &str, local_contact: &str) -> Option<Dialog> {
        let from = invite.addr_from().ok()?;
        let to_value = invite.headers.get(&HeaderName::To)?;
        let local = if to_value.contains(";tag=") {
            to_value.to_string()
        } else {
            format!("{to_value};tag={local_tag}")
        };
        let contact = invite.contacts().ok()?.into_iter().next()?;
        Some(Dialog {
            id: DialogId {
                call_id: invite.call_id()?.to_string(),
                local_tag: local_tag.to_string(),
                remote_tag: from.tag().unwrap_or_default().to_string(),
            },
            state: DialogState::Early,
            local,
            remote: invite.headers.get(&HeaderName::From)?.to_string(),
            remote_target: contact.uri,
            route_set: invite
                .headers
                .get_all(&HeaderName::RecordRoute)
                .map(str::to_string)
                .collect(),
            local_cseq: 0,
            remote_cseq: Some(invite.cseq().ok()?.seq),
            local_contact: local_contact.to_string(),
        })
    }

    /// The dialog a UAC gets from a response with a To tag to `invite`
    /// (§12.1.2): Record-Route reversed, their Contact as target.
    pub fn uac(invite: &Request, resp: &Response) -> Option<Dialog> {
        let remote_tag = resp.addr_to().ok()?.tag()?.to_string();
        let from = invite.addr_from().ok()?;
        let target = resp
            .contacts()
            .ok()
            .and_then(|c| c.into_iter().next())
            .map(|c| c.uri)
            .unwrap_or_else(|| invite.uri.clone());
        let mut route_set: Vec<String> = resp
            .headers
            .get_all(&HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        route_set.reverse();
        Some(Dialog {
            id: DialogId {
                call_id: invite.call_id()?.to_string(),
                local_tag: from.tag()?.to_string(),
                remote_tag,
            },
            state: if resp.status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local: invite.headers.get(&HeaderName::From)?.to_string(),
            remote: resp.headers.get(&HeaderName::To)?.to_string(),
            remote_target: target,
            route_set,
            local_cseq: invite.cseq().ok()?.seq,
            remote_cseq: None,
            local_contact: invite
                .headers
                .get(&HeaderName::Contact)
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Checks and records the CSeq of a request from the peer, and takes a
    /// new remote target from a target-refresh request (§12.2.2).
    pub fn on_request(&mut self, req: &Request) -> Result<(), InDialogError> {
        let seq = req.cseq().map(|c| c.seq).unwrap_or(0);
        if req.method != Method::Ack && req.method != Method::Cancel {
            if let Some(last) = self.remote_cseq
                && seq <= last
            {
                return Err(InDialogError::CSeqOutOfOrder);
            }
            self.remote_cseq = Some(seq);
        }
        if matches!(req.method, Method::Invite | Method::Update)
            && let Some(c) = req.contacts().ok().and_then(|c| c.into_iter().next())
        {
            self.remote_target = c.uri;
        }
        if req.method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// A request within the dialog (§12.2.1.1). `via` is the whole Via
    /// value including a fresh branch. ACK and CANCEL reuse a CSeq number;
    /// everything else takes the next one.
    pub fn request(&mut self, method: Method, via: &str, body: Option<(&str, Bytes)>) -> Request {
        let seq = match method {
            Method::Ack | Method::Cancel => self.local_cseq,
            _ => {
                self.local_cseq = self.local_cseq.wrapping_add(1);
                self.local_cseq
            }
        };
        self.request_with_cseq(method, seq, via, body)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4).
    pub fn ack(&self, invite_seq: u32, via: &str, body: Option<(&str, Bytes)>) -> Request {
        self.request_with_cseq(Method::Ack, invite_seq, via, body)
    }

    fn request_with_cseq(
        &self,
        method: Method,
        seq: u32,
        via: &str,
        body: Option<(&str, Bytes)>,
    ) -> Request {
        let mut h = Headers::new();
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, self.local.clone());
        h.push(HeaderName::To, self.remote.clone());
        h.push(HeaderName::CallId, self.id.call_id.clone());
        h.push(HeaderName::CSeq, format!("{seq} {method}"));
        let (uri, routes) = self.request_uri_and_routes();
        for r in routes {
            h.push(HeaderName::Route, r);
        }
        if !self.local_contact.is_empty() && !matches!(method, Method::Bye | Method::Cancel) {
            h.push(HeaderName::Contact, self.local_contact.clone());
        }
        let body = match body {
            Some((ct, b)) => {
                h.push(HeaderName::ContentType, ct);
                b
            }
            None => Bytes::new(),
        };
        Request {
            method,
            uri,
            version: "SIP/2.0".into(),
            headers: h,
            body,
        }
    }

    /// Request-URI and Route headers of an in-dialog request (§12.2.1.1).
    /// Loose routing (the first route has `lr`): the remote target is the
    /// Request-URI and the whole route set goes in Route. A strict router
    /// first (RFC 2543, no `lr`): its URI becomes the Request-URI (without
    /// the parameters a Request-URI may not carry, §19.1.1), the rest of
    /// the route set follows in Route, and the remote target goes last.
    fn request_uri_and_routes(&self) -> (Uri, Vec<String>) {
        let first = self.route_set.first().and_then(|r| NameAddr::parse(r).ok());
        match first {
            Some(strict) if !strict.uri.params.has("lr") => {
                let mut uri = strict.uri.as_str().to_string();
                for p in ["method", "ttl", "maddr", "lr"] {
                    uri = strip_uri_param(&uri, p);
                }
                let uri = Uri::parse(&uri).unwrap_or(strict.uri);
                let mut routes: Vec<String> = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (uri, routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        }
    }

    /// The first Route, if any: where in-dialog requests physically go
    /// (§8.1.2, for strict and loose routers alike); otherwise the remote
    /// target.
    pub fn next_hop(&self) -> Option<Uri> {
        match self.route_set.first() {
            Some(r) => NameAddr::parse(r).ok().map(|n| n.uri),
            None => Some(self.remote_target.clone()),
        }
    }

    /// Whether in-dialog requests follow a route set (a proxy asked to
    /// stay in the path with Record-Route).
    pub fn has_routes(&self) -> bool {
        !self.route_set.is_empty()
    }

    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }
}

/// `uri` without URI parameter `name` (case-insensitive; parameters before
/// any `?headers`).
fn strip_uri_param(uri: &str, name: &str) -> String {
    let (base, headers) = match uri.split_once('?') {
        Some((b, h)) => (b, Some(h)),
        None => (uri, None),
    };
    let mut parts = base.split(';');
    let mut out = parts.next().unwrap_or_default().to_string();
    for p in parts {
        let key = p.split('=').next().unwrap_or_default();
        if !key.eq_ignore_ascii_case(name) {
            out.push(';');
            out.push_str(p);
        }
    }
    if let Some(h) = headers {
        out.push('?');
        out.push_str(h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse_datagram};

    fn req(text: &str) -> Request {
        match parse_datagram(text.replace('\n', "\r\n").as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn resp(text: &str) -> Response {
        match parse_datagram(text.replace('\n', "\r\n").as_bytes()) {
            Ok(SipMessage::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    const INVITE: &str = "INVITE sip:100@gw SIP/2.0\nVia: SIP/2.0/UDP p1:5060;branch=z9hG4bKp1\nVia: SIP/2.0/UDP phone:5060;branch=z9hG4bKa\nRecord-Route: <sip:p2;lr>\nRecord-Route: <sip:p1;lr>\nFrom: \"Ann\" <sip:ann@x>;tag=ann1\nTo: <sip:100@gw>\nCall-ID: d1\nCSeq: 7 INVITE\nContact: <sip:ann@10.0.0.9:5062>\nMax-Forwards: 69\n\n";

    #[test]
    fn uas_dialog_from_invite() {
        let inv = req(INVITE);
        let mut d = Dialog::uas(&inv, "gw1", "<sip:gw@10.0.0.1:5060>").unwrap();
        assert_eq!(d.id.remote_tag, "ann1");
        assert_eq!(d.remote_cseq, Some(7));
        assert_eq!(d.remote_target.as_str(), "sip:ann@10.0.0.9:5062");
        assert_eq!(d.route_set, vec!["<sip:p2;lr>", "<sip:p1;lr>"]);
        // BYE from the gateway: From is our side with our tag, To theirs.
        let bye = d.request(Method::Bye, "SIP/2.0/UDP gw;branch=z9hG4bKb", None);
        assert_eq!(bye.uri.as_str(), "sip:ann@10.0.0.9:5062");
        assert_eq!(bye.addr_from().unwrap().tag(), Some("gw1"));
        assert_eq!(bye.addr_to().unwrap().tag(), Some("ann1"));
        assert_eq!(bye.cseq().unwrap().seq, 1);
        let routes: Vec<_> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(routes, vec!["<sip:p2;lr>", "<sip:p1;lr>"]);
        assert_eq!(d.next_hop().unwrap().as_str(), "sip:p2;lr");
    }

    #[test]
    fn remote_cseq_must_grow_and_reinvite_refreshes_target() {
        let inv = req(INVITE);
        let mut d = Dialog::uas(&inv, "gw1", "<sip:gw@10.0.0.1>").unwrap();
        let reinvite = req(&INVITE
            .replace("CSeq: 7", "CSeq: 8")
            .replace("To: <sip:100@gw>", "To: <sip:100@gw>;tag=gw1")
            .replace("10.0.0.9:5062", "10.0.0.10:6000"));
        assert_eq!(d.on_request(&reinvite), Ok(()));
        assert_eq!(d.remote_target.as_str(), "sip:ann@10.0.0.10:6000");
        let old = req(&INVITE
            .replace("CSeq: 7 INVITE", "CSeq: 6 BYE")
            .replace("INVITE sip", "BYE sip"));
        assert_eq!(d.on_request(&old), Err(InDialogError::CSeqOutOfOrder));
        let bye = req(&INVITE
            .replace("CSeq: 7 INVITE", "CSeq: 9 BYE")
            .replace("INVITE sip", "BYE sip"));
        assert_eq!(d.on_request(&bye), Ok(()));
        assert_eq!(d.state, DialogState::Terminated);
    }

    /// RFC 3261 §12.2.1.1: a strict router (no `lr`) first in the route
    /// set takes the Request-URI; the remote target goes last in Route.
    #[test]
    fn strict_router_first_takes_the_request_uri() {
        let mut d = Dialog::uas(&req(INVITE), "gw1", "<sip:gw@10.0.0.1>").unwrap();
        d.route_set = vec![
            "<sip:old.example.com;maddr=192.0.2.1;foo=bar>".into(),
            "<sip:p1;lr>".into(),
        ];
        let bye = d.request(Method::Bye, "SIP/2.0/UDP gw;branch=z9hG4bKs", None);
        assert_eq!(bye.uri.as_str(), "sip:old.example.com;foo=bar");
        let routes: Vec<_> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(routes, vec!["<sip:p1;lr>", "<sip:ann@10.0.0.9:5062>"]);
        assert_eq!(
            d.next_hop().unwrap().as_str(),
            "sip:old.example.com;maddr=192.0.2.1;foo=bar"
        );
        // Loose: the target stays the Request-URI.
        d.route_set = vec!["<sip:p1;lr>".into()];
        let bye = d.request(Method::Bye, "SIP/2.0/UDP gw;branch=z9hG4bKt", None);
        assert_eq!(bye.uri.as_str(), "sip:ann@10.0.0.9:5062");
        assert!(d.has_routes());
    }

    #[test]
    fn uac_dialog_reverses_route_set_and_acks_with_invite_cseq() {
        let inv = req(
            "INVITE sip:alice@10.0.0.5 SIP/2.0\nVia: SIP/2.0/UDP gw;branch=z9hG4bKo\nFrom: <sip:gw@x>;tag=me\nTo: <sip:alice@x>\nCall-ID: o1\nCSeq: 1 INVITE\nContact: <sip:gw@10.0.0.1>\n\n",
        );
        let ok = resp(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP gw;branch=z9hG4bKo\nRecord-Route: <sip:p1;lr>\nRecord-Route: <sip:p2;lr>\nFrom: <sip:gw@x>;tag=me\nTo: <sip:alice@x>;tag=her\nCall-ID: o1\nCSeq: 1 INVITE\nContact: <sip:alice@10.0.0.5:5070;ob>\n\n",
        );
        let mut d = Dialog::uac(&inv, &ok).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.route_set, vec!["<sip:p2;lr>", "<sip:p1;lr>"]);
        let ack = d.ack(1, "SIP/2.0/UDP gw;branch=z9hG4bKack", None);
        assert_eq!(ack.cseq().unwrap().seq, 1);
        assert_eq!(ack.uri.as_str(), "sip:alice@10.0.0.5:5070;ob");
        let bye = d.request(Method::Bye, "SIP/2.0/UDP gw;branch=z9hG4bKbye", None);
        assert_eq!(bye.cseq().unwrap().seq, 2);
        assert_eq!(DialogId::for_response(&ok), Some(d.id.clone()));
    }
}
