//! `name-addr / addr-spec` followed by header parameters: the grammar of
//! From, To, Contact, Route, Record-Route and P-Asserted-Identity.

use super::ParseError;
use super::params::{Params, is_token_char, parse_params, read_quoted};
use super::uri::Uri;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted and unescaped.
    pub display: Option<String>,
    pub uri: Uri,
    /// Header parameters (`;tag=`, `;expires=`, `;q=`…), not URI parameters.
    pub params: Params,
    /// Whether the URI was enclosed in `<>`.
    pub angle: bool,
}

impl NameAddr {
    pub fn new(display: Option<String>, uri: Uri) -> NameAddr {
        NameAddr {
            display,
            uri,
            params: Params::default(),
            angle: true,
        }
    }

    pub fn parse(value: &str) -> Result<NameAddr, ParseError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(ParseError::new("empty address"));
        }
        let (display, rest) = if value.starts_with('"') {
            let (d, rest) = read_quoted(value)?;
            (Some(d), rest.trim_start())
        } else if let Some(lt) = value.find('<') {
            // display-name = *(token LWS): RFC 4475 §3.1.2.15 requires
            // rejecting `Bell, Alexander <sip:...>`.
            let name = value[..lt].trim();
            if !name
                .split_whitespace()
                .all(|w| w.chars().all(is_token_char))
            {
                return Err(ParseError::new("invalid characters in display name"));
            }
            let d =
                (!name.is_empty()).then(|| name.split_whitespace().collect::<Vec<_>>().join(" "));
            (d, &value[lt..])
        } else {
            (None, value)
        };

        if let Some(inner) = rest.strip_prefix('<') {
            let end = inner
                .find('>')
                .ok_or_else(|| ParseError::new("missing '>' in address"))?;
            let uri_text = &inner[..end];
            if uri_text.starts_with(char::is_whitespace) || uri_text.ends_with(char::is_whitespace)
            {
                return Err(ParseError::new("white space inside <> of address"));
            }
            let uri = Uri::parse(uri_text)?;
            let params = parse_params(&inner[end + 1..])?;
            Ok(NameAddr {
                display,
                uri,
                params,
                angle: true,
            })
        } else {
            if display.is_some() {
                return Err(ParseError::new("display name without <URI>"));
            }
            // addr-spec form: the URI ends at the first ';' and what follows
            // are header parameters (RFC 3261 §20.10). A URI with headers
            // (`?`) or a ',' must be in <> (RFC 4475 §3.1.2.13).
            let (uri_text, params) = match rest.find(';') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            if uri_text.contains('?') || uri_text.contains(',') {
                return Err(ParseError::new(
                    "URI with '?' or ',' must be enclosed in <>",
                ));
            }
            Ok(NameAddr {
                display: None,
                uri: Uri::parse(uri_text.trim_end())?,
                params: parse_params(params)?,
                angle: false,
            })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if let Some(d) = &self.display {
            s.push('"');
            for c in d.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push_str("\" ");
        }
        s.push('<');
        s.push_str(self.uri.as_str());
        s.push('>');
        self.params.write_to(&mut s);
        f.write_str(&s)
    }
}

/// Reads the `tag` parameter of a From/To value without building the whole
/// address, for hot paths (transaction matching).
pub fn tag_of(value: &str) -> Option<String> {
    NameAddr::parse(value)
        .ok()
        .and_then(|n| n.tag().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("sip:user@example.com;tag=1").unwrap();
        assert_eq!(n.tag(), Some("1"));
        assert!(!n.angle);
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        let n = NameAddr::parse("<sip:u@h;unknownparam>").unwrap();
        assert!(n.uri.params.has("unknownparam"));
        assert!(n.params.0.is_empty());
        let n = NameAddr::parse("sip:u@h;unknownparam").unwrap();
        assert!(n.params.has("unknownparam"));
    }

    #[test]
    fn quoted_contact_params_from_phones() {
        let n = NameAddr::parse(
            r#"<sip:alice@10.0.0.5:5060;ob>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";expires=600"#,
        )
        .unwrap();
        assert_eq!(
            n.params.value("+sip.instance"),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert_eq!(n.params.value("expires"), Some("600"));
    }

    #[test]
    fn invalid_forms() {
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#).is_err());
    }
}
