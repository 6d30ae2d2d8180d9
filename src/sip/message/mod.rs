//! The SIP message layer: parsing, typed header access, building and
//! serialising (RFC 3261 §7, §20, §25).
//!
//! Why our own parser: rsip 0.4 (the crate this project started from)
//! rejects 21 of the 61 messages of RFC 4475/5118, among them valid ones
//! (`wsinv`, `intmeth`, `esc01`, `longreq`, `semiuri`, every IPv6 request
//! URI) and unknown methods that must get 501; it also ignores compact header
//! names, folded lines, comma-joined Via and Content-Length. This module is
//! the single place that turns bytes into messages and back; nothing else in
//! the code parses SIP text. rsip is kept as a differential oracle in tests
//! (`tests/corpus.rs`): where both parsers accept a message they must agree.

pub mod build;
pub mod cseq;
pub mod framing;
pub mod header;
pub mod method;
pub mod name_addr;
pub mod params;
pub mod parse;
pub mod uri;
pub mod validate;
pub mod via;

pub use build::reason_phrase;
pub use cseq::CSeq;
pub use header::{Header, HeaderName, Headers};
pub use method::Method;
pub use name_addr::NameAddr;
pub use params::{Param, Params};
pub use parse::{BadMessage, parse_datagram, parse_stream_message};
pub use uri::{Host, Scheme, Uri};
pub use via::Via;

use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;

/// Why a piece of a message could not be parsed. The text is short and
/// suitable for a response reason phrase ("Malformed Via: invalid port").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    pub reason: Cow<'static, str>,
}

impl ParseError {
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        ParseError {
            reason: reason.into(),
        }
    }

    /// Prefixes the reason with what was being parsed.
    pub fn context(self, what: &str) -> Self {
        ParseError::new(format!("{what}: {}", self.reason))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    /// Protocol version as received; anything but `SIP/2.0` is answered 505.
    pub version: String,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

impl SipMessage {
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    pub fn encode(&self) -> Bytes {
        match self {
            SipMessage::Request(r) => r.encode(),
            SipMessage::Response(r) => r.encode(),
        }
    }
}

/// Typed access shared by requests and responses. Each accessor parses on
/// demand: most messages only ever need three or four headers.
pub trait MessageExt {
    fn headers(&self) -> &Headers;
    fn body(&self) -> &Bytes;

    fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers().get(name)
    }

    fn call_id(&self) -> Option<&str> {
        self.headers().get(&HeaderName::CallId)
    }

    fn cseq(&self) -> Result<CSeq, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::CSeq)
            .ok_or_else(|| ParseError::new("missing CSeq"))?;
        CSeq::parse(v).map_err(|e| e.context("Malformed CSeq"))
    }

    fn addr_from(&self) -> Result<NameAddr, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::From)
            .ok_or_else(|| ParseError::new("missing From"))?;
        NameAddr::parse(v).map_err(|e| e.context("Malformed From"))
    }

    fn addr_to(&self) -> Result<NameAddr, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::To)
            .ok_or_else(|| ParseError::new("missing To"))?;
        NameAddr::parse(v).map_err(|e| e.context("Malformed To"))
    }

    fn top_via(&self) -> Result<Via, ParseError> {
        let v = self
            .headers()
            .get(&HeaderName::Via)
            .ok_or_else(|| ParseError::new("missing Via"))?;
        Via::parse(v).map_err(|e| e.context("Malformed Via"))
    }

    /// The top Via's branch: what transactions are matched on (§17.1.3).
    fn top_branch(&self) -> Option<String> {
        self.top_via().ok()?.branch().map(str::to_string)
    }

    fn contacts(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.headers()
            .get_all(&HeaderName::Contact)
            .map(|v| NameAddr::parse(v).map_err(|e| e.context("Malformed Contact")))
            .collect()
    }

    /// A header holding a non-negative integer (Expires, Max-Forwards…).
    /// Over-large values saturate: RFC 4475 §3.1.2.4 allows tolerating them.
    fn header_u32(&self, name: &HeaderName) -> Result<Option<u32>, ParseError> {
        match self.headers().get(name) {
            None => Ok(None),
            Some(v) => parse_u32_saturating(v)
                .map(Some)
                .ok_or_else(|| ParseError::new(format!("Malformed {name}"))),
        }
    }

    fn content_type(&self) -> Option<String> {
        self.headers().get(&HeaderName::ContentType).map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// Digits only; values above u32::MAX saturate.
pub fn parse_u32_saturating(v: &str) -> Option<u32> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u32>().unwrap_or(u32::MAX))
}

impl MessageExt for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn body(&self) -> &Bytes {
        &self.body
    }
}

impl MessageExt for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn body(&self) -> &Bytes {
        &self.body
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}
