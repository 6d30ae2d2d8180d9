//! Lexical helpers shared by the header-value grammars: tokens, quoted
//! strings, `;name=value` parameter lists and top-level comma splitting.
//!
//! RFC 3261 §25.1 allows linear white space around `;`, `=`, `,`, `/` and
//! `:` (SWS/LWS). Header values reach us already unfolded, so every rule here
//! only has to skip spaces and tabs.

use super::ParseError;

/// `token` characters (RFC 3261 §25.1).
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Characters allowed in a parameter value that is not quoted. RFC 3261's
/// `gen-value` is `token / host / quoted-string`; hosts add `[`, `]` and `:`
/// (IPv6 `received=` values, RFC 5118 §4.5).
fn is_value_char(c: char) -> bool {
    is_token_char(c) || matches!(c, '[' | ']' | ':')
}

/// Splits on commas that are not inside a quoted string or `<...>`.
/// Returns an error for unbalanced quotes or brackets and for empty
/// elements (`a,,b` is not a list of three values).
pub fn split_top_level_commas(value: &str) -> Result<Vec<&str>, ParseError> {
    let mut parts = Vec::new();
    let mut start = 0usize;
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' if !in_angle => in_angle = true,
            '>' if in_angle => in_angle = false,
            ',' if !in_angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err(ParseError::new("unterminated quoted string"));
    }
    if in_angle {
        return Err(ParseError::new("unterminated <"));
    }
    parts.push(value[start..].trim());
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ParseError::new("empty element in comma-separated list"));
    }
    Ok(parts)
}

/// Reads a quoted string starting at `s[0] == '"'`. Returns the unescaped
/// content and the rest of the input after the closing quote.
pub fn read_quoted(s: &str) -> Result<(String, &str), ParseError> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => return Err(ParseError::new("expected quoted string")),
    }
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            // quoted-pair may escape any char but CR/LF (RFC 3261 §25.1).
            if c == '\r' || c == '\n' {
                return Err(ParseError::new("CR or LF in quoted-pair"));
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok((out, &s[i + 1..]));
        } else {
            out.push(c);
        }
    }
    Err(ParseError::new("unterminated quoted string"))
}

/// One `;name[=value]` parameter. Values keep their quotes off; `quoted`
/// records whether they had them so that printing is faithful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
    pub quoted: bool,
}

/// An ordered parameter list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    /// Value of the first parameter named `name` (case-insensitive names).
    /// `Some(None)` means the parameter is present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    pub fn set(&mut self, name: &str, value: Option<String>) {
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            p.value = value;
            p.quoted = false;
        } else {
            self.0.push(Param {
                name: name.to_string(),
                value,
                quoted: false,
            });
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    /// Prints `;a=b;c;d="e"`.
    pub fn write_to(&self, out: &mut String) {
        for p in &self.0 {
            out.push(';');
            out.push_str(&p.name);
            if let Some(v) = &p.value {
                out.push('=');
                if p.quoted {
                    out.push('"');
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(v);
                }
            }
        }
    }
}

/// Parses `*( SEMI generic-param )` where `s` starts at the first `;` (or
/// is empty). Tolerates LWS around `;` and `=` as RFC 3261 requires.
pub fn parse_params(s: &str) -> Result<Params, ParseError> {
    let mut params = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or_else(|| ParseError::new("expected ';' before parameter"))?
            .trim_start();
        let name_len = rest
            .char_indices()
            .find(|(_, c)| !is_token_char(*c))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        if name_len == 0 {
            return Err(ParseError::new("empty parameter name"));
        }
        let name = rest[..name_len].to_string();
        rest = rest[name_len..].trim_start();
        let mut value = None;
        let mut quoted = false;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            if after_eq.starts_with('"') {
                let (v, r) = read_quoted(after_eq)?;
                value = Some(v);
                quoted = true;
                rest = r.trim_start();
            } else {
                let len = after_eq
                    .char_indices()
                    .find(|(_, c)| !is_value_char(*c))
                    .map(|(i, _)| i)
                    .unwrap_or(after_eq.len());
                if len == 0 {
                    return Err(ParseError::new("empty parameter value"));
                }
                value = Some(after_eq[..len].to_string());
                rest = after_eq[len..].trim_start();
            }
        }
        params.push(Param {
            name,
            value,
            quoted,
        });
    }
    Ok(Params(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lists_respecting_quotes_and_brackets() {
        let parts =
            split_top_level_commas(r#""a, b" <sip:x@y;p=1,2>;q=1, <sip:z@w>"#).unwrap_or_default();
        assert_eq!(parts, vec![r#""a, b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>"]);
        assert!(split_top_level_commas("a,,b").is_err());
        assert!(split_top_level_commas("\"open, x").is_err());
    }

    #[test]
    fn params_with_lws_and_quotes() {
        let p = parse_params(r#" ;   tag    = 1918181833n ; x ; inst="<urn:uuid:1>""#)
            .unwrap_or_default();
        assert_eq!(p.value("tag"), Some("1918181833n"));
        assert_eq!(p.get("x"), Some(None));
        assert_eq!(p.value("inst"), Some("<urn:uuid:1>"));
        let mut s = String::new();
        p.write_to(&mut s);
        assert_eq!(s, r#";tag=1918181833n;x;inst="<urn:uuid:1>""#);
    }

    #[test]
    fn rejects_empty_params() {
        assert!(parse_params(";;").is_err());
        assert!(parse_params(";a=").is_err());
    }

    #[test]
    fn quoted_pairs() {
        let (v, rest) = read_quoted(r#""J Rosenberg \\\"" <x>"#).unwrap_or_default();
        assert_eq!(v, r#"J Rosenberg \""#);
        assert_eq!(rest, " <x>");
    }
}
