//! Message → bytes, and responses built from requests (RFC 3261 §8.2.6).

use super::header::{HeaderName, Headers};
use super::{MessageExt, Request, Response};
use bytes::{BufMut, Bytes, BytesMut};

/// Default reason phrase for a status code (RFC 3261 §21 and later RFCs).
/// rsip's table prints CamelCase words ("RequestTerminated"), so we keep
/// our own.
pub fn reason_phrase(code: u16) -> String {
    let known = match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    };
    known.to_string()
}

fn write_headers(out: &mut BytesMut, headers: &Headers, body: &[u8]) {
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.put_slice(h.name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(h.value.as_bytes());
        out.put_slice(b"\r\n");
    }
    // Content-Length is always written and always true (RFC 3261 §20.14:
    // mandatory over streams; we write it over UDP as well).
    out.put_slice(b"Content-Length: ");
    out.put_slice(body.len().to_string().as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.put_slice(body);
}

impl Request {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(512 + self.body.len());
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.as_str().as_bytes());
        out.put_slice(b" SIP/2.0\r\n");
        write_headers(&mut out, &self.headers, &self.body);
        out.freeze()
    }
}

impl Request {
    /// Copies the headers a request derived from `self` must carry: the top
    /// Via only, From, Call-ID, Route set and Max-Forwards.
    fn derived(&self, method: super::Method, to: &str) -> Request {
        let mut headers = Headers::new();
        if let Some(v) = self.headers.get(&HeaderName::Via) {
            headers.push(HeaderName::Via, v);
        }
        for name in [HeaderName::From, HeaderName::CallId] {
            if let Some(v) = self.headers.get(&name) {
                headers.push(name, v);
            }
        }
        headers.push(HeaderName::To, to);
        let seq = self.cseq().map(|c| c.seq).unwrap_or(0);
        headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        for r in self.headers.get_all(&HeaderName::Route) {
            headers.push(HeaderName::Route, r);
        }
        headers.push(HeaderName::MaxForwards, "70");
        Request {
            method,
            uri: self.uri.clone(),
            version: "SIP/2.0".into(),
            headers,
            body: Bytes::new(),
        }
    }

    /// The ACK an INVITE client transaction sends for a 3xx–6xx
    /// (RFC 3261 §17.1.1.3): To from the response, everything else from
    /// the INVITE, same branch.
    pub fn ack_for_non_2xx(&self, resp: &Response) -> Request {
        let to = resp
            .headers
            .get(&HeaderName::To)
            .or_else(|| self.headers.get(&HeaderName::To))
            .unwrap_or_default()
            .to_string();
        self.derived(super::Method::Ack, &to)
    }

    /// CANCEL for this INVITE (RFC 3261 §9.1): same R-URI, Call-ID, To,
    /// From, CSeq number and top Via (hence branch).
    pub fn cancel(&self) -> Request {
        let to = self
            .headers
            .get(&HeaderName::To)
            .unwrap_or_default()
            .to_string();
        self.derived(super::Method::Cancel, &to)
    }
}

impl Response {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(512 + self.body.len());
        out.put_slice(b"SIP/2.0 ");
        out.put_slice(self.status.to_string().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.reason.as_bytes());
        out.put_slice(b"\r\n");
        write_headers(&mut out, &self.headers, &self.body);
        out.freeze()
    }

    /// A response to `headers` of a request (§8.2.6.2): Via list, From,
    /// Call-ID, CSeq copied; To copied with `to_tag` added when it has none.
    /// A 101–299 to an INVITE also gets every Record-Route of the request,
    /// in order (§12.1.1: a UAS MUST copy them into the responses that
    /// create the dialog; without them the caller's ACK and BYE go around
    /// the proxies that asked to stay in the path). Works from bare headers
    /// so that a 400 can answer a request that failed to parse as a whole.
    pub fn for_headers(headers: &Headers, status: u16, to_tag: Option<&str>) -> Response {
        let mut out = Headers::new();
        let record_route = (101..300).contains(&status)
            && headers
                .get(&HeaderName::CSeq)
                .and_then(|c| c.split_whitespace().nth(1))
                == Some("INVITE");
        for h in headers.iter() {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    out.push(h.name.clone(), h.value.clone())
                }
                HeaderName::RecordRoute if record_route => {
                    out.push(h.name.clone(), h.value.clone())
                }
                HeaderName::To => {
                    let mut v = h.value.clone();
                    if let Some(tag) = to_tag {
                        // §8.2.6.2: add a tag unless one is present (100
                        // Trying never gets one).
                        let has_tag = super::name_addr::tag_of(&v).is_some();
                        if !has_tag && status > 100 {
                            v.push_str(";tag=");
                            v.push_str(tag);
                        }
                    }
                    out.push(HeaderName::To, v);
                }
                _ => {}
            }
        }
        Response {
            status,
            reason: reason_phrase(status),
            headers: out,
            body: Bytes::new(),
        }
    }

    /// A response to `req`; see `for_headers`.
    pub fn to_request(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
        Response::for_headers(&req.headers, status, to_tag)
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Response {
        self.reason = sanitize_reason(&reason.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Response {
        self.headers.push(name, value);
        self
    }

    pub fn with_body(mut self, content_type: &str, body: Bytes) -> Response {
        self.headers.set(HeaderName::ContentType, content_type);
        self.body = body;
        self
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn to_tag(&self) -> Option<String> {
        self.addr_to()
            .ok()
            .and_then(|a| a.tag().map(str::to_string))
    }
}

/// Reason phrases carry text derived from input (a parse error names the
/// header): keep them on one printable line and bounded in length.
pub fn sanitize_reason(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse_datagram};

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(487), "Request Terminated");
        assert_eq!(reason_phrase(423), "Interval Too Brief");
        assert_eq!(reason_phrase(499), "Client Error");
    }

    #[test]
    fn response_copies_and_tags() {
        let m = parse_datagram(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g;branch=z9hG4bK2\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n",
        )
        .unwrap();
        let SipMessage::Request(r) = m else { panic!() };
        let resp = Response::to_request(&r, 200, Some("abc"));
        let text = String::from_utf8(resp.encode().to_vec()).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g;branch=z9hG4bK2\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>;tag=abc\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let trying = Response::to_request(&r, 100, Some("abc"));
        assert_eq!(trying.to_tag(), None);
    }

    /// RFC 3261 §12.1.1: 18x and 2xx to an INVITE carry the request's
    /// Record-Route values, all of them and in order (a comma-joined line
    /// counts as its values); 100, failures and other methods don't.
    #[test]
    fn dialog_creating_responses_echo_record_route() {
        let text = "INVITE sip:1000@gw SIP/2.0\r\nVia: SIP/2.0/UDP p:5060;branch=z9hG4bKp\r\nVia: SIP/2.0/TCP ua;branch=z9hG4bKu\r\nRecord-Route: <sip:p:5060;r2=on;lr;ftag=a1>\r\nRecord-Route: <sip:p:5060;transport=tcp;r2=on;lr;ftag=a1>, <sip:edge2;lr>\r\nFrom: <sip:x@y>;tag=a1\r\nTo: <sip:1000@gw>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: <sip:x@ua;transport=tcp>\r\nMax-Forwards: 69\r\n\r\n";
        let SipMessage::Request(r) = parse_datagram(text.as_bytes()).unwrap() else {
            panic!()
        };
        let want = vec![
            "<sip:p:5060;r2=on;lr;ftag=a1>",
            "<sip:p:5060;transport=tcp;r2=on;lr;ftag=a1>",
            "<sip:edge2;lr>",
        ];
        for status in [180, 183, 200] {
            let resp = Response::to_request(&r, status, Some("t"));
            let rr: Vec<&str> = resp.headers.get_all(&HeaderName::RecordRoute).collect();
            assert_eq!(rr, want, "{status}");
        }
        for status in [100, 486, 487, 503] {
            let resp = Response::to_request(&r, status, Some("t"));
            assert_eq!(resp.headers.count(&HeaderName::RecordRoute), 0, "{status}");
        }
        let options = text
            .replace("INVITE sip", "OPTIONS sip")
            .replace("1 INVITE", "1 OPTIONS");
        let SipMessage::Request(o) = parse_datagram(options.as_bytes()).unwrap() else {
            panic!()
        };
        let resp = Response::to_request(&o, 200, Some("t"));
        assert_eq!(resp.headers.count(&HeaderName::RecordRoute), 0);
    }
}
