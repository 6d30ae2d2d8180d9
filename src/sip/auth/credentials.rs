//! Parsing `Authorization: Digest k=v, k="v", ...` (RFC 3261 §25.1
//! `credentials`, RFC 7616 §3.4).

use crate::sip::message::ParseError;
use crate::sip::message::params::{is_token_char, read_quoted};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
}

/// Splits `Scheme k=v, k="v"` into the scheme and its parameters.
pub fn parse_auth_params(value: &str) -> Result<(String, Vec<(String, String)>), ParseError> {
    let value = value.trim();
    let (scheme, mut rest) = match value.find(|c: char| c.is_whitespace()) {
        Some(i) => (&value[..i], value[i..].trim_start()),
        None => (value, ""),
    };
    let mut params = Vec::new();
    while !rest.is_empty() {
        let name_len = rest
            .char_indices()
            .find(|(_, c)| !is_token_char(*c))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        if name_len == 0 {
            return Err(ParseError::new("bad auth parameter name"));
        }
        let name = rest[..name_len].to_ascii_lowercase();
        rest = rest[name_len..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| ParseError::new("auth parameter without '='"))?
            .trim_start();
        let v;
        if rest.starts_with('"') {
            let (q, r) = read_quoted(rest)?;
            v = q;
            rest = r;
        } else {
            let len = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
            v = rest[..len].to_string();
            rest = &rest[len..];
        }
        params.push((name, v));
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(ParseError::new("expected ',' between auth parameters"));
        }
    }
    Ok((scheme.to_string(), params))
}

impl Credentials {
    /// `None` when the scheme is not Digest (RFC 4475 §3.3.7: such
    /// credentials are ignored and the client is challenged).
    pub fn parse(value: &str) -> Result<Option<Credentials>, ParseError> {
        let (scheme, params) = parse_auth_params(value)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Ok(None);
        }
        let mut c = Credentials::default();
        for (k, v) in params {
            match k.as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v,
                "algorithm" => c.algorithm = Some(v),
                "cnonce" => c.cnonce = Some(v),
                "opaque" => c.opaque = Some(v),
                "qop" => c.qop = Some(v),
                "nc" => c.nc = Some(v),
                _ => {}
            }
        }
        if c.username.is_empty() || c.nonce.is_empty() || c.response.is_empty() || c.uri.is_empty()
        {
            return Err(ParseError::new(
                "Digest credentials lack a required parameter",
            ));
        }
        Ok(Some(c))
    }

    /// The nonce count as a number. RFC 7616 §3.4: 8 hex digits.
    pub fn nonce_count(&self) -> Option<u32> {
        let nc = self.nc.as_deref()?;
        if nc.len() != 8 {
            return None;
        }
        u32::from_str_radix(nc, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sipp_style_credentials() {
        let c = Credentials::parse(r#"Digest username="alice",realm="callgate",cnonce="6b8b4567",nc=0000000a,qop=auth,uri="sip:127.0.0.1:5060",nonce="abc",response="d41d8cd98f00b204e9800998ecf8427e",algorithm=MD5"#)
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.nonce_count(), Some(10), "nc is hexadecimal");
        assert_eq!(c.qop.as_deref(), Some("auth"));
    }

    #[test]
    fn other_schemes_and_garbage() {
        assert_eq!(
            Credentials::parse("NoOneKnowsThisScheme opaque-data=here").unwrap(),
            None
        );
        assert!(Credentials::parse("Digest username").is_err());
        assert!(Credentials::parse("Digest username=\"a\"").is_err());
        assert!(Credentials::parse("Digest =x").is_err());
    }
}
