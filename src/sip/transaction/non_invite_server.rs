//! Non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//!   Trying --1xx--> Proceeding --final--> Completed --J--> Terminated
//! ```

use super::Action;
use super::timers::{TimerConfig, due, earliest};
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
pub struct NonInviteServer {
    state: State,
    reliable: bool,
    timers: TimerConfig,
    last_response: Option<Bytes>,
    timer_j: Option<Instant>,
    /// If the TU never answers, the client gave up after 64·T1 (Timer F);
    /// we drop the transaction a little later so memory stays bounded.
    guard: Option<Instant>,
}

impl NonInviteServer {
    pub fn new(now: Instant, reliable: bool, timers: TimerConfig) -> Self {
        NonInviteServer {
            state: State::Trying,
            reliable,
            timers,
            last_response: None,
            timer_j: None,
            guard: Some(now + timers.t64() * 2),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Trying absorbs retransmissions; later states resend the last response.
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

    pub fn respond(&mut self, status: u16, bytes: Bytes, now: Instant) -> Vec<Action> {
        match self.state {
            State::Trying | State::Proceeding => {
                self.last_response = Some(bytes.clone());
                if status < 200 {
                    self.state = State::Proceeding;
                    return vec![Action::Transmit(bytes)];
                }
                self.state = State::Completed;
                self.guard = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t64()
                };
                if wait.is_zero() {
                    self.state = State::Terminated;
                    return vec![Action::Transmit(bytes), Action::Terminated];
                }
                self.timer_j = Some(now + wait);
                vec![Action::Transmit(bytes)]
            }
            _ => Vec::new(),
        }
    }

    /// Once the final response is sent over an unreliable transport, all
    /// that is left to do is resend it to retransmissions until Timer J
    /// (§17.2.2): the response bytes and that deadline, which the layer
    /// keeps in place of the machine.
    pub fn retention(&self) -> Option<(Option<Bytes>, Instant)> {
        match (self.state, self.timer_j) {
            (State::Completed, Some(j)) => Some((self.last_response.clone(), j)),
            _ => None,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[self.timer_j, self.guard])
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        if due(self.timer_j, now) || due(self.guard, now) {
            self.state = State::Terminated;
            self.timer_j = None;
            self.guard = None;
            return vec![Action::Terminated];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trying_absorbs_then_completed_resends_until_j() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::new(t0, false, TimerConfig::default());
        assert!(tx.on_request_retransmit().is_empty());
        tx.respond(200, Bytes::from_static(b"200"), t0);
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(
            tx.on_request_retransmit(),
            vec![Action::Transmit(Bytes::from_static(b"200"))]
        );
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
        assert!(tx.on_timeout(t0 + Duration::from_secs(31)).is_empty());
        assert_eq!(
            tx.on_timeout(t0 + Duration::from_secs(32)),
            vec![Action::Terminated]
        );
        // a second final response is ignored
        assert!(tx.respond(500, Bytes::new(), t0).is_empty());
    }

    #[test]
    fn completed_keeps_only_the_response_until_j() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::new(t0, false, TimerConfig::default());
        assert_eq!(tx.retention(), None, "still waiting for the TU");
        tx.respond(100, Bytes::from_static(b"100"), t0);
        assert_eq!(tx.retention(), None, "a provisional is not final");
        tx.respond(200, Bytes::from_static(b"200"), t0 + Duration::from_secs(1));
        assert_eq!(
            tx.retention(),
            Some((
                Some(Bytes::from_static(b"200")),
                t0 + Duration::from_secs(33)
            ))
        );
    }

    #[test]
    fn reliable_terminates_on_final() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::new(t0, true, TimerConfig::default());
        assert_eq!(tx.respond(100, Bytes::from_static(b"100"), t0).len(), 1);
        assert_eq!(tx.state(), State::Proceeding);
        assert_eq!(
            tx.on_request_retransmit(),
            vec![Action::Transmit(Bytes::from_static(b"100"))]
        );
        assert_eq!(
            tx.respond(200, Bytes::from_static(b"200"), t0),
            vec![
                Action::Transmit(Bytes::from_static(b"200")),
                Action::Terminated
            ]
        );
    }

    #[test]
    fn unanswered_request_is_dropped() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::new(t0, false, TimerConfig::default());
        assert_eq!(
            tx.on_timeout(t0 + Duration::from_secs(64)),
            vec![Action::Terminated]
        );
    }
}
