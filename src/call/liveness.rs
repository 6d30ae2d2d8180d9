//! Is the other side of an established call still there? RTP answers
//! that while audio flows; while the far end holds (it may send nothing
//! for as long as it likes, RFC 6337 §5.3) only SIP can. Sans-IO: fed the
//! time and what happened, it says when to send what.
//!
//! - With an RFC 4028 session timer: when we are the refresher, a refresh
//!   at half the interval (§10); when they are, a BYE if none came before
//!   the interval minus min(32 s, a third of it) ran out.
//! - Without one, while the far end holds: an in-dialog OPTIONS every
//!   `ping_every` (any answer but 408 or 481 proves the peer alive).
//! - A 408 or 481 to either, or no answer at all, ends the call (RFC 3261
//!   §12.2.1.2: the dialog is gone).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send an in-dialog OPTIONS.
    Ping,
    /// Send a session refresh (UPDATE or re-INVITE).
    Refresh,
    /// They were to refresh and did not: end the call.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The answer to one of our probes: the peer is there.
    Alive,
    /// The answer (408, 481) or its absence says the dialog is gone.
    Gone,
    /// Not an answer to a probe of ours.
    NotOurs,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    interval: Duration,
    we_refresh: bool,
    since: Instant,
}

#[derive(Debug, Clone)]
struct Probe {
    seq: u32,
    branch: String,
    refresh: bool,
}

#[derive(Debug, Clone)]
pub struct Liveness {
    ping_every: Option<Duration>,
    held: bool,
    timer: Option<Timer>,
    next_ping: Option<Instant>,
    probe: Option<Probe>,
}

impl Liveness {
    /// `ping_every`: OPTIONS interval while held (`None`: never ping).
    pub fn new(ping_every: Option<Duration>) -> Liveness {
        Liveness {
            ping_every,
            held: false,
            timer: None,
            next_ping: None,
            probe: None,
        }
    }

    /// A session timer was negotiated (or renegotiated by a refresh), or
    /// turned off (`None`).
    pub fn set_timer(&mut self, timer: Option<(u32, bool)>, now: Instant) {
        self.timer = timer.map(|(secs, we_refresh)| Timer {
            interval: Duration::from_secs(u64::from(secs.max(1))),
            we_refresh,
            since: now,
        });
        self.schedule_ping(now);
    }

    /// The session interval in seconds, while a timer runs.
    pub fn interval_secs(&self) -> Option<u32> {
        self.timer
            .map(|t| u32::try_from(t.interval.as_secs()).unwrap_or(u32::MAX))
    }

    /// The far end put the call on hold (or took it off).
    pub fn set_held(&mut self, held: bool, now: Instant) {
        if held != self.held {
            self.held = held;
            self.schedule_ping(now);
        }
    }

    pub fn is_held(&self) -> bool {
        self.held
    }

    fn schedule_ping(&mut self, now: Instant) {
        self.next_ping = match (self.held, self.timer, self.ping_every) {
            (true, None, Some(every)) => Some(now + every),
            _ => None,
        };
    }

    /// When `on_deadline` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        if self.probe.is_some() {
            // One probe at a time: its answer or its timeout comes first.
            return self.timer.filter(|t| !t.we_refresh).map(expiry);
        }
        let timer = self.timer.map(|t| {
            if t.we_refresh {
                t.since + t.interval / 2
            } else {
                expiry(t)
            }
        });
        match (timer, self.next_ping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn on_deadline(&mut self, now: Instant) -> Option<Due> {
        if let Some(t) = self.timer {
            if !t.we_refresh && now >= expiry(t) {
                return Some(Due::Expired);
            }
            if t.we_refresh && self.probe.is_none() && now >= t.since + t.interval / 2 {
                return Some(Due::Refresh);
            }
        }
        match self.next_ping {
            Some(at) if self.probe.is_none() && now >= at => Some(Due::Ping),
            _ => None,
        }
    }

    /// A probe (ping or refresh) went out with CSeq `seq` on `branch`.
    pub fn sent(&mut self, seq: u32, branch: String, refresh: bool) {
        self.probe = Some(Probe {
            seq,
            branch,
            refresh,
        });
        self.next_ping = None;
    }

    /// A final response with CSeq number `seq` arrived.
    pub fn on_response(&mut self, seq: u32, status: u16, now: Instant) -> Verdict {
        match &self.probe {
            Some(p) if p.seq == seq && status >= 200 => {}
            _ => return Verdict::NotOurs,
        }
        let refresh = self.probe.take().is_some_and(|p| p.refresh);
        if matches!(status, 408 | 481) {
            return Verdict::Gone;
        }
        if refresh && let Some(t) = self.timer.as_mut() {
            // Even a refused refresh (491 glare, 500) shows the peer is
            // there; the next one goes half an interval later.
            t.since = now;
        }
        self.schedule_ping(now);
        Verdict::Alive
    }

    /// A client transaction timed out; `Gone` if it was our probe.
    pub fn on_timeout(&mut self, branch: &str) -> Verdict {
        match &self.probe {
            Some(p) if p.branch == branch => {
                self.probe = None;
                Verdict::Gone
            }
            _ => Verdict::NotOurs,
        }
    }
}

/// §10: the side that does not refresh ends the session this long after
/// the last refresh.
fn expiry(t: Timer) -> Instant {
    t.since + t.interval - (t.interval / 3).min(Duration::from_secs(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn pings_only_while_held_and_without_a_timer() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Some(secs(30)));
        assert_eq!(l.deadline(), None, "not held: RTP tells");
        l.set_held(true, t0);
        assert_eq!(l.deadline(), Some(t0 + secs(30)));
        assert_eq!(l.on_deadline(t0 + secs(29)), None);
        assert_eq!(l.on_deadline(t0 + secs(30)), Some(Due::Ping));
        l.sent(5, "z9hG4bKp1".into(), false);
        assert_eq!(l.deadline(), None, "waiting for the answer");
        assert_eq!(l.on_response(4, 200, t0 + secs(31)), Verdict::NotOurs);
        assert_eq!(l.on_response(5, 100, t0 + secs(31)), Verdict::NotOurs);
        // 405 or 501 to OPTIONS: it answered, so it is there.
        assert_eq!(l.on_response(5, 501, t0 + secs(31)), Verdict::Alive);
        assert_eq!(l.deadline(), Some(t0 + secs(61)));
        l.set_held(false, t0 + secs(40));
        assert_eq!(l.deadline(), None, "unheld: no more pings");
        let mut never = Liveness::new(None);
        never.set_held(true, t0);
        assert_eq!(never.deadline(), None);
    }

    #[test]
    fn a_408_481_or_silence_means_gone() {
        let t0 = Instant::now();
        for status in [408, 481] {
            let mut l = Liveness::new(Some(secs(30)));
            l.set_held(true, t0);
            l.sent(2, "b".into(), false);
            assert_eq!(l.on_response(2, status, t0), Verdict::Gone, "{status}");
        }
        let mut l = Liveness::new(Some(secs(30)));
        l.set_held(true, t0);
        l.sent(2, "b1".into(), false);
        assert_eq!(l.on_timeout("other"), Verdict::NotOurs);
        assert_eq!(l.on_timeout("b1"), Verdict::Gone);
    }

    #[test]
    fn we_refresh_at_half_the_interval() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Some(secs(30)));
        l.set_timer(Some((600, true)), t0);
        l.set_held(true, t0);
        assert_eq!(l.deadline(), Some(t0 + secs(300)), "the timer, not pings");
        assert_eq!(l.on_deadline(t0 + secs(300)), Some(Due::Refresh));
        l.sent(3, "r".into(), true);
        assert_eq!(l.on_response(3, 200, t0 + secs(301)), Verdict::Alive);
        assert_eq!(l.deadline(), Some(t0 + secs(601)));
    }

    #[test]
    fn they_refresh_or_the_session_expires() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Some(secs(30)));
        l.set_timer(Some((90, false)), t0);
        // 90 − min(32, 30) = 60 s.
        assert_eq!(l.deadline(), Some(t0 + secs(60)));
        // Their refresh (a re-INVITE or UPDATE, renegotiated as such).
        l.set_timer(Some((90, false)), t0 + secs(45));
        assert_eq!(l.on_deadline(t0 + secs(60)), None);
        assert_eq!(l.on_deadline(t0 + secs(105)), Some(Due::Expired));
        let mut long = Liveness::new(None);
        long.set_timer(Some((1800, false)), t0);
        assert_eq!(long.deadline(), Some(t0 + secs(1800 - 32)));
    }
}
