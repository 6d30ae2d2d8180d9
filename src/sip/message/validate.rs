//! Checks every request must pass before any transaction or application
//! logic sees it (RFC 3261 §8.2.1–§8.2.2, RFC 4475 §3.1.2 and §3.3).

use super::header::HeaderName;
use super::uri::Scheme;
use super::{MessageExt, Method, NameAddr, Request, Response, Via};

/// A request refused before processing: the status, a reason phrase that
/// names the problem, and any header the status requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// The response to `req` (To tag `tag`) saying so.
    pub fn respond_to(self, req: &Request, tag: &str) -> Response {
        let mut resp = Response::to_request(req, self.status, Some(tag)).with_reason(self.reason);
        for (n, v) in self.headers {
            resp.headers.push(n, v);
        }
        resp
    }
}

fn bad(reason: impl Into<String>) -> Rejection {
    Rejection::new(400, reason)
}

/// Option tags we implement (none yet beyond the base spec). Anything in a
/// Require header is therefore answered 420 (RFC 3261 §8.2.2.3).
const SUPPORTED_EXTENSIONS: &[&str] = &[];

pub fn validate_request(req: &Request) -> Result<(), Rejection> {
    if !req.version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    for (name, label) in [
        (HeaderName::Via, "Via"),
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        if req.headers.get(&name).is_none() {
            return Err(bad(format!("Missing {label} header")));
        }
    }
    for h in [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::From,
        HeaderName::To,
        HeaderName::MaxForwards,
        HeaderName::ContentType,
        HeaderName::Expires,
    ] {
        debug_assert!(h.is_single_valued());
        if req.headers.count(&h) > 1 {
            return Err(bad(format!("Multiple {h} headers")));
        }
    }
    for v in req.headers.get_all(&HeaderName::Via) {
        Via::parse(v).map_err(|e| bad(format!("Malformed Via: {e}")))?;
    }
    req.addr_from().map_err(|e| bad(e.reason))?;
    req.addr_to().map_err(|e| bad(e.reason))?;
    let call_id = req.call_id().unwrap_or_default();
    if call_id.is_empty() || call_id.chars().any(char::is_whitespace) {
        return Err(bad("Malformed Call-ID"));
    }
    let cseq = req.cseq().map_err(|e| bad(e.reason))?;
    if cseq.method != req.method {
        // RFC 4475 §3.1.2.18: for a method we don't know, "not
        // implemented" is the more useful answer.
        if matches!(req.method, Method::Other(_)) {
            return Err(Rejection::new(501, "Not Implemented"));
        }
        return Err(bad("CSeq method does not match Request-Line"));
    }
    req.header_u32(&HeaderName::MaxForwards)
        .map_err(|e| bad(e.reason))?;
    req.header_u32(&HeaderName::Expires)
        .map_err(|e| bad(e.reason))?;
    for v in req.headers.get_all(&HeaderName::Contact) {
        if req.method == Method::Register && v.trim() == "*" {
            continue;
        }
        NameAddr::parse(v).map_err(|e| bad(format!("Malformed Contact: {e}")))?;
    }
    match req.uri.scheme {
        Scheme::Sip | Scheme::Sips | Scheme::Tel => {}
        Scheme::Other(_) => return Err(Rejection::new(416, "Unsupported URI Scheme")),
    }
    if req.uri.headers.is_some() {
        // RFC 4475 §3.1.2.11: never let `?Route=` become a header.
        return Err(bad("Request-URI must not contain headers"));
    }
    if req.method != Method::Ack && req.method != Method::Cancel {
        let unsupported: Vec<&str> = req
            .headers
            .get_all(&HeaderName::Require)
            .filter(|t| {
                !SUPPORTED_EXTENSIONS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(t))
            })
            .collect();
        if !unsupported.is_empty() {
            let mut r = Rejection::new(420, "Bad Extension");
            r.headers
                .push((HeaderName::Unsupported, unsupported.join(", ")));
            return Err(r);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse_datagram};

    fn check(text: &str) -> Result<(), Rejection> {
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => validate_request(&r),
            other => panic!("{other:?}"),
        }
    }

    const OK: &str = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";

    #[test]
    fn accepts_minimal() {
        assert_eq!(check(&format!("{OK}\r\n")), Ok(()));
    }

    #[test]
    fn rejections() {
        assert_eq!(
            check(&format!("{OK}Call-ID: d\r\n\r\n"))
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            check(&format!("{OK}Require: foo, bar\r\n\r\n"))
                .unwrap_err()
                .headers,
            vec![(HeaderName::Unsupported, "foo, bar".to_string())]
        );
        let r = check(&OK.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")).unwrap_err();
        assert_eq!(r.status, 400);
        assert!(r.reason.contains("CSeq"));
        assert_eq!(
            check(&format!("{}\r\n", OK.replace("sip:a@b SIP", "foo:bar SIP")))
                .unwrap_err()
                .status,
            416
        );
        assert_eq!(
            check(&format!(
                "{}\r\n",
                OK.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia")
            ))
            .unwrap_err()
            .status,
            505
        );
    }
}
