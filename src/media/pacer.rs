//! The pacing thread: sends every leg's next packet on a steady 20 ms (or
//! negotiated ptime) clock.
//!
//! tokio's timer has 1 ms granularity and wakes 1–2 ms late on average,
//! worse under load; thousands of streams need better. Each pacer is a
//! plain OS thread with a deadline heap. Deadlines sit on a fine grid
//! (`GRID`, a divisor of every ptime) and are absolute (`start + k·ptime`),
//! so lateness never accumulates and all packets due at one grid point go
//! out in one batch after one wake-up. The thread sleeps with its timer
//! slack cut to 1 µs and spins only the last few microseconds. Several
//! pacers share the legs when there are several cores.

use super::leg::LegShared;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Deadline grid: 250 µs divides 10, 20, 30… ms ptimes.
const GRID: Duration = Duration::from_micros(250);
/// Sleep until this close to a deadline, then spin. Even with the timer
/// slack at 1 µs a wake-up can be 100+ µs late on a busy or virtualised
/// host; spinning the last 30 µs halved p99 lateness at 3,000 streams in
/// `benches/rtp_pacing.rs` for a few percent of CPU.
/// `CALLGATE_PACER_SPIN_US` overrides it for experiments.
fn spin() -> Duration {
    static SPIN: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = std::env::var("CALLGATE_PACER_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        Duration::from_micros(us)
    })
}

/// The first grid point at or after `t`, measured from `origin`.
fn on_grid(origin: Instant, t: Instant) -> Instant {
    let since = t.saturating_duration_since(origin).as_nanos();
    let g = GRID.as_nanos().max(1);
    let steps = since.div_ceil(g);
    origin + Duration::from_nanos((steps * g) as u64)
}
/// Further behind than this (an overloaded or suspended host), the
/// schedule is rebased instead of sending a burst of catch-up packets.
const MAX_BEHIND: Duration = Duration::from_millis(100);

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 1001;

/// Send-time statistics: lateness against the ideal schedule, and the
/// deviation of each stream's inter-packet interval from its ptime, in
/// 10 µs buckets up to 10 ms.
pub struct PacerStats {
    lateness: Vec<AtomicU64>,
    interval_dev: Vec<AtomicU64>,
    pub sent: AtomicU64,
    pub send_errors: AtomicU64,
    max_late_us: AtomicU64,
}

impl Default for PacerStats {
    fn default() -> Self {
        PacerStats {
            lateness: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            interval_dev: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            max_late_us: AtomicU64::new(0),
        }
    }
}

fn bucket(d: Duration) -> usize {
    ((d.as_micros() as u64 / BUCKET_US) as usize).min(BUCKETS - 1)
}

fn percentile(buckets: &[AtomicU64], p: f64) -> Duration {
    let counts: Vec<u64> = buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Duration::ZERO;
    }
    let target = ((total as f64) * p).ceil() as u64;
    let mut acc = 0;
    for (i, c) in counts.iter().enumerate() {
        acc += c;
        if acc >= target {
            return Duration::from_micros((i as u64 + 1) * BUCKET_US);
        }
    }
    Duration::from_micros(BUCKETS as u64 * BUCKET_US)
}

impl PacerStats {
    fn record(&self, late: Duration, interval_dev: Option<Duration>) {
        if let Some(b) = self.lateness.get(bucket(late)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = interval_dev.and_then(|d| self.interval_dev.get(bucket(d))) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.max_late_us
            .fetch_max(late.as_micros() as u64, Ordering::Relaxed);
    }

    /// Upper bound of the bucket holding the p-th lateness quantile.
    pub fn lateness(&self, p: f64) -> Duration {
        percentile(&self.lateness, p)
    }

    /// Same for |interval − ptime|, the jitter a receiver sees.
    pub fn interval_jitter(&self, p: f64) -> Duration {
        percentile(&self.interval_dev, p)
    }

    pub fn max_lateness(&self) -> Duration {
        Duration::from_micros(self.max_late_us.load(Ordering::Relaxed))
    }

    pub fn reset(&self) {
        for b in self.lateness.iter().chain(self.interval_dev.iter()) {
            b.store(0, Ordering::Relaxed);
        }
        self.sent.store(0, Ordering::Relaxed);
        self.send_errors.store(0, Ordering::Relaxed);
        self.max_late_us.store(0, Ordering::Relaxed);
    }
}

pub struct Pacer {
    tx: mpsc::Sender<Arc<LegShared>>,
    pub stats: Arc<PacerStats>,
}

struct Entry {
    leg: Arc<LegShared>,
    last_sent: Option<Instant>,
}

impl Pacer {
    pub fn spawn(name: String, realtime: bool) -> std::io::Result<Pacer> {
        let (tx, rx) = mpsc::channel::<Arc<LegShared>>();
        let stats = Arc::new(PacerStats::default());
        let s = stats.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(rx, s, realtime))?;
        Ok(Pacer { tx, stats })
    }

    /// Starts pacing a leg; it is dropped from the schedule once closed.
    pub fn add(&self, leg: Arc<LegShared>) {
        let _ = self.tx.send(leg);
    }
}

fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack
    // (default 50 µs) and takes plain integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Asks for real-time (SCHED_FIFO) scheduling, so that bursts of other
/// work on the host do not delay packets. Needs root or CAP_SYS_NICE;
/// without them the thread stays a normal one.
fn try_realtime() -> bool {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 10 };
        // SAFETY: sched_setscheduler on the calling thread (pid 0) with a
        // valid, initialised parameter struct.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

fn run(rx: mpsc::Receiver<Arc<LegShared>>, stats: Arc<PacerStats>, realtime: bool) {
    tighten_timer_slack();
    if realtime && !try_realtime() {
        tracing::warn!(
            "real-time scheduling for the RTP pacer refused; running as a normal thread"
        );
    }
    let origin = Instant::now();
    let mut entries: HashMap<u64, Entry> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut buf = [0u8; 1500];
    let add = |leg: Arc<LegShared>,
               entries: &mut HashMap<u64, Entry>,
               heap: &mut BinaryHeap<Reverse<(Instant, u64)>>| {
        let id = leg.id();
        heap.push(Reverse((on_grid(origin, Instant::now()), id)));
        entries.insert(
            id,
            Entry {
                leg,
                last_sent: None,
            },
        );
    };
    loop {
        while let Ok(leg) = rx.try_recv() {
            add(leg, &mut entries, &mut heap);
        }
        let Some(&Reverse((due, id))) = heap.peek() else {
            match rx.recv() {
                Ok(leg) => {
                    add(leg, &mut entries, &mut heap);
                    continue;
                }
                Err(_) => return,
            }
        };
        let now = Instant::now();
        if due > now {
            let wait = due - now;
            let spin = spin();
            if wait > spin {
                match rx.recv_timeout(wait - spin) {
                    Ok(leg) => add(leg, &mut entries, &mut heap),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        if entries.is_empty() {
                            return;
                        }
                    }
                }
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        heap.pop();
        let Some(entry) = entries.get_mut(&id) else {
            continue;
        };
        if entry.leg.is_closed() {
            entries.remove(&id);
            continue;
        }
        let tick = entry.leg.tick(&mut buf, now);
        if let Some((len, dest)) = tick.send {
            let sent_at = Instant::now();
            match entry.leg.send_raw(buf.get(..len).unwrap_or_default(), dest) {
                Ok(_) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let dev = entry.last_sent.map(|prev| {
                let iv = sent_at.saturating_duration_since(prev);
                iv.abs_diff(tick.period)
            });
            stats.record(sent_at.saturating_duration_since(due), dev);
            entry.last_sent = Some(sent_at);
        } else {
            entry.last_sent = None;
        }
        let mut next = due + tick.period;
        if now.saturating_duration_since(next) > MAX_BEHIND {
            next = on_grid(origin, now + tick.period);
            entry.last_sent = None;
        }
        heap.push(Reverse((next, id)));
    }
}
