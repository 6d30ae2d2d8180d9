//! What callgate supports, as advertised in OPTIONS answers and Allow
//! headers, and the checks of a request body against it (RFC 3261 §8.2.3,
//! §11).

use crate::sip::message::validate::Rejection;
use crate::sip::message::{HeaderName, MessageExt, Request, Response};

/// UPDATE (RFC 3311) is answered inside a dialog: hold and session
/// refreshes from peers that prefer it to re-INVITE.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE";
pub const ACCEPT: &str = "application/sdp";

pub fn with_allow(resp: Response) -> Response {
    resp.with_header(HeaderName::Allow, ALLOW)
}

pub fn options_response(req: &Request, tag: &str) -> Response {
    with_allow(Response::to_request(req, 200, Some(tag)))
        .with_header(HeaderName::Accept, ACCEPT)
        .with_header(HeaderName::AcceptEncoding, "identity")
        .with_header(HeaderName::AcceptLanguage, "en")
        .with_header(HeaderName::Supported, "path")
}

/// An INVITE's body must be SDP we can read, and whatever it accepts in
/// return must include SDP (RFC 4475 §3.3.6, §3.3.15).
pub fn check_offer_content(req: &Request) -> Result<(), Rejection> {
    if !req.body.is_empty() {
        match req.content_type() {
            Some(t) if t == ACCEPT => {}
            _ => {
                let mut r = Rejection::new(415, "Unsupported Media Type");
                r.headers.push((HeaderName::Accept, ACCEPT.into()));
                return Err(r);
            }
        }
        if let Some(enc) = req.header(&HeaderName::ContentEncoding)
            && !enc.trim().eq_ignore_ascii_case("identity")
        {
            let mut r = Rejection::new(415, "Unsupported Content-Encoding");
            r.headers
                .push((HeaderName::AcceptEncoding, "identity".into()));
            return Err(r);
        }
    }
    if let Some(accept) = req.header(&HeaderName::Accept) {
        let ok = accept.split(',').any(|t| {
            let t = t
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            t == ACCEPT || t == "application/*" || t == "*/*"
        });
        if !ok {
            let mut r = Rejection::new(406, "Not Acceptable");
            r.headers.push((
                HeaderName::Warning,
                "399 callgate \"only application/sdp bodies are produced\"".into(),
            ));
            return Err(r);
        }
    }
    Ok(())
}
