//! Request methods. Methods are case-sensitive tokens (RFC 3261 §7.1):
//! `RE%47IST%45R` is an unknown method, not REGISTER.

use super::ParseError;
use super::params::is_token;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Prack,
    Update,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Result<Method, ParseError> {
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other if is_token(other) => Method::Other(other.to_string()),
            _ => return Err(ParseError::new("invalid method")),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive_tokens() {
        assert_eq!(Method::parse("INVITE").unwrap(), Method::Invite);
        assert_eq!(
            Method::parse("invite").unwrap(),
            Method::Other("invite".into())
        );
        assert_eq!(
            Method::parse("!interesting-Method0123456789_*+`.%indeed'~")
                .unwrap()
                .as_str(),
            "!interesting-Method0123456789_*+`.%indeed'~"
        );
        assert!(Method::parse("IN VITE").is_err());
        assert!(Method::parse("").is_err());
    }
}
