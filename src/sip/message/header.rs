//! Header names and the ordered header list of a SIP message.
//!
//! Names are case-insensitive (RFC 3261 §7.3.1) and many have a compact form
//! (§7.3.3, plus the IANA registry for later RFCs). We canonicalise both at
//! parse time so that the rest of the code compares enum values instead of
//! strings and never misses `v:` for `Via`.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names are variants; anything else keeps
        /// its spelling as received.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $variant, )*
            Other(String),
        }

        impl HeaderName {
            /// Canonical spelling, used when serialising.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other(s) => s,
                }
            }

            /// Maps a received name (long or compact, any case) to a header name.
            pub fn from_wire(name: &str) -> HeaderName {
                $(
                    if name.eq_ignore_ascii_case($canonical) $(|| name.eq_ignore_ascii_case($compact))? {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other(name.to_string())
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", "m";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    Subject => "Subject", "s";
    Supported => "Supported", "k";
    Event => "Event", "o";
    AllowEvents => "Allow-Events", "u";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    SessionExpires => "Session-Expires", "x";
    AcceptContact => "Accept-Contact", "a";
    RejectContact => "Reject-Contact", "j";
    RequestDisposition => "Request-Disposition", "d";
    Identity => "Identity", "y";
    IdentityInfo => "Identity-Info", "n";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyAuthenticate => "Proxy-Authenticate";
    AuthenticationInfo => "Authentication-Info";
    Route => "Route";
    RecordRoute => "Record-Route";
    Allow => "Allow";
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    RetryAfter => "Retry-After";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Privacy => "Privacy";
    Reason => "Reason";
    Warning => "Warning";
    Timestamp => "Timestamp";
    RSeq => "RSeq";
    RAck => "RAck";
    MinSe => "Min-SE";
    Path => "Path";
}

impl HeaderName {
    /// Headers whose grammar is `#(value)`: several values may share one line
    /// separated by commas, and RFC 3261 §7.3.1 makes that equivalent to one
    /// header line per value. Splitting them at parse time means `Via: a, b`
    /// is two hops everywhere in the code.
    pub fn is_comma_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Allow
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::PAssertedIdentity
        )
    }

    /// Headers that may appear at most once (RFC 3261 §7.3 table and §20):
    /// two values for one of these make a request unusable (RFC 4475 §3.3.8).
    pub fn is_single_valued(&self) -> bool {
        matches!(
            self,
            HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::From
                | HeaderName::To
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line (after unfolding and list splitting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
}

/// The ordered header list. Order matters for Via, Route and Record-Route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// All values of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Inserts before every existing header (used for a new top Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Replaces every value of `name` with a single one, keeping the position
    /// of the first occurrence.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(pos) => {
                self.0.retain({
                    let mut index = 0usize;
                    let name = name.clone();
                    move |h| {
                        let keep = h.name != name || index == pos;
                        index += 1;
                        keep
                    }
                });
                // `pos` is still valid: only later entries were removed.
                if let Some(h) = self.0.get_mut(pos) {
                    h.value = value;
                }
            }
            None => self.push(name, value),
        }
    }

    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// Mutable access to the first value of `name`.
    pub fn get_mut(&mut self, name: &HeaderName) -> Option<&mut String> {
        self.0
            .iter_mut()
            .find(|h| &h.name == name)
            .map(|h| &mut h.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::from_wire("v"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire("V"), HeaderName::Via);
        assert_eq!(HeaderName::from_wire("cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_wire("m"), HeaderName::Contact);
        assert_eq!(
            HeaderName::from_wire("C%6Fntact"),
            HeaderName::Other("C%6Fntact".into())
        );
    }

    #[test]
    fn set_replaces_all_values_in_place() {
        let mut h = Headers::new();
        h.push(HeaderName::Via, "a");
        h.push(HeaderName::Expires, "1");
        h.push(HeaderName::To, "x");
        h.push(HeaderName::Expires, "2");
        h.set(HeaderName::Expires, "3");
        let v: Vec<_> = h.iter().map(|h| h.value.as_str()).collect();
        assert_eq!(v, vec!["a", "3", "x"]);
    }
}
