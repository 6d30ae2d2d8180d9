//! Measurements the rest of the gateway records and `/metrics` exports:
//! histograms (queue wait, ring time, call set-up time) and counters (SIP
//! responses by status code, transactions by outcome). Lock-free on the
//! recording side; the lowest layer, so any part of the gateway may
//! record.

pub mod counters;
pub mod histogram;

pub use counters::{StatusCounts, TxCounts, TxOutcome, TxRole};
pub use histogram::{Histogram, HistogramFamily};

/// Outbound INVITEs: from sending to the first response beyond 100
/// Trying (post-dial delay), recorded by the endpoint.
pub struct CallSetup(pub Histogram);

impl Default for CallSetup {
    fn default() -> Self {
        CallSetup(Histogram::new(&histogram::SETUP_BUCKETS))
    }
}

impl std::fmt::Debug for CallSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSetup").finish_non_exhaustive()
    }
}

impl CallSetup {
    pub const NAME: &'static str = "callgate_call_setup_seconds";

    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP {n} Outbound INVITEs: time from sending to the first response beyond 100 Trying.\n# TYPE {n} histogram",
            n = Self::NAME
        );
        self.0.render(Self::NAME, "", out);
    }
}

/// The histograms of the contact centre (`centre` and `dialer` record,
/// `http` exports).
pub struct CentreHistograms {
    /// From a contact becoming routable to an agent taking it, by queue and
    /// kind (`voice`, `callback`).
    pub queue_wait: HistogramFamily,
    /// From the INVITE leaving to the answer or giving up, by leg
    /// (`agent`: an offer; `customer`: a callback dial).
    pub ring: HistogramFamily,
}

impl Default for CentreHistograms {
    fn default() -> Self {
        CentreHistograms {
            queue_wait: HistogramFamily::new(
                "callgate_queue_wait_seconds",
                "Time from a contact becoming routable to an agent taking it.",
                &["queue", "kind"],
                &histogram::WAIT_BUCKETS,
            ),
            ring: HistogramFamily::new(
                "callgate_ring_seconds",
                "Time from the INVITE leaving to the answer or giving up.",
                &["leg"],
                &histogram::RING_BUCKETS,
            ),
        }
    }
}
