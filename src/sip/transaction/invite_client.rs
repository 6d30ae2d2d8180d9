//! INVITE client transaction (RFC 3261 §17.1.1, as updated by RFC 6026).
//!
//! ```text
//!   Calling --1xx--> Proceeding --3xx-6xx--> Completed --D--> Terminated
//!      |  `--B--> Terminated (timeout)   `--2xx--> Accepted --M--> Terminated
//! ```
//! Timer A retransmits the INVITE over UDP with a doubling interval (no T2
//! cap, §17.1.1.2). The ACK for a non-2xx is this machine's job; the ACK for
//! a 2xx belongs to the dialog (§13.2.2.4), so 2xx retransmissions in
//! Accepted are delivered again for the TU to re-ACK.

use super::Action;
use super::timers::{Retransmit, TimerConfig, due, earliest};
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub struct InviteClient {
    state: State,
    reliable: bool,
    timers: TimerConfig,
    request: Bytes,
    timer_a: Option<Retransmit>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
}

impl InviteClient {
    /// Creates the transaction and returns the first transmission.
    pub fn new(
        request: Bytes,
        now: Instant,
        reliable: bool,
        timers: TimerConfig,
    ) -> (Self, Vec<Action>) {
        let tx = InviteClient {
            state: State::Calling,
            reliable,
            timers,
            request: request.clone(),
            timer_a: (!reliable).then(|| Retransmit::start(now, timers.t1)),
            timer_b: Some(now + timers.t64()),
            timer_d: None,
            timer_m: None,
        };
        (tx, vec![Action::Transmit(request)])
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn on_response(&mut self, status: u16, now: Instant) -> Vec<Action> {
        match (self.state, status) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.timer_a = None;
                vec![Action::Deliver]
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_m = Some(now + self.timers.t64());
                vec![Action::Deliver]
            }
            (State::Calling | State::Proceeding, _) => {
                self.state = State::Completed;
                self.timer_a = None;
                self.timer_b = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                let mut out = vec![Action::SendAck, Action::Deliver];
                if wait.is_zero() {
                    self.state = State::Terminated;
                    out.push(Action::Terminated);
                } else {
                    self.timer_d = Some(now + wait);
                }
                out
            }
            // A retransmitted final response: resend the ACK, tell nobody.
            (State::Completed, 300..=699) => vec![Action::SendAck],
            // RFC 6026 §8.4: every 2xx in Accepted goes to the TU.
            (State::Accepted, 200..=299) => vec![Action::Deliver],
            _ => Vec::new(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[
            self.timer_a.map(|t| t.at),
            self.timer_b,
            self.timer_d,
            self.timer_m,
        ])
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if due(self.timer_b, now) {
            self.finish();
            out.push(Action::Timeout);
            out.push(Action::Terminated);
        } else if due(self.timer_d, now) || due(self.timer_m, now) {
            self.finish();
            out.push(Action::Terminated);
        } else if let Some(a) = self.timer_a.as_mut().filter(|a| a.at <= now) {
            a.backoff(now, None);
            out.push(Action::Transmit(self.request.clone()));
        }
        out
    }

    fn finish(&mut self) {
        self.state = State::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timer_a_doubles_until_b() {
        let t0 = Instant::now();
        let (mut tx, first) = InviteClient::new(
            Bytes::from_static(b"INVITE"),
            t0,
            false,
            TimerConfig::default(),
        );
        assert_eq!(first.len(), 1);
        let mut sent = Vec::new();
        let mut end = Vec::new();
        while let Some(at) = tx.next_deadline() {
            for a in tx.on_timeout(at) {
                match a {
                    Action::Transmit(_) => sent.push((at - t0).as_millis()),
                    a => end.push((a, (at - t0).as_millis())),
                }
            }
        }
        // A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B fires at 32 s.
        assert_eq!(sent, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(
            end,
            vec![(Action::Timeout, 32000), (Action::Terminated, 32000)]
        );
    }

    #[test]
    fn provisional_stops_a_but_not_b() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(Bytes::new(), t0, false, TimerConfig::default());
        assert_eq!(tx.on_response(180, t0 + ms(100)), vec![Action::Deliver]);
        assert_eq!(tx.state(), State::Proceeding);
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn non_2xx_is_acked_and_retransmissions_reacked() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(Bytes::new(), t0, false, TimerConfig::default());
        assert_eq!(
            tx.on_response(486, t0 + ms(10)),
            vec![Action::SendAck, Action::Deliver]
        );
        assert_eq!(tx.on_response(486, t0 + ms(600)), vec![Action::SendAck]);
        assert_eq!(
            tx.next_deadline(),
            Some(t0 + ms(10) + Duration::from_secs(32))
        );
        assert_eq!(tx.on_timeout(t0 + ms(32010)), vec![Action::Terminated]);
    }

    #[test]
    fn reliable_non_2xx_terminates_at_once() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(Bytes::new(), t0, true, TimerConfig::default());
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.on_response(603, t0),
            vec![Action::SendAck, Action::Deliver, Action::Terminated]
        );
    }

    #[test]
    fn ok_retransmissions_delivered_in_accepted() {
        let t0 = Instant::now();
        let (mut tx, _) = InviteClient::new(Bytes::new(), t0, false, TimerConfig::default());
        assert_eq!(tx.on_response(200, t0), vec![Action::Deliver]);
        assert_eq!(tx.state(), State::Accepted);
        assert_eq!(tx.on_response(200, t0 + ms(500)), vec![Action::Deliver]);
        assert!(tx.on_response(486, t0 + ms(600)).is_empty());
        assert_eq!(
            tx.on_timeout(t0 + Duration::from_secs(32)),
            vec![Action::Terminated]
        );
    }
}
