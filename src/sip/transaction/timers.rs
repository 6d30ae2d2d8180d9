//! RFC 3261 §17 timer values and a small retransmission timer.

use std::time::{Duration, Instant};

/// T1 (RTT estimate), T2 (maximum retransmit interval for non-INVITE
/// requests and INVITE responses) and T4 (maximum time a message stays in
/// the network), RFC 3261 §17.1.1.1 and Table 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: timers B, F, H, J (unreliable), L and M.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// A timer that may be re-armed with a growing interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    pub at: Instant,
    pub interval: Duration,
}

impl Retransmit {
    pub fn start(now: Instant, interval: Duration) -> Self {
        Retransmit {
            at: now + interval,
            interval,
        }
    }

    /// Re-arm after firing at `now`: the interval doubles, capped at `cap`
    /// when there is one (Timer A has none, E and G are capped at T2).
    pub fn backoff(&mut self, now: Instant, cap: Option<Duration>) {
        let doubled = self.interval * 2;
        self.interval = match cap {
            Some(c) => doubled.min(c),
            None => doubled,
        };
        self.at = now + self.interval;
    }
}

/// Earliest of several optional deadlines.
pub fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}

/// True when an optional deadline has passed.
pub fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}
