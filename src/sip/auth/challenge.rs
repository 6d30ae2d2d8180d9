//! `WWW-Authenticate` challenges.

use super::digest::Algorithm;

#[derive(Debug, Clone)]
pub struct Challenge<'a> {
    pub realm: &'a str,
    pub nonce: &'a str,
    pub opaque: &'a str,
    pub algorithm: Algorithm,
    pub stale: bool,
}

impl Challenge<'_> {
    pub fn header_value(&self) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\", opaque=\"{}\", algorithm={}, qop=\"auth\"",
            self.realm,
            self.nonce,
            self.opaque,
            self.algorithm.as_str()
        );
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }
}
