//! The Via header (RFC 3261 §20.42, §18.2.2) with `received` and `rport`
//! (RFC 3581).

use super::ParseError;
use super::params::{Params, is_token, parse_params};
use super::uri::{Host, split_host_port};
use std::fmt;

/// The branch prefix that marks an RFC 3261 transaction id (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-cased transport: UDP, TCP, TLS, SCTP, WS…
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse(value: &str) -> Result<Via, ParseError> {
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport,
        // with LWS allowed around each SLASH (RFC 4475 §3.1.1.1).
        let mut parts = value.splitn(3, '/');
        let name = parts.next().unwrap_or_default().trim();
        let version = parts
            .next()
            .ok_or_else(|| ParseError::new("Via without protocol version"))?
            .trim();
        let rest = parts
            .next()
            .ok_or_else(|| ParseError::new("Via without transport"))?
            .trim_start();
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(ParseError::new("Via protocol is not SIP/2.0"));
        }
        let transport_len = rest
            .find(|c: char| c.is_whitespace())
            .ok_or_else(|| ParseError::new("Via without sent-by"))?;
        let transport = &rest[..transport_len];
        if !is_token(transport) {
            return Err(ParseError::new("invalid Via transport"));
        }
        let rest = rest[transport_len..].trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        // LWS is allowed around the ':' of sent-by only as SWS; squeeze it.
        let sent_by: String = sent_by.split_whitespace().collect();
        let (host, port) = split_host_port(&sent_by)?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params: parse_params(params)?,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// True when the branch carries the RFC 3261 magic cookie and something
    /// after it (RFC 4475 §3.2.1: `z9hG4bK` alone is not a usable id).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// `sent-by` as `host[:port]`, the text used in transaction matching.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.to_string(),
        }
    }

    pub fn is_reliable(&self) -> bool {
        !self.transport.eq_ignore_ascii_case("UDP")
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = format!("SIP/2.0/{} {}", self.transport, self.sent_by());
        self.params.write_to(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tortuous_via() {
        let v = Via::parse("SIP  /   2.0 /UDP     192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert!(v.has_rfc3261_branch());
    }

    #[test]
    fn ipv6_received() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
        )
        .unwrap();
        assert_eq!(v.params.value("received"), Some("[2001:db8::9:255]"));
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1]:5070;received=2001:db8::9:255;rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.params.get("rport"), Some(None));
    }

    #[test]
    fn bad_vias() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
    }
}
