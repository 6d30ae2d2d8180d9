//! The digest computation itself (RFC 7616 §3.4.1–3.4.3), MD5 and SHA-256,
//! with the `-sess` variants.

use md5::Md5;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// Absent means MD5 (RFC 2617 §3.2.1).
    pub fn parse(s: Option<&str>) -> Option<Algorithm> {
        match s.map(str::to_ascii_uppercase).as_deref() {
            None | Some("MD5") => Some(Algorithm::Md5),
            Some("MD5-SESS") => Some(Algorithm::Md5Sess),
            Some("SHA-256") => Some(Algorithm::Sha256),
            Some("SHA-256-SESS") => Some(Algorithm::Sha256Sess),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                hex::encode(Sha256::digest(data.as_bytes()))
            }
        }
    }
}

/// Everything the response depends on.
#[derive(Debug, Clone)]
pub struct DigestInput<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `Some("auth")` with qop; `None` for RFC 2069 compatibility.
    pub qop: Option<&'a str>,
    /// Nonce count as the 8 hex digits sent on the wire.
    pub nc: &'a str,
    pub cnonce: &'a str,
}

impl DigestInput<'_> {
    pub fn response(&self) -> String {
        let a = self.algorithm;
        let mut ha1 = a.hash(&format!(
            "{}:{}:{}",
            self.username, self.realm, self.password
        ));
        if a.is_sess() {
            ha1 = a.hash(&format!("{ha1}:{}:{}", self.nonce, self.cnonce));
        }
        let ha2 = a.hash(&format!("{}:{}", self.method, self.uri));
        match self.qop {
            Some(qop) => a.hash(&format!(
                "{ha1}:{}:{}:{}:{qop}:{ha2}",
                self.nonce, self.nc, self.cnonce
            )),
            None => a.hash(&format!("{ha1}:{}:{ha2}", self.nonce)),
        }
    }
}

/// Constant-time comparison of two hex strings, so response checking does
/// not leak how many leading characters matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| {
        acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
    }) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 (HTTP, but the same computation).
        let d = DigestInput {
            algorithm: Algorithm::Md5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some("auth"),
            nc: "00000001",
            cnonce: "0a4f113b",
        };
        assert_eq!(d.response(), "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_example() {
        // RFC 7616 §3.9.1.
        let d = DigestInput {
            algorithm: Algorithm::Sha256,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop: Some("auth"),
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        };
        assert_eq!(
            d.response(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let d = DigestInput {
            algorithm: Algorithm::Md5,
            ..d
        };
        assert_eq!(d.response(), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq("abcD", "ABCd"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
