//! Bytes → message.
//!
//! Two entry points: `parse_datagram` for UDP, where the datagram bounds the
//! message, and `parse_stream_message` for a frame already cut by
//! `framing::next_frame` on TCP. Both accept what RFC 3261 and RFC 4475 call
//! well formed (folding, compact names, LWS around colons, bare LF line
//! ends) and refuse the rest with a reason fit for a 400 reason phrase.

use super::header::{HeaderName, Headers};
use super::method::Method;
use super::params::{is_token, split_top_level_commas};
use super::uri::Uri;
use super::{Request, Response, SipMessage};
use bytes::Bytes;

/// A message that could not be turned into a `SipMessage`.
#[derive(Debug, Clone)]
pub struct BadMessage {
    pub reason: String,
    /// Headers of what looked like a request, when they could be read:
    /// enough to build a 400 (Via, From, To, Call-ID, CSeq). `None` means no
    /// response is possible and the message is dropped.
    pub request_headers: Option<Headers>,
}

impl BadMessage {
    fn new(reason: impl Into<String>, request_headers: Option<Headers>) -> Self {
        BadMessage {
            reason: reason.into(),
            request_headers,
        }
    }
}

/// Where the header section ends: index of the first byte of the body, and
/// the length of the header section proper (without the empty line).
pub(crate) fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    find_header_end_from(buf, 0)
}

/// Like `find_header_end`, for a buffer known to hold no complete
/// terminator that starts before `from`.
pub(crate) fn find_header_end_from(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(off) = buf
        .get(i..)
        .and_then(|b| b.iter().position(|&c| c == b'\n'))
    {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some((nl + 2, nl + 1)),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some((nl + 3, nl + 1)),
            _ => i = nl + 1,
        }
    }
    None
}

/// Leading CRLFs before a start line are ignored (RFC 3261 §7.5).
pub(crate) fn skip_leading_newlines(buf: &[u8]) -> &[u8] {
    let n = buf
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(buf.len());
    buf.get(n..).unwrap_or_default()
}

struct HeaderSection {
    start_line: String,
    headers: Headers,
}

/// Splits the header section into the start line and unfolded, canonical
/// headers. Errors here mean the structure itself is broken.
fn parse_header_section(text: &str) -> Result<HeaderSection, (String, Option<Headers>)> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) {
            // Folded continuation (RFC 3261 §7.3.1): replace CRLF+WS by one SP.
            let can_fold = lines.len() > 1;
            match lines.last_mut() {
                Some(prev) if can_fold => {
                    prev.push(' ');
                    prev.push_str(line.trim_start());
                }
                _ => return Err(("Malformed start line: leading white space".into(), None)),
            }
        } else if !line.is_empty() {
            lines.push(line.to_string());
        }
    }
    let mut it = lines.into_iter();
    let start_line = it.next().ok_or(("empty message".to_string(), None))?;
    let mut headers = Headers::new();
    let mut first_error: Option<String> = None;
    for line in it {
        let Some((name, value)) = line.split_once(':') else {
            first_error.get_or_insert_with(|| "header line without ':'".into());
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            first_error.get_or_insert_with(|| format!("invalid header name {name:?}"));
            continue;
        }
        let name = HeaderName::from_wire(name);
        let value = value.trim_matches([' ', '\t']);
        if name.is_comma_list() {
            match split_top_level_commas(value) {
                Ok(parts) => {
                    for p in parts {
                        headers.push(name.clone(), p);
                    }
                }
                // Keep the raw value: whoever reads this header will report it.
                Err(_) => headers.push(name, value),
            }
        } else {
            headers.push(name, value);
        }
    }
    if let Some(e) = first_error {
        return Err((e, Some(headers)));
    }
    Ok(HeaderSection {
        start_line,
        headers,
    })
}

/// Content-Length as a single non-negative number, if present.
fn content_length(headers: &Headers) -> Result<Option<usize>, String> {
    let mut values = headers.get_all(&HeaderName::ContentLength);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // RFC 4475 §3.3.9: framing is ambiguous, refuse.
        return Err("multiple Content-Length headers".into());
    }
    let v = first.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("Malformed Content-Length".into());
    }
    v.parse::<usize>()
        .map(Some)
        .map_err(|_| "Content-Length out of range".into())
}

// Built and consumed within one function call: boxing the URI would only
// add an allocation.
#[allow(clippy::large_enum_variant)]
enum StartLine {
    Request {
        method: Method,
        uri: Uri,
        version: String,
    },
    Response {
        status: u16,
        reason: String,
    },
}

fn is_sip_version(v: &str) -> bool {
    // SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, case-insensitive.
    if !v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("SIP/")) {
        return false;
    }
    let Some((a, b)) = v.get(4..).and_then(|n| n.split_once('.')) else {
        return false;
    };
    !a.is_empty()
        && !b.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
}

fn parse_start_line(line: &str) -> Result<StartLine, String> {
    if line.len() >= 4 && line.is_char_boundary(4) && line[..4].eq_ignore_ascii_case("SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().ok_or("Malformed status line")?;
        let reason = parts
            .next()
            .ok_or("Malformed status line: no SP after code")?;
        if !is_sip_version(version) {
            return Err("Malformed status line version".into());
        }
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("Malformed status code".into());
        }
        let status: u16 = code.parse().map_err(|_| "Malformed status code")?;
        if !(100..=699).contains(&status) {
            return Err("status code out of range".into());
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single
    // spaces (RFC 4475 §3.1.2.9/10 allow rejecting extra or trailing SP).
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err("Malformed Request-Line".into());
    };
    if !is_sip_version(version) {
        return Err("Malformed Request-Line: bad SIP-Version".into());
    }
    let method = Method::parse(method).map_err(|e| format!("Malformed Request-Line: {e}"))?;
    let uri = Uri::parse(uri).map_err(|e| format!("Malformed Request-URI: {e}"))?;
    Ok(StartLine::Request {
        method,
        uri,
        version: version.to_string(),
    })
}

fn looks_like_response(buf: &[u8]) -> bool {
    buf.get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

fn parse_common(buf: &[u8], datagram: bool) -> Result<SipMessage, BadMessage> {
    let buf = skip_leading_newlines(buf);
    if buf.is_empty() {
        return Err(BadMessage::new("empty message", None));
    }
    let is_response = looks_like_response(buf);
    // Over UDP the datagram may end without the empty line (RFC 4475
    // §3.1.2.15's baddn.dat does): then everything is header section.
    let (body_start, header_len) = match find_header_end(buf) {
        Some(x) => x,
        None if datagram => (buf.len(), buf.len()),
        None => return Err(BadMessage::new("incomplete header section", None)),
    };
    let head = buf.get(..header_len).unwrap_or_default();
    let text = match std::str::from_utf8(head) {
        Ok(t) => t.to_string(),
        Err(_) => {
            // Read what we can so that a 400 can still be addressed.
            let lossy = String::from_utf8_lossy(head).into_owned();
            let hdrs = parse_header_section(&lossy).ok().map(|s| s.headers);
            return Err(BadMessage::new(
                "header section is not valid UTF-8",
                hdrs.filter(|_| !is_response),
            ));
        }
    };
    let section = parse_header_section(&text)
        .map_err(|(reason, hdrs)| BadMessage::new(reason, hdrs.filter(|_| !is_response)))?;
    let req_headers = || (!is_response).then(|| section.headers.clone());

    let available = buf.get(body_start..).unwrap_or_default();
    let body = match content_length(&section.headers) {
        Err(reason) => return Err(BadMessage::new(reason, req_headers())),
        Ok(Some(len)) => {
            if len > available.len() {
                return Err(BadMessage::new(
                    "Content-Length larger than message",
                    req_headers(),
                ));
            }
            // Extra octets after the body are ignored (RFC 3261 §18.3).
            Bytes::copy_from_slice(available.get(..len).unwrap_or_default())
        }
        // No Content-Length: a datagram's body runs to its end; on a stream
        // the framer treated it as 0 (RFC 3261 §18.3, §20.14).
        Ok(None) if datagram => Bytes::copy_from_slice(available),
        Ok(None) => Bytes::new(),
    };

    match parse_start_line(&section.start_line) {
        Ok(StartLine::Request {
            method,
            uri,
            version,
        }) => Ok(SipMessage::Request(Request {
            method,
            uri,
            version,
            headers: section.headers,
            body,
        })),
        Ok(StartLine::Response { status, reason }) => Ok(SipMessage::Response(Response {
            status,
            reason,
            headers: section.headers,
            body,
        })),
        Err(reason) => Err(BadMessage::new(reason, req_headers())),
    }
}

/// Parses one UDP datagram.
pub fn parse_datagram(buf: &[u8]) -> Result<SipMessage, BadMessage> {
    parse_common(buf, true)
}

/// Parses one message cut from a stream by `framing::next_frame`.
pub fn parse_stream_message(buf: &[u8]) -> Result<SipMessage, BadMessage> {
    parse_common(buf, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::MessageExt;

    fn req(text: &str) -> Request {
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn compact_folded_lf_only() {
        let r = req(
            "OPTIONS sip:a@b SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bK1,\n SIP/2.0/TCP g;branch=z9hG4bK2\ni: abc\nf: <sip:x@y>;tag=1\nt: <sip:a@b>\nCSeq: 1\n  OPTIONS\nl: 0\n\n",
        );
        assert_eq!(r.headers.count(&HeaderName::Via), 2);
        assert_eq!(r.call_id(), Some("abc"));
        assert_eq!(r.cseq().unwrap().seq, 1);
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK1"));
    }

    #[test]
    fn content_length_rules() {
        let base = "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n";
        let r = req(&format!("{base}Content-Length: 3\r\n\r\nabcdef"));
        assert_eq!(&r.body[..], b"abc");
        assert!(parse_datagram(format!("{base}Content-Length: 9\r\n\r\nabc").as_bytes()).is_err());
        assert!(parse_datagram(format!("{base}Content-Length: -1\r\n\r\nabc").as_bytes()).is_err());
        let e = parse_datagram(format!("{base}Content-Length: 3\r\nl: 3\r\n\r\nabc").as_bytes())
            .unwrap_err();
        assert!(e.request_headers.is_some());
        let r = req(&format!("{base}\r\nxyz"));
        assert_eq!(&r.body[..], b"xyz");
    }

    #[test]
    fn binary_body_is_kept() {
        let mut m = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 4\r\n\r\n".to_vec();
        m.extend_from_slice(&[0, 1, 0xff, 0]);
        let r = match parse_datagram(&m) {
            Ok(SipMessage::Request(r)) => r,
            _ => panic!(),
        };
        assert_eq!(&r.body[..], &[0, 1, 0xff, 0]);
    }

    #[test]
    fn start_lines() {
        assert!(parse_datagram(b"INVITE  sip:a@b SIP/2.0\r\n\r\n").is_err());
        assert!(parse_datagram(b"INVITE sip:a@b SIP/2.0 \r\n\r\n").is_err());
        assert!(parse_datagram(b"SIP/2.0 4294967301 Big\r\n\r\n").is_err());
        match parse_datagram(b"SIP/2.0 100 \r\n\r\n") {
            Ok(SipMessage::Response(r)) => assert_eq!((r.status, r.reason.as_str()), (100, "")),
            other => panic!("{other:?}"),
        }
        match parse_datagram(b"INVITE sip:a@b SIP/7.0\r\n\r\n") {
            Ok(SipMessage::Request(r)) => assert_eq!(r.version, "SIP/7.0"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            &b""[..],
            b"\r\n\r\n",
            b"\xff\xfe",
            b"SIP/",
            b"A",
            b" x\r\n",
            b"INVITE sip:a@b SIP/2.0\r\n:\r\n\r\n",
        ] {
            let _ = parse_datagram(s);
            let _ = parse_stream_message(s);
        }
    }
}
