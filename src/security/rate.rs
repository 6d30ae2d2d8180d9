//! Per-source request rate limit (a token bucket per IP), like Kamailio's
//! pike module: a flood from one address is dropped before parsing costs
//! anything beyond the header scan.

use super::cidr::{Cidr, any_contains};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    trusted: Vec<Cidr>,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `per_second == 0` disables the limit.
    pub fn new(per_second: u32, trusted: Vec<Cidr>) -> Self {
        let per_second = f64::from(per_second);
        RateLimiter {
            per_second,
            burst: (per_second * 2.0).max(1.0),
            trusted,
            buckets: HashMap::new(),
        }
    }

    /// True if a request from `ip` may be processed now.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        if self.per_second <= 0.0 || any_contains(&self.trusted, ip) {
            return true;
        }
        // Full (a flood from more sources than a per-source limit can
        // help against, i.e. spoofed ones): a new source goes untracked
        // until `prune` makes room. Refusing it instead would let spoofed
        // packets lock every legitimate newcomer (an agent re-registering,
        // a caller) out; scanning the table per packet would cost 100k
        // entries per datagram.
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&ip) {
            return true;
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets sources whose bucket has refilled: they behave exactly like
    /// unknown ones. Called from housekeeping, about once a second.
    pub fn prune(&mut self, now: Instant) {
        let (rate, burst) = (self.per_second, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills() {
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let mut r = RateLimiter::new(10, vec![]);
        let allowed = (0..100).filter(|_| r.allow(ip, t0)).count();
        assert_eq!(allowed, 20, "burst is two seconds' worth");
        assert!(!r.allow(ip, t0 + Duration::from_millis(50)));
        assert!(r.allow(ip, t0 + Duration::from_millis(150)));
        let mut off = RateLimiter::new(0, vec![]);
        assert!((0..1000).all(|_| off.allow(ip, t0)));
    }

    #[test]
    fn a_full_table_does_not_lock_newcomers_out() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, vec![]);
        for i in 0..MAX_TRACKED as u32 {
            r.allow(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(r.tracked(), MAX_TRACKED);
        let agent: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(r.allow(agent, t0), "a new source still gets through");
        assert_eq!(r.tracked(), MAX_TRACKED);
        r.prune(t0 + Duration::from_secs(3));
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn refilled_sources_are_pruned_busy_ones_kept() {
        let t0 = Instant::now();
        let quiet: IpAddr = "10.0.0.1".parse().unwrap();
        let busy: IpAddr = "10.0.0.2".parse().unwrap();
        let mut r = RateLimiter::new(10, vec![]);
        assert!(r.allow(quiet, t0));
        for _ in 0..20 {
            r.allow(busy, t0 + Duration::from_millis(900));
        }
        r.prune(t0 + Duration::from_secs(1));
        assert_eq!(r.tracked(), 1, "only the busy source is remembered");
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..5).filter(|_| r.allow(busy, t1)).count();
        assert_eq!(
            allowed, 1,
            "the busy source keeps its (nearly) empty bucket"
        );
        assert!(r.allow(quiet, t1));
    }
}
