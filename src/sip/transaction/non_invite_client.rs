//! Non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! ```text
//!   Trying --1xx--> Proceeding --final--> Completed --K--> Terminated
//!     `--F--> Terminated (timeout)
//! ```
//! Timer E retransmits over UDP: doubling from T1 up to T2 while Trying,
//! every T2 once a provisional response arrived (§17.1.2.2).

use super::Action;
use super::timers::{Retransmit, TimerConfig, due, earliest};
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct NonInviteClient {
    state: State,
    reliable: bool,
    timers: TimerConfig,
    request: Bytes,
    timer_e: Option<Retransmit>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
}

impl NonInviteClient {
    pub fn new(
        request: Bytes,
        now: Instant,
        reliable: bool,
        timers: TimerConfig,
    ) -> (Self, Vec<Action>) {
        let tx = NonInviteClient {
            state: State::Trying,
            reliable,
            timers,
            request: request.clone(),
            timer_e: (!reliable).then(|| Retransmit::start(now, timers.t1)),
            timer_f: Some(now + timers.t64()),
            timer_k: None,
        };
        (tx, vec![Action::Transmit(request)])
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn on_response(&mut self, status: u16, now: Instant) -> Vec<Action> {
        match self.state {
            State::Trying | State::Proceeding if status < 200 => {
                self.state = State::Proceeding;
                vec![Action::Deliver]
            }
            State::Trying | State::Proceeding => {
                self.state = State::Completed;
                self.timer_e = None;
                self.timer_f = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                if wait.is_zero() {
                    self.state = State::Terminated;
                    return vec![Action::Deliver, Action::Terminated];
                }
                self.timer_k = Some(now + wait);
                vec![Action::Deliver]
            }
            _ => Vec::new(),
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[self.timer_e.map(|t| t.at), self.timer_f, self.timer_k])
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        if due(self.timer_f, now) {
            self.finish();
            return vec![Action::Timeout, Action::Terminated];
        }
        if due(self.timer_k, now) {
            self.finish();
            return vec![Action::Terminated];
        }
        let proceeding = self.state == State::Proceeding;
        let t2 = self.timers.t2;
        if let Some(e) = self.timer_e.as_mut().filter(|e| e.at <= now) {
            if proceeding {
                e.interval = t2;
                e.at = now + t2;
            } else {
                e.backoff(now, Some(t2));
            }
            return vec![Action::Transmit(self.request.clone())];
        }
        Vec::new()
    }

    fn finish(&mut self) {
        self.state = State::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(tx: &mut NonInviteClient, t0: Instant) -> (Vec<u128>, Vec<Action>) {
        let mut sent = Vec::new();
        let mut other = Vec::new();
        while let Some(at) = tx.next_deadline() {
            for a in tx.on_timeout(at) {
                match a {
                    Action::Transmit(_) => sent.push((at - t0).as_millis()),
                    a => other.push(a),
                }
            }
        }
        (sent, other)
    }

    #[test]
    fn timer_e_caps_at_t2_and_f_times_out() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(Bytes::new(), t0, false, TimerConfig::default());
        let (sent, other) = schedule(&mut tx, t0);
        assert_eq!(
            sent,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(other, vec![Action::Timeout, Action::Terminated]);
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(Bytes::new(), t0, false, TimerConfig::default());
        tx.on_response(100, t0 + Duration::from_millis(100));
        let (sent, _) = schedule(&mut tx, t0);
        assert_eq!(sent[..3], [500, 4500, 8500]);
    }

    #[test]
    fn final_then_k() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(Bytes::new(), t0, false, TimerConfig::default());
        assert_eq!(tx.on_response(200, t0), vec![Action::Deliver]);
        assert!(tx.on_response(200, t0).is_empty());
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(5)));
        let (sent, other) = schedule(&mut tx, t0);
        assert!(sent.is_empty());
        assert_eq!(other, vec![Action::Terminated]);
    }

    #[test]
    fn reliable_has_no_e_and_no_k() {
        let t0 = Instant::now();
        let (mut tx, _) = NonInviteClient::new(Bytes::new(), t0, true, TimerConfig::default());
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.on_response(401, t0),
            vec![Action::Deliver, Action::Terminated]
        );
    }
}
