//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), with IPv6 references
//! (RFC 5118). The text as received is kept verbatim in `raw`: a registrar
//! must hand back a Contact exactly as the phone sent it, and we never print
//! a URI from its parts unless we built it ourselves.

use super::ParseError;
use super::params::{Params, parse_params};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Domain(String),
    Ip(IpAddr),
}

impl Host {
    pub fn parse(s: &str) -> Result<Host, ParseError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| ParseError::new("unterminated IPv6 reference"))?;
            let ip: Ipv6Addr = inner
                .parse()
                .map_err(|_| ParseError::new("invalid IPv6 address"))?;
            return Ok(Host::Ip(IpAddr::V6(ip)));
        }
        if s.is_empty() {
            return Err(ParseError::new("empty host"));
        }
        if let Ok(ip) = s.parse::<Ipv4Addr>() {
            return Ok(Host::Ip(IpAddr::V4(ip)));
        }
        // hostname = *( domainlabel "." ) toplabel [ "." ] (RFC 3261 §25.1);
        // we accept alphanumerics, '-', '.' and '_' (seen in the wild).
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            Ok(Host::Domain(s.to_string()))
        } else {
            Err(ParseError::new("invalid host"))
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Splits `host[:port]` where host may be an IPv6 reference.
pub fn split_host_port(s: &str) -> Result<(Host, Option<u16>), ParseError> {
    let (host, port) = if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or_else(|| ParseError::new("unterminated IPv6 reference"))?;
        let (h, rest) = s.split_at(end + 1);
        match rest {
            "" => (h, None),
            _ => (
                h,
                Some(
                    rest.strip_prefix(':')
                        .ok_or_else(|| ParseError::new("garbage after IPv6 reference"))?,
                ),
            ),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| ParseError::new("invalid port"))?,
        ),
    };
    Ok((Host::parse(host)?, port))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// User part (SIP) or the number (tel), still %-escaped as received.
    pub user: Option<String>,
    pub password: Option<String>,
    /// `None` for tel and unknown schemes.
    pub host: Option<Host>,
    pub port: Option<u16>,
    pub params: Params,
    /// The `?h=v&...` part, without the `?`.
    pub headers: Option<String>,
    raw: String,
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let (scheme_str, rest) = s
            .split_once(':')
            .ok_or_else(|| ParseError::new("URI has no scheme"))?;
        let valid_scheme = scheme_str
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme_str
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !valid_scheme {
            return Err(ParseError::new("invalid URI scheme"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParseError::new("white space in URI"));
        }
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_str.to_ascii_lowercase())
        };
        let mut uri = Uri {
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::default(),
            headers: None,
            raw: s.to_string(),
        };
        match uri.scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(rest)?,
            Scheme::Tel => uri.parse_tel(rest)?,
            Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err(ParseError::new("empty URI"));
                }
            }
        }
        Ok(uri)
    }

    fn parse_sip(&mut self, rest: &str) -> Result<(), ParseError> {
        if rest.matches('@').count() > 1 {
            return Err(ParseError::new("more than one '@' in SIP URI"));
        }
        let (userinfo, after_user) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p.to_string())),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err(ParseError::new("empty user in SIP URI"));
            }
            check_escapes(user)?;
            self.user = Some(user.to_string());
            self.password = password;
        }
        let (before_headers, headers) = match after_user.split_once('?') {
            Some((a, h)) => (a, Some(h.to_string())),
            None => (after_user, None),
        };
        let (hostport, params) = match before_headers.find(';') {
            Some(i) => before_headers.split_at(i),
            None => (before_headers, ""),
        };
        let (host, port) = split_host_port(hostport)?;
        self.host = Some(host);
        self.port = port;
        self.params = parse_params(params)?;
        self.headers = headers;
        Ok(())
    }

    fn parse_tel(&mut self, rest: &str) -> Result<(), ParseError> {
        let (number, params) = match rest.find(';') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let ok = !number.is_empty()
            && number
                .chars()
                .all(|c| c.is_ascii_hexdigit() || "+-.()*#".contains(c));
        if !ok {
            return Err(ParseError::new("invalid tel URI number"));
        }
        self.user = Some(number.to_string());
        self.params = parse_params(params)?;
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    /// The user part with %-escapes decoded (one level only: RFC 4475
    /// §3.1.1.3, `%2541` is `%41`, not `A`).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(unescape)
    }

    /// The `transport` URI parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params
            .value("transport")
            .map(|t| t.to_ascii_lowercase())
    }

    /// URI equivalence for binding and dialog matching, after RFC 3261
    /// §19.1.4: scheme, user and password exact (after unescaping), host
    /// case-insensitive, ports equal (absent ≠ 5060), and the parameters that
    /// must match when present on either side.
    pub fn equivalent(&self, other: &Uri) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        if !self.is_sip() {
            return self.raw.eq_ignore_ascii_case(&other.raw);
        }
        let host_eq = match (&self.host, &other.host) {
            (Some(Host::Domain(a)), Some(Host::Domain(b))) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        };
        if !host_eq
            || self.port != other.port
            || self.user_unescaped() != other.user_unescaped()
            || self.password != other.password
        {
            return false;
        }
        for name in ["transport", "user", "ttl", "method", "maddr"] {
            let a = self.params.value(name).map(str::to_ascii_lowercase);
            let b = other.params.value(name).map(str::to_ascii_lowercase);
            if a != b {
                return false;
            }
        }
        true
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn check_escapes(s: &str) -> Result<(), ParseError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(ParseError::new("invalid %-escape in URI"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Decodes `%HH` escapes once. Invalid escapes are kept literally.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |x: Option<&u8>| x.and_then(|c| (*c as char).to_digit(16));
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (hex(b.get(i + 1)), hex(b.get(i + 2)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:pw@Example.COM:5070;transport=TCP;lr?Subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, Some(Host::Domain("Example.COM".into())));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.params.has("lr"));
        assert_eq!(u.headers.as_deref(), Some("Subject=x"));
        // printed exactly as received
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@Example.COM:5070;transport=TCP;lr?Subject=x"
        );
    }

    #[test]
    fn ipv6_references() {
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.host, Some(Host::Ip("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port, Some(5070));
        // RFC 5118 §4.3: the port is inside the brackets, so it is an address.
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(u.port, None);
        // RFC 5118 §4.2: no brackets → not a valid URI.
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        let u = Uri::parse("sip:user@[::ffff:192.0.2.10]:19823").unwrap();
        assert_eq!(u.port, Some(19823));
    }

    #[test]
    fn semicolon_in_user_part() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, Some(Host::Domain("example.com".into())));
    }

    #[test]
    fn tel_and_other_schemes() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user.as_deref(), Some("+1-201-555-0123"));
        let u = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap();
        assert_eq!(u.scheme, Scheme::Other("nobodyknowsthisscheme".into()));
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b c").is_err());
    }

    #[test]
    fn escapes_decode_once() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user_unescaped().as_deref(), Some("sips:user@example.com"));
        assert_eq!(unescape("%2541"), "%41");
        assert!(Uri::parse("sip:a%4@b").is_err());
    }

    #[test]
    fn equivalence_rules() {
        let a = Uri::parse("sip:%61lice@ATLANTA.com;transport=TCP").unwrap();
        let b = Uri::parse("sip:alice@atlanta.com;transport=tcp").unwrap();
        assert!(a.equivalent(&b));
        let c = Uri::parse("sip:alice@atlanta.com:5060;transport=tcp").unwrap();
        assert!(!a.equivalent(&c));
        let d = Uri::parse("sip:ALICE@atlanta.com;transport=tcp").unwrap();
        assert!(!a.equivalent(&d));
    }
}
