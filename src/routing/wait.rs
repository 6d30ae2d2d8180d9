//! A queue's estimated wait, sans-IO: an exponentially weighted moving
//! average of recent time-to-agent, normalised by the position each
//! contact had when it joined the line, so one figure answers "how long
//! for the contact at position p" (p × the average time one place in line
//! takes). Until a first contact of the queue has reached an agent, a
//! configured cold-start figure per place in line is shared among the
//! agents online.
//!
//! Asterisk's app_queue keeps a similar running hold time with weight 1/4
//! for the newest sample (`holdtime = (3 × holdtime + new) / 4`); the same
//! weight here lets the estimate follow a change of load within a handful
//! of contacts without jumping on one outlier.

pub type Ms = i64;

/// The newest sample's weight.
const ALPHA: f64 = 0.25;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WaitEstimate {
    /// Average time one place in line took, in ms (None: no sample yet).
    per_place_ms: Option<f64>,
    samples: u64,
}

impl WaitEstimate {
    /// A contact reached an agent after `waited` ms, having joined the line
    /// at `position` (1 = first).
    pub fn observe(&mut self, waited: Ms, position: usize) {
        let sample = waited.max(0) as f64 / position.max(1) as f64;
        self.per_place_ms = Some(match self.per_place_ms {
            None => sample,
            Some(avg) => avg + ALPHA * (sample - avg),
        });
        self.samples += 1;
    }

    /// How many contacts have reached an agent (the figure is warm once
    /// this is above 0).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The average time one place in line takes, seconds (None while
    /// cold).
    pub fn per_place_s(&self) -> Option<f64> {
        self.per_place_ms.map(|ms| ms / 1000.0)
    }

    /// Expected seconds until the contact at `position` reaches an agent.
    pub fn estimate_s(&self, position: u64, agents_online: usize, cold_start_s: u64) -> u64 {
        match self.per_place_ms {
            Some(ms) => (ms * position as f64 / 1000.0).round() as u64,
            None => position.saturating_mul(cold_start_s) / agents_online.max(1) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_start_is_shared_among_agents() {
        let w = WaitEstimate::default();
        assert_eq!(w.samples(), 0);
        assert_eq!(w.estimate_s(3, 0, 120), 360, "no agent counts as one");
        assert_eq!(w.estimate_s(3, 2, 120), 180);
        assert_eq!(w.per_place_s(), None);
    }

    #[test]
    fn the_first_sample_sets_it_then_each_moves_it_a_quarter() {
        let mut w = WaitEstimate::default();
        // Joined third, waited 90 s: 30 s a place.
        w.observe(90_000, 3);
        assert_eq!(w.estimate_s(1, 5, 120), 30, "cold start no longer used");
        assert_eq!(w.estimate_s(4, 5, 120), 120);
        // A contact first in line waited 70 s: 30 + (70 - 30) / 4 = 40.
        w.observe(70_000, 1);
        assert_eq!(w.per_place_s(), Some(40.0));
        assert_eq!(w.estimate_s(2, 1, 120), 80);
        assert_eq!(w.samples(), 2);
    }

    #[test]
    fn it_converges_on_a_steady_load_and_survives_odd_input() {
        let mut w = WaitEstimate::default();
        w.observe(600_000, 1);
        for _ in 0..40 {
            w.observe(20_000, 2);
        }
        assert_eq!(w.estimate_s(1, 1, 120), 10);
        w.observe(-5, 0);
        w.observe(i64::MAX, 1);
        assert!(w.estimate_s(u64::MAX, 1, 120) > 0, "saturates, no panic");
    }
}
