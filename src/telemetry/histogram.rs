//! Prometheus histograms: cumulative buckets with fixed upper bounds, a
//! sum and a count. Recording is a few relaxed atomic adds; label sets
//! are looked up under a short lock (their number is bounded by the
//! configuration: queues, legs).

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds: a caller's wait in a queue, up to an hour.
pub const WAIT_BUCKETS: [f64; 12] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];
/// Seconds: a phone ringing, up to the longest ring timeouts.
pub const RING_BUCKETS: [f64; 11] = [0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0];
/// Seconds: INVITE to the first answer beyond 100 Trying.
pub const SETUP_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct Histogram {
    bounds: &'static [f64],
    /// Observations ≤ each bound (not cumulative here), then above all.
    buckets: Vec<AtomicU64>,
    /// In microseconds, so that it can be an atomic integer.
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let s = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = self
            .bounds
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((s * 1e6).round() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `_bucket`, `_sum` and `_count` lines, `labels` being the
    /// series' own (already rendered, `k="v"` pairs joined by commas).
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// A histogram per label set.
pub struct HistogramFamily {
    pub name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Vec<String>, Arc<Histogram>>>,
}

/// A label value in the exposition format.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl HistogramFamily {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> HistogramFamily {
        HistogramFamily {
            name,
            help,
            labels,
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records `seconds` for the label values `values` (one per label).
    pub fn observe(&self, values: &[&str], seconds: f64) {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let h = self
            .series
            .lock()
            .entry(key)
            .or_insert_with(|| Arc::new(Histogram::new(self.bounds)))
            .clone();
        h.observe(seconds);
    }

    /// Observations so far for `values`.
    pub fn count(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.series.lock().get(&key).map_or(0, |h| h.count())
    }

    /// HELP, TYPE and every series.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} histogram",
            self.name, self.help, self.name
        );
        let series: Vec<(Vec<String>, Arc<Histogram>)> = self
            .series
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (values, h) in series {
            let labels: Vec<String> = self
                .labels
                .iter()
                .zip(&values)
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            h.render(self.name, &labels.join(","), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_every_observation() {
        static B: [f64; 2] = [1.0, 5.0];
        let f = HistogramFamily::new("t_seconds", "Test.", &["q"], &B);
        f.observe(&["a"], 0.5);
        f.observe(&["a"], 1.0);
        f.observe(&["a"], 3.0);
        f.observe(&["a"], 99.0);
        f.observe(&["b\"x"], f64::NAN);
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.starts_with("# HELP t_seconds Test.\n# TYPE t_seconds histogram\n"));
        assert!(
            out.contains("t_seconds_bucket{q=\"a\",le=\"1\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("t_seconds_bucket{q=\"a\",le=\"5\"} 3\n"));
        assert!(out.contains("t_seconds_bucket{q=\"a\",le=\"+Inf\"} 4\n"));
        assert!(out.contains("t_seconds_sum{q=\"a\"} 103.5\n"));
        assert!(out.contains("t_seconds_count{q=\"a\"} 4\n"));
        assert!(out.contains("t_seconds_count{q=\"b\\\"x\"} 1\n"));
        assert_eq!(f.count(&["a"]), 4);
    }
}
