//! CSeq (RFC 3261 §20.16): a 32-bit sequence number and the method.

use super::ParseError;
use super::method::Method;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(v: &str) -> Result<CSeq, ParseError> {
        let mut it = v.split_whitespace();
        let num = it.next().ok_or_else(|| ParseError::new("empty"))?;
        let method = it.next().ok_or_else(|| ParseError::new("no method"))?;
        if it.next().is_some() {
            return Err(ParseError::new("trailing text"));
        }
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new("sequence number is not a number"));
        }
        // RFC 3261 §8.1.1.5: the number MUST be expressible as a 32-bit
        // unsigned integer; larger values are a 400 (RFC 4475 §3.1.2.4).
        let seq = num
            .parse::<u32>()
            .map_err(|_| ParseError::new("sequence number out of range"))?;
        Ok(CSeq {
            seq,
            method: Method::parse(method)?,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let c = CSeq::parse("0009 INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }
}
