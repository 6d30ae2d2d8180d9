//! Server nonces: self-validating (time-stamped and MACed, so no state is
//! kept per challenge, which a flood of REGISTERs could exhaust) with
//! replay protection by nonce count, tracked only for nonces that were
//! actually used with valid credentials.
//!
//! A nonce is bound to the IP address it was issued to (like Kamailio's
//! `auth_checks_register` source-IP check): a request carrying a valid
//! nonce therefore came from an address that could receive our
//! challenge, which is what lets a wrong response count as evidence
//! against that address (a spoofer sees no challenge). The port is left
//! out: NAT may rebind it between a challenge and the retry.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

type HmacSha256 = Hmac<Sha256>;

/// Nonces whose replay state we track at most (each costs ~33 bytes: the
/// nonce's 16-byte body and its count, no strings, so that a REGISTER
/// flood at the registrar's full rate stays within a few MB); when full,
/// expired ones go first, then everything.
const MAX_TRACKED: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Ours but expired: challenge again with `stale=true` (RFC 7616 §3.3)
    /// so the phone retries without asking its user for a password.
    Stale,
    /// Not ours, tampered with, or garbage.
    Invalid,
}

pub struct Nonces {
    key: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
    /// Body of a used nonce (issue time in ms ‖ 8 random bytes, which
    /// identifies it: the MAC adds nothing once checked) → highest nonce
    /// count seen. The issue time inside the key says when it expires.
    used: HashMap<u128, u32>,
}

impl Nonces {
    pub fn new(lifetime: Duration, epoch: Instant) -> Self {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Nonces {
            key,
            epoch,
            lifetime,
            used: HashMap::new(),
        }
    }

    fn mac(&self, body: &[u8], ip: IpAddr) -> Vec<u8> {
        // HMAC accepts keys of any length; new_from_slice cannot fail here.
        match HmacSha256::new_from_slice(&self.key) {
            Ok(mut m) => {
                m.update(body);
                match ip.to_canonical() {
                    IpAddr::V4(v4) => m.update(&v4.octets()),
                    IpAddr::V6(v6) => m.update(&v6.octets()),
                }
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    /// A fresh nonce for `ip`: hex(ms-since-epoch ‖ 8 random bytes ‖
    /// MAC(those ‖ ip)[..12]).
    pub fn issue(&self, ip: IpAddr, now: Instant) -> String {
        self.issue_with(ip, now, rand::random())
    }

    /// The nonce issued at `issued` with `salt` in place of the random
    /// bytes: the same arguments give the same nonce, so that a
    /// retransmitted request can get the very challenge it got before
    /// (`salt` must then be unpredictable and differ between requests).
    pub fn issue_with(&self, ip: IpAddr, issued: Instant, salt: u64) -> String {
        let ms = issued.saturating_duration_since(self.epoch).as_millis() as u64;
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&ms.to_be_bytes());
        body.extend_from_slice(&salt.to_be_bytes());
        let mac = self.mac(&body, ip);
        body.extend_from_slice(mac.get(..12).unwrap_or_default());
        hex::encode(body)
    }

    /// Whether `nonce` is one we issued to `ip` and is still fresh.
    pub fn check(&self, nonce: &str, ip: IpAddr, now: Instant) -> NonceCheck {
        let Ok(raw) = hex::decode(nonce) else {
            return NonceCheck::Invalid;
        };
        if raw.len() != 28 {
            return NonceCheck::Invalid;
        }
        let (body, mac) = raw.split_at(16);
        let expected = self.mac(body, ip);
        let ok = expected
            .get(..12)
            .is_some_and(|e| e.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
        if !ok {
            return NonceCheck::Invalid;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(body.get(..8).unwrap_or(&[0; 8]));
        let issued = self.epoch + Duration::from_millis(u64::from_be_bytes(ts));
        if issued > now + Duration::from_secs(1) {
            return NonceCheck::Invalid;
        }
        if now.saturating_duration_since(issued) > self.lifetime {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid
    }

    /// Records a use with nonce count `nc`; false if it is a replay (the
    /// count did not increase). Without qop there is no count: such a nonce
    /// may be used once (`nc = None`).
    /// Call only for a nonce `check` found valid.
    pub fn record_use(&mut self, nonce: &str, nc: Option<u32>, now: Instant) -> bool {
        let Some(id) = nonce_id(nonce) else {
            return false;
        };
        if self.used.len() >= MAX_TRACKED && !self.used.contains_key(&id) {
            self.prune(now);
            if self.used.len() >= MAX_TRACKED {
                // Forget everything: worst case a replay within a nonce's
                // lifetime succeeds once, which needs a captured valid
                // response anyway.
                self.used.clear();
            }
        }
        let count = nc.unwrap_or(1);
        match self.used.get_mut(&id) {
            Some(last) => {
                if nc.is_none() || count <= *last {
                    return false;
                }
                *last = count;
                true
            }
            None => {
                self.used.insert(id, count);
                true
            }
        }
    }

    /// Forgets nonces past their lifetime (they can only be stale now).
    pub fn prune(&mut self, now: Instant) {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let lifetime_ms = self.lifetime.as_millis() as u64;
        self.used
            .retain(|id, _| now_ms.saturating_sub((id >> 64) as u64) <= lifetime_ms);
    }
}

/// The 16-byte body of a nonce of ours (see `issue`), as one number whose
/// high 64 bits are its issue time in ms.
fn nonce_id(nonce: &str) -> Option<u128> {
    let hex = nonce.get(..32)?;
    u128::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn issue_check_expire_tamper() {
        let t0 = Instant::now();
        let n = Nonces::new(Duration::from_secs(300), t0);
        let nonce = n.issue(IP, t0);
        assert_eq!(
            n.check(&nonce, IP, t0 + Duration::from_secs(10)),
            NonceCheck::Valid
        );
        assert_eq!(
            n.check(&nonce, IP, t0 + Duration::from_secs(301)),
            NonceCheck::Stale
        );
        let mut bad = nonce.clone().into_bytes();
        bad[3] = if bad[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            n.check(&String::from_utf8(bad).unwrap(), IP, t0),
            NonceCheck::Invalid
        );
        assert_eq!(n.check("zz", IP, t0), NonceCheck::Invalid);
        let other = Nonces::new(Duration::from_secs(300), t0);
        assert_eq!(other.check(&nonce, IP, t0), NonceCheck::Invalid);
    }

    #[test]
    fn bound_to_the_address_it_was_issued_to() {
        let t0 = Instant::now();
        let n = Nonces::new(Duration::from_secs(300), t0);
        let nonce = n.issue(IP, t0);
        let elsewhere: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(n.check(&nonce, elsewhere, t0), NonceCheck::Invalid);
        // The same address seen through a dual-stack socket.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(n.check(&nonce, mapped, t0), NonceCheck::Valid);
    }

    #[test]
    fn replay_detection() {
        let t0 = Instant::now();
        let mut n = Nonces::new(Duration::from_secs(300), t0);
        let nonce = n.issue(IP, t0);
        assert!(n.record_use(&nonce, Some(1), t0));
        assert!(n.record_use(&nonce, Some(2), t0));
        assert!(
            !n.record_use(&nonce, Some(2), t0),
            "same nc again is a replay"
        );
        assert!(n.record_use(&nonce, Some(0x10), t0));
        let once = n.issue(IP, t0);
        assert!(n.record_use(&once, None, t0));
        assert!(!n.record_use(&once, None, t0));
    }

    #[test]
    fn issued_with_a_salt_is_reproducible() {
        let t0 = Instant::now();
        let n = Nonces::new(Duration::from_secs(300), t0);
        let t = t0 + Duration::from_millis(1234);
        let a = n.issue_with(IP, t, 42);
        assert_eq!(a, n.issue_with(IP, t, 42));
        assert_ne!(a, n.issue_with(IP, t, 43));
        assert_eq!(
            n.check(&a, IP, t + Duration::from_secs(1)),
            NonceCheck::Valid
        );
    }

    /// Replay state is kept for a nonce's lifetime only, then forgotten
    /// (the nonce itself is stale by then).
    #[test]
    fn replay_state_lives_as_long_as_the_nonce() {
        let t0 = Instant::now();
        let mut n = Nonces::new(Duration::from_secs(300), t0);
        let early = n.issue(IP, t0);
        let late = n.issue(IP, t0 + Duration::from_secs(200));
        assert!(n.record_use(&early, Some(1), t0));
        assert!(n.record_use(&late, Some(1), t0 + Duration::from_secs(200)));
        n.prune(t0 + Duration::from_secs(299));
        assert_eq!(n.used.len(), 2);
        n.prune(t0 + Duration::from_secs(301));
        assert_eq!(n.used.len(), 1, "the early one expired");
        assert!(!n.record_use(&late, Some(1), t0 + Duration::from_secs(301)));
    }
}
