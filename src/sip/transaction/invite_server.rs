//! INVITE server transaction (RFC 3261 §17.2.1, as updated by RFC 6026).
//!
//! ```text
//!   Proceeding --3xx-6xx--> Completed --ACK--> Confirmed --I--> Terminated
//!       |                      `--H (no ACK)--> Terminated
//!       `--2xx--> Accepted --L--> Terminated
//! ```
//! RFC 6026's Accepted state absorbs INVITE retransmissions after a 2xx
//! instead of terminating at once, which RFC 3261 got wrong. The 2xx is
//! retransmitted here too (§13.3.1.4 puts that in the UAS core; keeping it
//! next to Timer L means one place decides when the INVITE is over).

use super::Action;
use super::timers::{Retransmit, TimerConfig, due, earliest};
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// Longest we hold an INVITE the TU never answers; bounds memory if the
/// application loses track of a call. Not an RFC timer.
const PROCEEDING_GUARD: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct InviteServer {
    state: State,
    reliable: bool,
    timers: TimerConfig,
    last_response: Option<Bytes>,
    timer_g: Option<Retransmit>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
    /// 2xx retransmission, running until the ACK arrives.
    ok_retransmit: Option<Retransmit>,
    acked: bool,
    guard: Option<Instant>,
}

impl InviteServer {
    pub fn new(now: Instant, reliable: bool, timers: TimerConfig) -> Self {
        InviteServer {
            state: State::Proceeding,
            reliable,
            timers,
            last_response: None,
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
            ok_retransmit: None,
            acked: false,
            guard: Some(now + PROCEEDING_GUARD),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The request was retransmitted by the client (§17.2.1): resend the
    /// latest provisional or final response; absorb it once accepted.
    pub fn on_request_retransmit(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding | State::Completed => self
                .last_response
                .clone()
                .map(Action::Transmit)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The TU sends a response.
    pub fn respond(&mut self, status: u16, bytes: Bytes, now: Instant) -> Vec<Action> {
        match (self.state, status) {
            (State::Proceeding, 100..=199) => {
                self.last_response = Some(bytes.clone());
                vec![Action::Transmit(bytes)]
            }
            (State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.guard = None;
                self.last_response = Some(bytes.clone());
                self.timer_l = Some(now + self.timers.t64());
                if !self.reliable {
                    self.ok_retransmit = Some(Retransmit::start(now, self.timers.t1));
                }
                vec![Action::Transmit(bytes)]
            }
            (State::Proceeding, _) => {
                self.state = State::Completed;
                self.guard = None;
                self.last_response = Some(bytes.clone());
                if !self.reliable {
                    self.timer_g = Some(Retransmit::start(now, self.timers.t1));
                }
                self.timer_h = Some(now + self.timers.t64());
                vec![Action::Transmit(bytes)]
            }
            // RFC 6026 §7.1: further 2xx (forked TU) are sent in Accepted.
            (State::Accepted, 200..=299) => vec![Action::Transmit(bytes)],
            _ => Vec::new(),
        }
    }

    /// An ACK matched this transaction: for a non-2xx final response this is
    /// the transaction's own ACK; for a 2xx it ends the retransmissions.
    pub fn on_ack(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
            State::Completed => {
                self.state = State::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.timer_i = Some(now + wait);
                if wait.is_zero() {
                    return self.on_timeout(now);
                }
                Vec::new()
            }
            State::Accepted => {
                self.acked = true;
                self.ok_retransmit = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    pub fn is_acked(&self) -> bool {
        self.acked
    }

    /// Once the final response is ACKed the transaction only absorbs
    /// retransmissions (of the INVITE, and of a non-2xx's ACK) until
    /// Timer I, or L after a 2xx (RFC 6026 §7.1): nothing is ever sent
    /// again, so no response need be kept. Returns that deadline and
    /// whether the response was a 2xx (an ACK reusing the INVITE's branch
    /// then still belongs to the dialog).
    pub fn retention(&self) -> Option<(Instant, bool)> {
        match self.state {
            State::Confirmed => self.timer_i.map(|i| (i, false)),
            State::Accepted if self.acked => self.timer_l.map(|l| (l, true)),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[
            self.timer_g.map(|t| t.at),
            self.timer_h,
            self.timer_i,
            self.timer_l,
            self.ok_retransmit.map(|t| t.at),
            self.guard,
        ])
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Proceeding => {
                if due(self.guard, now) {
                    self.terminate(&mut out, true);
                }
            }
            State::Completed => {
                if due(self.timer_h, now) {
                    // Timer H: the ACK never came (§17.2.1).
                    self.terminate(&mut out, true);
                } else if let Some(g) = self.timer_g.as_mut().filter(|g| g.at <= now) {
                    g.backoff(now, Some(self.timers.t2));
                    out.extend(self.last_response.clone().map(Action::Transmit));
                }
            }
            State::Confirmed => {
                if due(self.timer_i, now) {
                    self.terminate(&mut out, false);
                }
            }
            State::Accepted => {
                if due(self.timer_l, now) {
                    let unacked = !self.acked;
                    self.terminate(&mut out, unacked);
                } else if let Some(r) = self.ok_retransmit.as_mut().filter(|r| r.at <= now) {
                    r.backoff(now, Some(self.timers.t2));
                    out.extend(self.last_response.clone().map(Action::Transmit));
                }
            }
            State::Terminated => {}
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, timeout: bool) {
        self.state = State::Terminated;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
        self.ok_retransmit = None;
        self.guard = None;
        if timeout {
            out.push(Action::Timeout);
        }
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives the machine with a fake clock until `until`, recording the
    /// offsets (ms) at which something was transmitted.
    fn run(tx: &mut InviteServer, t0: Instant, until: Duration) -> (Vec<u64>, Vec<Action>) {
        let mut sent = Vec::new();
        let mut other = Vec::new();
        while let Some(at) = tx.next_deadline() {
            if at > t0 + until {
                break;
            }
            for a in tx.on_timeout(at) {
                match a {
                    Action::Transmit(_) => sent.push((at - t0).as_millis() as u64),
                    a => other.push(a),
                }
            }
        }
        (sent, other)
    }

    #[test]
    fn final_response_retransmitted_by_timer_g_until_h() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        assert_eq!(tx.respond(486, Bytes::from_static(b"486"), t0).len(), 1);
        assert_eq!(tx.state(), State::Completed);
        let (sent, other) = run(&mut tx, t0, Duration::from_secs(40));
        // G: 0.5, 1.5, 3.5, 7.5, then every T2=4 s, until H at 32 s.
        assert_eq!(
            sent,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(other, vec![Action::Timeout, Action::Terminated]);
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn ack_confirms_then_timer_i() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        tx.respond(404, Bytes::from_static(b"404"), t0);
        assert!(tx.on_ack(t0 + ms(700)).is_empty());
        assert_eq!(tx.state(), State::Confirmed);
        // retransmitted INVITE in Confirmed is absorbed
        assert!(tx.on_request_retransmit().is_empty());
        assert_eq!(
            tx.next_deadline(),
            Some(t0 + ms(700) + Duration::from_secs(5))
        );
        let out = tx.on_timeout(t0 + ms(5700));
        assert_eq!(out, vec![Action::Terminated]);
    }

    #[test]
    fn reliable_transport_no_retransmissions_and_immediate_i() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, true, TimerConfig::default());
        tx.respond(480, Bytes::from_static(b"480"), t0);
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(tx.on_ack(t0 + ms(10)), vec![Action::Terminated]);
    }

    #[test]
    fn provisional_resent_on_retransmitted_invite() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        assert!(tx.on_request_retransmit().is_empty());
        tx.respond(100, Bytes::from_static(b"100"), t0);
        tx.respond(180, Bytes::from_static(b"180"), t0);
        assert_eq!(
            tx.on_request_retransmit(),
            vec![Action::Transmit(Bytes::from_static(b"180"))]
        );
    }

    #[test]
    fn ok_retransmitted_until_ack_then_accepted_until_l() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        tx.respond(200, Bytes::from_static(b"200"), t0);
        assert_eq!(tx.state(), State::Accepted);
        assert_eq!(tx.on_timeout(t0 + ms(500)).len(), 1);
        assert_eq!(tx.on_timeout(t0 + ms(1500)).len(), 1);
        tx.on_ack(t0 + ms(1600));
        assert!(tx.is_acked());
        // INVITE retransmission absorbed in Accepted (RFC 6026 §7.1)
        assert!(tx.on_request_retransmit().is_empty());
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.on_timeout(t0 + Duration::from_secs(32)),
            vec![Action::Terminated]
        );
    }

    #[test]
    fn only_an_acked_final_response_is_retired() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        assert_eq!(tx.retention(), None);
        tx.respond(486, Bytes::from_static(b"486"), t0);
        assert_eq!(tx.retention(), None, "G resends the 486 until the ACK");
        tx.on_ack(t0 + ms(100));
        assert_eq!(tx.retention(), Some((t0 + ms(5100), false)));

        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        tx.respond(200, Bytes::from_static(b"200"), t0);
        assert_eq!(tx.retention(), None, "the 2xx is resent until the ACK");
        tx.on_ack(t0 + ms(100));
        assert_eq!(tx.retention(), Some((t0 + Duration::from_secs(32), true)));
    }

    #[test]
    fn ok_never_acked_times_out() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        tx.respond(200, Bytes::from_static(b"200"), t0);
        let (sent, other) = run(&mut tx, t0, Duration::from_secs(40));
        assert_eq!(sent.first(), Some(&500));
        assert_eq!(sent.len(), 10);
        assert_eq!(other, vec![Action::Timeout, Action::Terminated]);
    }

    #[test]
    fn unanswered_invite_is_eventually_dropped() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(t0, false, TimerConfig::default());
        assert_eq!(tx.next_deadline(), Some(t0 + PROCEEDING_GUARD));
        assert_eq!(
            tx.on_timeout(t0 + PROCEEDING_GUARD),
            vec![Action::Timeout, Action::Terminated]
        );
    }
}
