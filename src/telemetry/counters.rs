//! SIP counters: responses by status code and direction, transactions by
//! role, method and outcome. Fixed arrays of atomics: recording never
//! locks nor allocates, whatever a peer sends.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

const CODES: usize = 600; // 100..=699

/// Responses sent and received, by status code.
pub struct StatusCounts {
    sent: Vec<AtomicU64>,
    received: Vec<AtomicU64>,
}

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts {
            sent: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
            received: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl std::fmt::Debug for StatusCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusCounts").finish_non_exhaustive()
    }
}

impl StatusCounts {
    fn slot(v: &[AtomicU64], code: u16) -> Option<&AtomicU64> {
        v.get(usize::from(code).checked_sub(100)?)
    }

    pub fn sent(&self, code: u16) {
        if let Some(c) = Self::slot(&self.sent, code) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn received(&self, code: u16) {
        if let Some(c) = Self::slot(&self.received, code) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (direction, code, count) for every code seen.
    pub fn snapshot(&self) -> Vec<(&'static str, u16, u64)> {
        let mut out = Vec::new();
        for (dir, v) in [("sent", &self.sent), ("received", &self.received)] {
            for (i, c) in v.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    out.push((dir, i as u16 + 100, n));
                }
            }
        }
        out
    }

    pub fn render(&self, out: &mut String) {
        let name = "callgate_sip_responses_total";
        let _ = writeln!(
            out,
            "# HELP {name} SIP responses by direction and status code.\n# TYPE {name} counter"
        );
        for (dir, code, n) in self.snapshot() {
            let _ = writeln!(out, "{name}{{direction=\"{dir}\",code=\"{code}\"}} {n}");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxRole {
    /// Our request.
    Client,
    /// A peer's request.
    Server,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// A final response of this class (2 to 6).
    Final(u16),
    /// No final response (Timer B/F): treated as 408.
    Timeout,
    /// A final response to an INVITE was never ACKed (Timer H).
    NoAck,
}

const METHODS: [&str; 8] = [
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "other",
];
const OUTCOMES: [&str; 7] = ["2xx", "3xx", "4xx", "5xx", "6xx", "timeout", "no_ack"];

/// Transactions by role, method and outcome.
pub struct TxCounts {
    counts: Vec<AtomicU64>,
}

impl Default for TxCounts {
    fn default() -> Self {
        TxCounts {
            counts: (0..2 * METHODS.len() * OUTCOMES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl std::fmt::Debug for TxCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxCounts").finish_non_exhaustive()
    }
}

impl TxCounts {
    pub fn ended(&self, role: TxRole, method: &str, outcome: TxOutcome) {
        let r = match role {
            TxRole::Client => 0,
            TxRole::Server => 1,
        };
        let m = METHODS
            .iter()
            .position(|x| x.eq_ignore_ascii_case(method))
            .unwrap_or(METHODS.len() - 1);
        let o = match outcome {
            TxOutcome::Final(s) if (200..700).contains(&s) => usize::from(s / 100 - 2),
            TxOutcome::Final(_) => return,
            TxOutcome::Timeout => 5,
            TxOutcome::NoAck => 6,
        };
        self.counts[(r * METHODS.len() + m) * OUTCOMES.len() + o].fetch_add(1, Ordering::Relaxed);
    }

    /// (role, method, outcome, count) for every combination seen.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (r, role) in ["client", "server"].into_iter().enumerate() {
            for (m, method) in METHODS.into_iter().enumerate() {
                for (o, outcome) in OUTCOMES.into_iter().enumerate() {
                    let n = self.counts[(r * METHODS.len() + m) * OUTCOMES.len() + o]
                        .load(Ordering::Relaxed);
                    if n > 0 {
                        out.push((role, method, outcome, n));
                    }
                }
            }
        }
        out
    }

    pub fn render(&self, out: &mut String) {
        let name = "callgate_sip_transactions_total";
        let _ = writeln!(
            out,
            "# HELP {name} SIP transactions ended, by role, method and outcome.\n# TYPE {name} counter"
        );
        for (role, method, outcome, n) in self.snapshot() {
            let _ = writeln!(
                out,
                "{name}{{role=\"{role}\",method=\"{method}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_outside_the_range_are_ignored() {
        let c = StatusCounts::default();
        c.sent(200);
        c.sent(200);
        c.received(699);
        c.received(99);
        c.received(700);
        c.sent(0);
        assert_eq!(c.snapshot(), vec![("sent", 200, 2), ("received", 699, 1)]);
    }

    #[test]
    fn transactions_by_role_method_and_outcome() {
        let t = TxCounts::default();
        t.ended(TxRole::Client, "INVITE", TxOutcome::Final(486));
        t.ended(TxRole::Server, "register", TxOutcome::Final(200));
        t.ended(TxRole::Server, "SUBSCRIBE", TxOutcome::Final(501));
        t.ended(TxRole::Client, "OPTIONS", TxOutcome::Timeout);
        t.ended(TxRole::Server, "INVITE", TxOutcome::NoAck);
        t.ended(TxRole::Server, "INVITE", TxOutcome::Final(180));
        assert_eq!(
            t.snapshot(),
            vec![
                ("client", "INVITE", "4xx", 1),
                ("client", "OPTIONS", "timeout", 1),
                ("server", "INVITE", "no_ack", 1),
                ("server", "REGISTER", "2xx", 1),
                ("server", "other", "5xx", 1),
            ]
        );
    }
}
