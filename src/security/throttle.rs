//! Who may keep trying to authenticate: bans a source IP after repeated
//! authentication failures (the way password-guessing scanners such as
//! SIPVicious `svcrack` are stopped) and locks a user name guessed at from
//! many addresses.
//!
//! Only failures backed by evidence a spoofer cannot forge reach this
//! module (the registrar decides: a wrong response with a nonce issued to
//! that very address, or a REGISTER over TCP), so no one can get another
//! address banned. Sources in `exempt` (`security.trusted` and the
//! dialer's trunk) are never counted or banned. A locked user name still
//! authenticates from the addresses it authenticated from recently, so an
//! attacker guessing an agent's password cannot lock the agent out.
//!
//! Memory is bounded: at most `MAX_TRACKED` addresses and user names
//! (user names are kept as keyed hashes, whatever their length), and
//! `MAX_KNOWN_GOOD` addresses per user, added only on a correct password.

use super::cidr::{Cidr, any_contains};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Entries kept at most per table; when full, stale ones are pruned, and
/// if that is not enough a new key is not tracked (its failure is not
/// counted) rather than another key's ban being forgotten.
const MAX_TRACKED: usize = 100_000;
/// Addresses remembered per user as having authenticated recently.
const MAX_KNOWN_GOOD: usize = 8;
/// How long a successful authentication from an address keeps that
/// address exempt from its user's lock: long enough to cover a weekend
/// away from the phone.
const KNOWN_GOOD_FOR: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

/// Failure counts with a ban, per key.
#[derive(Debug)]
struct Counters<K> {
    map: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Copy> Counters<K> {
    fn new() -> Self {
        Counters {
            map: HashMap::new(),
        }
    }

    fn banned(&self, k: &K, now: Instant) -> bool {
        self.map
            .get(k)
            .and_then(|e| e.banned_until)
            .is_some_and(|until| until > now)
    }

    /// Counts a failure; true if it started a ban.
    fn record(&mut self, k: K, now: Instant, limit: u32, window: Duration, ban: Duration) -> bool {
        if self.map.len() >= MAX_TRACKED && !self.map.contains_key(&k) {
            self.prune(now, window);
            if self.map.len() >= MAX_TRACKED {
                return false;
            }
        }
        let e = self.map.entry(k).or_insert(Entry {
            window_start: now,
            failures: 0,
            banned_until: None,
        });
        if e.banned_until.is_some_and(|u| u > now) {
            return false;
        }
        if now.saturating_duration_since(e.window_start) > window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        if e.failures >= limit {
            e.banned_until = Some(now + ban);
            e.failures = 0;
            e.window_start = now;
            return true;
        }
        false
    }

    fn clear_failures(&mut self, k: &K) {
        if let Some(e) = self.map.get_mut(k) {
            e.failures = 0;
        }
    }

    fn prune(&mut self, now: Instant, window: Duration) {
        self.map.retain(|_, e| {
            e.banned_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(e.window_start) <= window
        });
    }
}

#[derive(Debug)]
pub struct AuthThrottle {
    limit: u32,
    window: Duration,
    ban: Duration,
    exempt: Vec<Cidr>,
    ips: Counters<IpAddr>,
    users: Counters<u64>,
    /// User (hashed) → addresses that authenticated as it, and when.
    known_good: HashMap<u64, Vec<(IpAddr, Instant)>>,
    hasher: RandomState,
}

/// What one counted failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureOutcome {
    /// This failure started a ban of the source address.
    pub ip_banned: bool,
    /// This failure locked the user name.
    pub user_locked: bool,
}

impl AuthThrottle {
    pub fn new(limit: u32, window: Duration, ban: Duration, exempt: Vec<Cidr>) -> Self {
        AuthThrottle {
            limit: limit.max(1),
            window,
            ban,
            exempt,
            ips: Counters::new(),
            users: Counters::new(),
            known_good: HashMap::new(),
            hasher: RandomState::new(),
        }
    }

    fn user_key(&self, user: &str) -> u64 {
        self.hasher.hash_one(user)
    }

    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        any_contains(&self.exempt, ip.to_canonical())
    }

    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.ips.banned(&ip.to_canonical(), now)
    }

    /// Whether `user` is locked for a request from `ip`: it is, after
    /// repeated failures, except from an address that authenticated as
    /// `user` within `KNOWN_GOOD_FOR`.
    pub fn is_user_locked(&self, user: &str, ip: IpAddr, now: Instant) -> bool {
        let key = self.user_key(user);
        if !self.users.banned(&key, now) {
            return false;
        }
        let ip = ip.to_canonical();
        !self.known_good.get(&key).is_some_and(|list| {
            list.iter()
                .any(|(a, at)| *a == ip && now.saturating_duration_since(*at) <= KNOWN_GOOD_FOR)
        })
    }

    /// Counts a failure (already known to be real evidence) against the
    /// source and the user name.
    pub fn record_failure(&mut self, ip: IpAddr, user: &str, now: Instant) -> FailureOutcome {
        let ip = ip.to_canonical();
        if self.is_exempt(ip) {
            return FailureOutcome::default();
        }
        let (limit, window, ban) = (self.limit, self.window, self.ban);
        let ip_banned = self.ips.record(ip, now, limit, window, ban);
        let key = self.user_key(user);
        let user_locked = self.users.record(key, now, limit, window, ban);
        FailureOutcome {
            ip_banned,
            user_locked,
        }
    }

    /// A correct password: the source's failure count is cleared (not an
    /// active ban) and it becomes a known-good address of `user`. The
    /// user's own count is left alone: an agent logging in does not reset
    /// an attack on its name.
    pub fn record_success(&mut self, ip: IpAddr, user: &str, now: Instant) {
        let ip = ip.to_canonical();
        self.ips.clear_failures(&ip);
        let key = self.user_key(user);
        let list = self.known_good.entry(key).or_default();
        if let Some(slot) = list.iter_mut().find(|(a, _)| *a == ip) {
            slot.1 = now;
        } else if list.len() < MAX_KNOWN_GOOD {
            list.push((ip, now));
        } else if let Some(oldest) = list.iter_mut().min_by_key(|(_, at)| *at) {
            *oldest = (ip, now);
        }
    }

    pub fn prune(&mut self, now: Instant) {
        self.ips.prune(now, self.window);
        self.users.prune(now, self.window);
        self.known_good.retain(|_, list| {
            list.retain(|(_, at)| now.saturating_duration_since(*at) <= KNOWN_GOOD_FOR);
            !list.is_empty()
        });
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.ips.map.len() + self.users.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn throttle(limit: u32) -> AuthThrottle {
        AuthThrottle::new(
            limit,
            Duration::from_secs(60),
            Duration::from_secs(300),
            vec![],
        )
    }

    #[test]
    fn bans_after_limit_within_window_and_expires() {
        let t0 = Instant::now();
        let mut t = throttle(3);
        assert_eq!(
            t.record_failure(ip("10.0.0.1"), "a", t0),
            FailureOutcome::default()
        );
        t.record_failure(ip("10.0.0.1"), "b", t0);
        assert!(!t.is_banned(ip("10.0.0.1"), t0));
        assert!(t.record_failure(ip("10.0.0.1"), "c", t0).ip_banned);
        assert!(t.is_banned(ip("10.0.0.1"), t0 + Duration::from_secs(299)));
        assert!(
            t.is_banned(ip("::ffff:10.0.0.1"), t0),
            "same address, v6-mapped"
        );
        assert!(!t.is_banned(ip("10.0.0.2"), t0));
        assert!(!t.is_banned(ip("10.0.0.1"), t0 + Duration::from_secs(300)));
    }

    #[test]
    fn window_resets_count() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(2, Duration::from_secs(10), Duration::from_secs(300), vec![]);
        t.record_failure(ip("10.0.0.1"), "a", t0);
        let later = t0 + Duration::from_secs(11);
        assert!(!t.record_failure(ip("10.0.0.1"), "a", later).ip_banned);
        assert!(t.record_failure(ip("10.0.0.1"), "a", later).ip_banned);
    }

    #[test]
    fn exempt_sources_never_counted_or_banned() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(
            1,
            Duration::from_secs(10),
            Duration::from_secs(300),
            vec![Cidr::parse("127.0.0.0/8").unwrap()],
        );
        for _ in 0..10 {
            assert_eq!(
                t.record_failure(ip("127.0.0.1"), "alice", t0),
                FailureOutcome::default()
            );
        }
        assert!(!t.is_banned(ip("127.0.0.1"), t0));
        assert!(!t.is_user_locked("alice", ip("10.9.9.9"), t0));
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn a_guessed_user_is_locked_except_from_where_it_logged_in() {
        let t0 = Instant::now();
        let mut t = throttle(5);
        let home = ip("198.51.100.7");
        t.record_success(home, "alice", t0);
        // A botnet: each address stays under its own limit.
        let mut locked = false;
        for i in 0..5 {
            locked |= t
                .record_failure(ip(&format!("203.0.113.{i}")), "alice", t0)
                .user_locked;
        }
        assert!(locked);
        assert!(t.is_user_locked("alice", ip("203.0.113.200"), t0));
        assert!(
            !t.is_user_locked("alice", home, t0),
            "the agent keeps working"
        );
        assert!(!t.is_user_locked("bob", ip("203.0.113.200"), t0));
        assert!(!t.is_user_locked("alice", ip("203.0.113.200"), t0 + Duration::from_secs(301)));
        // Known-good addresses expire.
        let much_later = t0 + KNOWN_GOOD_FOR + Duration::from_secs(1);
        for i in 0..5 {
            t.record_failure(ip(&format!("203.0.113.{i}")), "alice", much_later);
        }
        assert!(t.is_user_locked("alice", home, much_later));
    }

    #[test]
    fn success_clears_the_source_count_not_the_user_count() {
        let t0 = Instant::now();
        let mut t = throttle(3);
        let a = ip("10.0.0.1");
        t.record_failure(a, "alice", t0);
        t.record_failure(a, "alice", t0);
        t.record_success(a, "alice", t0);
        assert!(!t.record_failure(a, "x", t0).ip_banned);
        assert!(t.record_failure(ip("10.0.0.2"), "alice", t0).user_locked);
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut t = throttle(1000);
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let a = IpAddr::from(i.to_be_bytes());
            t.record_failure(a, &format!("user{i}"), t0);
        }
        assert!(t.tracked() <= 2 * MAX_TRACKED);
        let home = ip("10.0.0.1");
        for i in 0..100u32 {
            t.record_success(IpAddr::from((i + 1).to_be_bytes()), "alice", t0);
        }
        t.record_success(home, "alice", t0);
        assert!(t.known_good.values().all(|l| l.len() <= MAX_KNOWN_GOOD));
        t.prune(t0 + Duration::from_secs(61));
        assert_eq!(t.tracked(), 0);
    }
}
