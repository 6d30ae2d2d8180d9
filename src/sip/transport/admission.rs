//! Who gets a TCP connection slot. A global cap protects file descriptors;
//! a per-source cap keeps one address (slow-loris, a runaway client) from
//! taking them all, so legitimate clients still get in. Sources in
//! `security.trusted` (a proxy or SBC carrying many phones) are exempt
//! from the per-source cap, not from the global one.
//!
//! Sans-IO: the transport asks, and gives slots back when connections end.

use crate::security::Cidr;
use crate::security::cidr::any_contains;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// What one source is counted as: an IPv4 address, or an IPv6 /64 (one
/// customer's subnet: an attacker has 2^64 addresses in it for free).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4(std::net::Ipv4Addr),
    V6Net(u64),
}

impl SourceKey {
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(a) => SourceKey::V4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4),
                None => SourceKey::V6Net((u128::from(a) >> 64) as u64),
            },
        }
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::V4(a) => write!(f, "{a}"),
            SourceKey::V6Net(n) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*n) << 64)),
        }
    }
}

/// The answer to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Take it; give the slot back with `release(Some(key))`.
    Admit(SourceKey),
    /// The source holds its share. `first` is true for the first refusal
    /// since the source was last under its cap: log that one, not each.
    SourceFull { key: SourceKey, first: bool },
    /// Every slot is taken; `first` as above.
    Full { first: bool },
}

#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_source: usize,
    trusted: Vec<Cidr>,
    total: usize,
    per_source: HashMap<SourceKey, Source>,
    full_warned: bool,
}

#[derive(Debug, Default)]
struct Source {
    open: usize,
    warned: bool,
}

impl Admission {
    pub fn new(max_total: usize, max_per_source: usize, trusted: Vec<Cidr>) -> Self {
        Admission {
            max_total,
            max_per_source,
            trusted,
            total: 0,
            per_source: HashMap::new(),
            full_warned: false,
        }
    }

    /// A connection accepted from `ip`.
    pub fn admit(&mut self, ip: IpAddr) -> Verdict {
        let key = SourceKey::of(ip);
        if self.total >= self.max_total {
            let first = !self.full_warned;
            self.full_warned = true;
            return Verdict::Full { first };
        }
        let exempt = any_contains(&self.trusted, ip);
        let source = self.per_source.entry(key).or_default();
        if !exempt && source.open >= self.max_per_source {
            let first = !source.warned;
            source.warned = true;
            return Verdict::SourceFull { key, first };
        }
        source.open += 1;
        if source.open < self.max_per_source {
            source.warned = false;
        }
        self.total += 1;
        Verdict::Admit(key)
    }

    /// A connection we open ourselves: it counts only against the total.
    pub fn admit_outbound(&mut self) -> bool {
        if self.total >= self.max_total {
            return false;
        }
        self.total += 1;
        true
    }

    /// A connection ended; `key` is what `admit` returned (None for one we
    /// opened).
    pub fn release(&mut self, key: Option<SourceKey>) {
        self.total = self.total.saturating_sub(1);
        if self.total < self.max_total {
            self.full_warned = false;
        }
        if let Some(key) = key
            && let Some(s) = self.per_source.get_mut(&key)
        {
            s.open = s.open.saturating_sub(1);
            if s.open < self.max_per_source {
                s.warned = false;
            }
            if s.open == 0 {
                self.per_source.remove(&key);
            }
        }
    }

    pub fn open(&self) -> usize {
        self.total
    }

    pub fn sources(&self) -> usize {
        self.per_source.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_cannot_take_every_slot() {
        let mut a = Admission::new(10, 3, vec![]);
        let k = SourceKey::of(ip("192.0.2.1"));
        for _ in 0..3 {
            assert_eq!(a.admit(ip("192.0.2.1")), Verdict::Admit(k));
        }
        assert_eq!(
            a.admit(ip("192.0.2.1")),
            Verdict::SourceFull {
                key: k,
                first: true
            }
        );
        assert_eq!(
            a.admit(ip("192.0.2.1")),
            Verdict::SourceFull {
                key: k,
                first: false
            }
        );
        assert!(matches!(a.admit(ip("192.0.2.2")), Verdict::Admit(_)));
        a.release(Some(k));
        assert_eq!(a.admit(ip("192.0.2.1")), Verdict::Admit(k));
        // Under the cap again after a release: the next refusal is logged.
        a.release(Some(k));
        assert_eq!(a.admit(ip("192.0.2.1")), Verdict::Admit(k));
        assert_eq!(
            a.admit(ip("192.0.2.1")),
            Verdict::SourceFull {
                key: k,
                first: true
            }
        );
    }

    #[test]
    fn global_cap_and_trusted_exemption() {
        let trusted = vec![Cidr::parse("10.0.0.0/8").unwrap()];
        let mut a = Admission::new(5, 1, trusted);
        for _ in 0..4 {
            assert!(matches!(a.admit(ip("10.1.2.3")), Verdict::Admit(_)));
        }
        assert!(matches!(a.admit(ip("192.0.2.9")), Verdict::Admit(_)));
        assert_eq!(a.admit(ip("10.1.2.3")), Verdict::Full { first: true });
        assert_eq!(a.admit(ip("192.0.2.8")), Verdict::Full { first: false });
        assert!(!a.admit_outbound());
        a.release(None);
        assert!(a.admit_outbound());
        assert_eq!(a.open(), 5);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let mut a = Admission::new(100, 2, vec![]);
        assert!(matches!(a.admit(ip("2001:db8::1")), Verdict::Admit(_)));
        assert!(matches!(a.admit(ip("2001:db8::ffff:2")), Verdict::Admit(_)));
        assert!(matches!(
            a.admit(ip("2001:db8::3")),
            Verdict::SourceFull { .. }
        ));
        assert!(matches!(a.admit(ip("2001:db8:0:1::1")), Verdict::Admit(_)));
        assert_eq!(
            SourceKey::of(ip("::ffff:192.0.2.1")),
            SourceKey::of(ip("192.0.2.1"))
        );
        assert_eq!(
            SourceKey::of(ip("2001:db8::1")).to_string(),
            "2001:db8::/64"
        );
    }

    #[test]
    fn releases_forget_empty_sources() {
        let mut a = Admission::new(10, 2, vec![]);
        let Verdict::Admit(k) = a.admit(ip("192.0.2.1")) else {
            panic!()
        };
        assert_eq!(a.sources(), 1);
        a.release(Some(k));
        assert_eq!((a.sources(), a.open()), (0, 0));
        // A release that was never admitted does not underflow.
        a.release(Some(k));
        assert_eq!(a.open(), 0);
    }
}
