//! Bans a source IP after repeated authentication failures, the way
//! password-guessing scanners (SIPVicious `svcrack`) are stopped. While
//! banned, requests from the source are dropped without an answer, which
//! also denies the scanner its oracle.

use super::cidr::{Cidr, any_contains};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Entries kept at most; beyond this, stale ones are pruned and if that is
/// not enough the oldest windows are forgotten (bans are kept).
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

#[derive(Debug)]
pub struct AuthThrottle {
    limit: u32,
    window: Duration,
    ban: Duration,
    trusted: Vec<Cidr>,
    entries: HashMap<IpAddr, Entry>,
}

/// Result of recording a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    Counted(u32),
    /// This failure started a ban.
    Banned,
}

impl AuthThrottle {
    pub fn new(limit: u32, window: Duration, ban: Duration, trusted: Vec<Cidr>) -> Self {
        AuthThrottle {
            limit: limit.max(1),
            window,
            ban,
            trusted,
            entries: HashMap::new(),
        }
    }

    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries
            .get(&ip)
            .and_then(|e| e.banned_until)
            .is_some_and(|until| until > now)
    }

    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> FailureOutcome {
        if any_contains(&self.trusted, ip) {
            return FailureOutcome::Counted(0);
        }
        if self.entries.len() >= MAX_TRACKED {
            self.prune(now);
        }
        let e = self.entries.entry(ip).or_insert(Entry {
            window_start: now,
            failures: 0,
            banned_until: None,
        });
        if now.duration_since(e.window_start) > self.window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= self.limit {
            e.banned_until = Some(now + self.ban);
            e.failures = 0;
            e.window_start = now;
            return FailureOutcome::Banned;
        }
        FailureOutcome::Counted(e.failures)
    }

    /// A success clears the source's failure count (not an active ban).
    pub fn record_success(&mut self, ip: IpAddr) {
        if let Some(e) = self.entries.get_mut(&ip) {
            e.failures = 0;
        }
    }

    pub fn prune(&mut self, now: Instant) {
        let window = self.window;
        self.entries.retain(|_, e| {
            e.banned_until.is_some_and(|u| u > now) || now.duration_since(e.window_start) <= window
        });
        if self.entries.len() >= MAX_TRACKED {
            self.entries
                .retain(|_, e| e.banned_until.is_some_and(|u| u > now));
        }
    }

    pub fn tracked(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bans_after_limit_within_window_and_expires() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(3, Duration::from_secs(60), Duration::from_secs(300), vec![]);
        assert_eq!(
            t.record_failure(ip("10.0.0.1"), t0),
            FailureOutcome::Counted(1)
        );
        assert_eq!(
            t.record_failure(ip("10.0.0.1"), t0),
            FailureOutcome::Counted(2)
        );
        assert!(!t.is_banned(ip("10.0.0.1"), t0));
        assert_eq!(t.record_failure(ip("10.0.0.1"), t0), FailureOutcome::Banned);
        assert!(t.is_banned(ip("10.0.0.1"), t0 + Duration::from_secs(299)));
        assert!(!t.is_banned(ip("10.0.0.2"), t0));
        assert!(!t.is_banned(ip("10.0.0.1"), t0 + Duration::from_secs(300)));
    }

    #[test]
    fn window_resets_count() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(2, Duration::from_secs(10), Duration::from_secs(300), vec![]);
        t.record_failure(ip("10.0.0.1"), t0);
        assert_eq!(
            t.record_failure(ip("10.0.0.1"), t0 + Duration::from_secs(11)),
            FailureOutcome::Counted(1)
        );
    }

    #[test]
    fn trusted_sources_never_banned() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(
            1,
            Duration::from_secs(10),
            Duration::from_secs(300),
            vec![Cidr::parse("127.0.0.0/8").unwrap()],
        );
        t.record_failure(ip("127.0.0.1"), t0);
        assert!(!t.is_banned(ip("127.0.0.1"), t0));
        t.prune(t0 + Duration::from_secs(100));
        assert_eq!(t.tracked(), 0);
    }
}
