//! Values the configuration holds in typed form, parsed once when the file
//! is loaded (with the file, line and key of a bad one) and never again at
//! run time: address blocks, hours of operation, the dial-out URI template.
//! Their errors begin with the value quoted, which lets the loader point at
//! the element of an array that failed.

use crate::routing::hours::Span;
use crate::security::Cidr;
use crate::sip::message::Uri;
use serde::{Deserialize, Deserializer, de::Error};

/// `10.0.0.0/8`, `::1` …
pub(crate) fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|s| {
            Cidr::parse(&s)
                .ok_or_else(|| D::Error::custom(format!("{s:?} is not an address or CIDR block")))
        })
        .collect()
}

/// `"mon-fri 09:00-17:00"` …
pub(crate) fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Span>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|s| Span::parse(&s).map_err(D::Error::custom))
        .collect()
}

/// `"Europe/London"` … (an IANA name; fixed offsets are
/// `utc_offset_minutes`).
pub(crate) fn time_zone<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<jiff::tz::TimeZone>, D::Error> {
    let name = String::deserialize(d)?;
    crate::routing::hours::zone(&name)
        .map(Some)
        .map_err(D::Error::custom)
}

/// The Request-URI of a call to a customer: a `sip:`/`sips:` URI with
/// `{number}` where the E.164 number goes, checked to make a valid URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate(String);

impl UriTemplate {
    pub fn new(t: &str) -> Result<UriTemplate, String> {
        let bad = || format!("{t:?} must be a sip: URI containing {{number}}");
        if !t.contains("{number}") || !(t.starts_with("sip:") || t.starts_with("sips:")) {
            return Err(bad());
        }
        let template = UriTemplate(t.to_string());
        template.render("+12015550123").map_err(|_| bad())?;
        Ok(template)
    }

    pub fn render(&self, number: &str) -> Result<Uri, String> {
        let text = self.0.replace("{number}", number);
        Uri::parse(&text).map_err(|e| format!("{text:?}: {e}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for UriTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UriTemplate::new(&s).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_templates() {
        let t = UriTemplate::new("sip:{number}@trunk.example.com:5080;user=phone").unwrap();
        let uri = t.render("+12015550123").unwrap();
        assert_eq!(uri.user_unescaped().as_deref(), Some("+12015550123"));
        assert!(
            UriTemplate::new("sip:trunk.example.com").is_err(),
            "no {{number}}"
        );
        assert!(UriTemplate::new("tel:{number}").is_err());
        assert!(UriTemplate::new("sip:{number}@").is_err(), "not a URI");
    }
}
