//! The live view behind the dashboard. One task, whatever the number of
//! dashboards open, looks at the centre once a second and publishes the
//! board (queues, agents, pending callbacks) when it changed, and every
//! 10 s adds a sample (queue depth, oldest age) to an hour-long ring per
//! queue. Streams (`events.rs`) only forward what it publishes. The board
//! carries start times, not ages, so that it changes only when something
//! happens; the page counts the seconds.

use super::api::{AgentView, QueueView, agent_views, queue_views};
use crate::app::App;
use crate::centre::now_ms;
use crate::store::{CallbackFilter, CallbackRecord, DayCounts};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// A sample every this often…
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// …kept for an hour.
pub const SAMPLES: usize = 360;
/// Pending callbacks sent to the board at most (the newest).
const BOARD_CALLBACKS: usize = 200;
/// The day's counts are re-read this often.
const TODAY_EVERY_MS: i64 = 5_000;

/// A callback as the board shows it: the number masked.
#[derive(Serialize)]
pub struct CallbackLine {
    id: String,
    queue: String,
    /// All but the last four digits hidden.
    number: String,
    state: &'static str,
    attempts: u32,
    max_retries: u32,
    /// When it will be dialled at the earliest: after its initial delay,
    /// retry interval or the time asked for, within its queue's callback
    /// hours.
    next_attempt_ms: Option<i64>,
    /// When the caller first called: the callback's place in line.
    initial_start_ms: i64,
    created_ms: i64,
    agent: Option<String>,
    last_outcome: Option<String>,
}

/// `+12015550123` → `+•••••••0123`.
pub fn mask(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 4 <= digits { '•' } else { c }
            } else {
                c
            }
        })
        .collect()
}

/// `dial_at`: when a pending callback will be dialled at the earliest (its
/// not-before time moved into its queue's callback hours).
fn line(cb: &CallbackRecord, dial_at: impl Fn(&CallbackRecord) -> i64) -> CallbackLine {
    use crate::store::CallbackState as S;
    CallbackLine {
        id: cb.id.clone(),
        queue: cb.queue.clone(),
        number: mask(&cb.number),
        state: cb.state.as_str(),
        attempts: cb.attempts,
        max_retries: cb.max_retries,
        next_attempt_ms: matches!(cb.state, S::Scheduled | S::Queued).then(|| dial_at(cb)),
        initial_start_ms: cb.initial_start_ms,
        created_ms: cb.created_ms,
        agent: cb.agent.clone(),
        last_outcome: cb.last_outcome.clone(),
    }
}

#[derive(Serialize)]
struct Board<'a> {
    queues: Vec<QueueView>,
    agents: Vec<AgentView>,
    callbacks: &'a [CallbackLine],
    /// All pending callbacks (`callbacks` holds the newest of them).
    callbacks_pending: u64,
}

/// One sample: (epoch ms, contacts in queue, oldest age in s).
type Sample = (i64, usize, i64);

pub struct Live {
    app: Arc<App>,
    board: watch::Sender<Arc<String>>,
    samples: broadcast::Sender<Arc<String>>,
    series: Mutex<BTreeMap<String, VecDeque<Sample>>>,
    today: Mutex<HashMap<String, DayCounts>>,
}

impl Live {
    pub fn spawn(app: Arc<App>) -> Arc<Live> {
        let live = Arc::new(Live {
            app,
            board: watch::channel(Arc::new(String::new())).0,
            samples: broadcast::channel(16).0,
            series: Mutex::new(BTreeMap::new()),
            today: Mutex::new(HashMap::new()),
        });
        let l = live.clone();
        tokio::spawn(async move { l.run().await });
        live
    }

    /// Today's counts by queue (as last read).
    pub fn today(&self) -> HashMap<String, DayCounts> {
        self.today.lock().clone()
    }

    pub fn board(&self) -> watch::Receiver<Arc<String>> {
        self.board.subscribe()
    }

    pub fn samples(&self) -> broadcast::Receiver<Arc<String>> {
        self.samples.subscribe()
    }

    /// The whole ring, as the `series` event sends it.
    pub fn series_json(&self) -> String {
        let series = self.series.lock();
        serde_json::json!({
            "interval_s": SAMPLE_EVERY.as_secs(),
            "queues": &*series,
        })
        .to_string()
    }

    async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let (mut last_today, mut last_sample) = (0i64, 0i64);
        let mut callbacks: Option<(u64, Vec<CallbackLine>, u64)> = None;
        loop {
            tick.tick().await;
            let now = now_ms();
            if now - last_today >= TODAY_EVERY_MS {
                last_today = now;
                self.refresh_today(now).await;
            }
            let version = self.app.centre.dialer.book.version();
            if callbacks.as_ref().is_none_or(|c| c.0 != version)
                && let Some((lines, pending)) = self.pending_callbacks().await
            {
                callbacks = Some((version, lines, pending));
            }
            if now - last_sample >= SAMPLE_EVERY.as_millis() as i64 {
                last_sample = now;
                self.sample(now);
            }
            let board = Board {
                queues: queue_views(&self.app, &self.today(), None),
                agents: agent_views(&self.app),
                callbacks: callbacks.as_ref().map_or(&[][..], |c| &c.1),
                callbacks_pending: callbacks.as_ref().map_or(0, |c| c.2),
            };
            let text = serde_json::to_string(&board).unwrap_or_default();
            self.board.send_if_modified(|old| {
                if **old == text {
                    false
                } else {
                    *old = Arc::new(text);
                    true
                }
            });
        }
    }

    /// Handled, abandoned and callbacks connected since midnight, each
    /// queue in its own `utc_offset_minutes`.
    async fn refresh_today(&self, now: i64) {
        const DAY: i64 = 86_400_000;
        let mut by_offset: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for q in &self.app.config.queues {
            by_offset
                .entry(i64::from(q.utc_offset_minutes) * 60_000)
                .or_default()
                .push(q.name.clone());
        }
        let mut today = HashMap::new();
        for (offset, queues) in by_offset {
            let since = (now + offset).div_euclid(DAY) * DAY - offset;
            let Ok(counts) = self.app.centre.db(move |s| s.day_counts(since)).await else {
                return;
            };
            for q in queues {
                if let Some(c) = counts.get(&q) {
                    today.insert(q, c.clone());
                }
            }
        }
        *self.today.lock() = today;
    }

    async fn pending_callbacks(&self) -> Option<(Vec<CallbackLine>, u64)> {
        let filter = CallbackFilter {
            pending: true,
            ..CallbackFilter::default()
        };
        let (page, counts) = self
            .app
            .centre
            .db(move |s| {
                Ok((
                    s.callbacks_page(&filter, None, BOARD_CALLBACKS)?,
                    s.callback_counts()?,
                ))
            })
            .await
            .ok()?;
        let pending = counts
            .iter()
            .filter(|(state, _)| {
                crate::store::CallbackState::parse(state).is_some_and(|s| s.is_pending())
            })
            .map(|(_, n)| n)
            .sum();
        let now = crate::centre::now_ms();
        let centre = &self.app.centre;
        let lines = page
            .items
            .iter()
            .map(|cb| line(cb, |cb| centre.dial_at_ms(cb, now)))
            .collect();
        Some((lines, pending))
    }

    fn sample(&self, now: i64) {
        let views = queue_views(&self.app, &HashMap::new(), Some(now));
        let mut point = BTreeMap::new();
        {
            let mut series = self.series.lock();
            for v in views {
                let s: Sample = (now, v.contacts_in_queue(), v.oldest_age_s());
                let ring = series.entry(v.name().to_string()).or_default();
                if ring.len() == SAMPLES {
                    ring.pop_front();
                }
                ring.push_back(s);
                point.insert(v.name().to_string(), (s.1, s.2));
            }
        }
        let json = serde_json::json!({ "t": now, "queues": point }).to_string();
        // Nobody listening is fine.
        let _ = self.samples.send(Arc::new(json));
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn numbers_are_masked_but_the_last_four_digits() {
        assert_eq!(mask("+12015550123"), "+•••••••0123");
        assert_eq!(mask("0123"), "0123");
        assert_eq!(mask("12"), "12");
        assert_eq!(mask(""), "");
    }
}
