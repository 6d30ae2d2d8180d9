//! Schedule callback: the caller chooses when to be called back — "press 1
//! for as soon as possible, 2 for tomorrow morning, 3 to key a time" — and
//! the choice is kept on the contact for the Transfer to queue block
//! (callback mode) that follows, which stores it as the callback's
//! not-before time. Times are local to the queue's time zone and must fall
//! within its callback hours; a keyed time already past today means
//! tomorrow.

use super::{Branches, Cx, Event, Problems, Step, Waiting};
use crate::flow::model::PromptItem;
use crate::routing::hours::Hours;
use serde::Deserialize;
use std::time::{Duration, SystemTime};
use tracing::info;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleCallback {
    /// The menu: 1 as soon as possible, 2 tomorrow morning, 3 a time.
    pub prompts: Vec<PromptItem>,
    /// Asks for the time (four digits, 24-hour HHMM).
    pub time_prompts: Vec<PromptItem>,
    /// Whose time zone and callback hours apply; defaults to the working
    /// queue.
    pub queue: Option<String>,
    /// "Tomorrow morning", local `HH:MM` (default 09:00).
    #[serde(default = "default_morning")]
    pub tomorrow_at: String,
    /// Seconds to wait for each key.
    #[serde(default = "super::get_input::default_timeout")]
    pub timeout_s: u64,
    pub next: String,
    /// Another key, a time that is no time (2460), or one outside the
    /// queue's callback hours.
    pub on_invalid: String,
    pub on_timeout: String,
}

fn default_morning() -> String {
    "09:00".into()
}

/// Where the block is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The menu playing (`collecting` false) or waiting for its key.
    Menu { collecting: bool },
    /// The time prompt playing (None) or the digits keyed so far.
    Time(Option<String>),
}

/// What the caller chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Asap,
    Tomorrow { hour: i8, minute: i8 },
    At { hour: i8, minute: i8 },
}

fn hhmm(s: &str) -> Option<(i8, i8)> {
    let (h, m) = match s.split_once(':') {
        Some(hm) => hm,
        None if s.len() == 4 && s.is_char_boundary(2) => s.split_at(2),
        None => return None,
    };
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

/// A choice as a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    Asap,
    At(SystemTime),
    /// Outside the queue's callback hours (or no such time).
    Closed,
}

/// The not-before time of a choice made at `now`.
pub fn resolve(when: When, now: SystemTime, window: &Hours) -> Chosen {
    resolve_at(when, now, window).unwrap_or(Chosen::Closed)
}

fn resolve_at(when: When, now: SystemTime, window: &Hours) -> Option<Chosen> {
    let now_ms = crate::flow::context::epoch_ms(now);
    let ts = jiff::Timestamp::from_millisecond(now_ms).ok()?;
    let today = ts.to_zoned(window.zone().clone());
    let (hour, minute, days) = match when {
        When::Asap => return Some(Chosen::Asap),
        When::Tomorrow { hour, minute } => (hour, minute, 1),
        When::At { hour, minute } => {
            let later_today = (today.hour(), today.minute()) < (hour, minute);
            (hour, minute, if later_today { 0 } else { 1 })
        }
    };
    let date = today
        .date()
        .checked_add(jiff::Span::new().days(days))
        .ok()?;
    let at = window
        .zone()
        .to_ambiguous_zoned(date.at(hour, minute, 0, 0))
        .compatible()
        .ok()?;
    let ms = at.timestamp().as_millisecond();
    Some(if window.is_open_ms(ms) {
        Chosen::At(crate::flow::context::from_epoch_ms(ms))
    } else {
        Chosen::Closed
    })
}

impl ScheduleCallback {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.one("next", &self.next);
        v.one("on_invalid", &self.on_invalid);
        v.one("on_timeout", &self.on_timeout);
    }

    pub(super) fn check(&self, refs: &super::References<'_>, p: &mut Problems<'_>) {
        if let Some(q) = &self.queue {
            p.queue("queue", q, refs);
        }
        if hhmm(&self.tomorrow_at).is_none() {
            p.at("tomorrow_at", "tomorrow_at must be a time like \"09:00\"");
        }
        if self.timeout_s == 0 || self.timeout_s > 120 {
            p.at("timeout_s", "timeout_s must be 1..=120");
        }
        if self.prompts.is_empty() || self.time_prompts.is_empty() {
            p.block("prompts and time_prompts must name what the caller hears");
        }
    }

    fn window(&self, cx: &Cx<'_>) -> Hours {
        self.queue
            .as_deref()
            .or(cx.contact.working_queue.as_deref())
            .map(|q| cx.env.callback_hours(q))
            .unwrap_or_default()
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        cx.clear_digits();
        self.speak(&self.prompts, Stage::Menu { collecting: false }, cx)
    }

    fn speak(&self, items: &[PromptItem], stage: Stage, cx: &mut Cx<'_>) -> Step {
        let audio = cx.audio(items).unwrap_or_else(|e| {
            tracing::warn!(block = %cx.block, error = %e, "prompt not played");
            Vec::new()
        });
        if cx.play(audio, false) {
            Step::Wait(Waiting::Schedule(stage))
        } else {
            self.listen(stage, cx)
        }
    }

    /// The prompt is over: wait for keys.
    fn listen(&self, stage: Stage, cx: &mut Cx<'_>) -> Step {
        cx.arm(Duration::from_secs(self.timeout_s));
        match stage {
            Stage::Menu { .. } => Step::Wait(Waiting::Schedule(Stage::Menu { collecting: true })),
            Stage::Time(d) => {
                Step::Wait(Waiting::Schedule(Stage::Time(Some(d.unwrap_or_default()))))
            }
        }
    }

    fn choose(&self, when: When, cx: &mut Cx<'_>) -> Step {
        let at = match resolve(when, cx.wall, &self.window(cx)) {
            Chosen::Asap => None,
            Chosen::At(t) => Some(t),
            Chosen::Closed => {
                info!(block = %cx.block, choice = ?when, "callback time outside the callback hours");
                return Step::Next(self.on_invalid.clone());
            }
        };
        info!(block = %cx.block, choice = ?when, "callback time chosen");
        cx.contact.callback_not_before = at;
        match at {
            Some(t) => {
                let ms = crate::flow::context::epoch_ms(t);
                cx.contact
                    .attributes
                    .insert("callback_at_ms".into(), ms.to_string());
            }
            None => {
                cx.contact.attributes.remove("callback_at_ms");
            }
        }
        Step::Next(self.next.clone())
    }

    fn menu_key(&self, k: char, cx: &mut Cx<'_>) -> Step {
        match k {
            '1' => self.choose(When::Asap, cx),
            '2' => {
                let (hour, minute) = hhmm(&self.tomorrow_at).unwrap_or((9, 0));
                self.choose(When::Tomorrow { hour, minute }, cx)
            }
            '3' => {
                cx.clear_digits();
                self.speak(&self.time_prompts, Stage::Time(None), cx)
            }
            _ => Step::Next(self.on_invalid.clone()),
        }
    }

    pub(super) fn on(&self, stage: Stage, ev: Event, cx: &mut Cx<'_>) -> Step {
        match (stage, ev) {
            (Stage::Menu { collecting: false }, Event::Digit(k)) => {
                cx.stop_playback();
                self.menu_key(k, cx)
            }
            (Stage::Menu { collecting: true }, Event::Digit(k)) => self.menu_key(k, cx),
            (Stage::Time(None), Event::Digit(k)) => {
                cx.stop_playback();
                self.time_key(String::new(), k, cx)
            }
            (Stage::Time(Some(d)), Event::Digit(k)) => self.time_key(d, k, cx),
            (s @ (Stage::Menu { collecting: false } | Stage::Time(None)), Event::PlaybackDone) => {
                self.listen(s, cx)
            }
            (Stage::Menu { collecting: true } | Stage::Time(Some(_)), Event::Timeout) => {
                Step::Next(self.on_timeout.clone())
            }
            (s, _) => Step::Wait(Waiting::Schedule(s)),
        }
    }

    fn time_key(&self, mut digits: String, k: char, cx: &mut Cx<'_>) -> Step {
        if !k.is_ascii_digit() {
            return Step::Next(self.on_invalid.clone());
        }
        digits.push(k);
        if digits.len() < 4 {
            cx.arm(Duration::from_secs(self.timeout_s));
            return Step::Wait(Waiting::Schedule(Stage::Time(Some(digits))));
        }
        match hhmm(&digits) {
            Some((hour, minute)) => self.choose(When::At { hour, minute }, cx),
            None => Step::Next(self.on_invalid.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::blocks::testkit::{FakeEnv, Run, flow};
    use crate::flow::engine::Mode;
    use crate::routing::hours::{Span, zone};

    // The test clock: 2023-11-14T22:13:20Z, a Tuesday; 17:13:20 in New York.
    const FLOW: &str = r#"
start = "when"
[blocks.when]
type = "schedule_callback"
queue = "callbacks"
prompts = ["schedule_offer"]
time_prompts = ["schedule_enter_time"]
tomorrow_at = "08:30"
next = "done"
on_invalid = "bad"
on_timeout = "quiet"
[blocks.done]
type = "disconnect"
[blocks.bad]
type = "disconnect"
[blocks.quiet]
type = "disconnect"
"#;

    fn run() -> Run {
        let mut env = FakeEnv::default();
        env.callback_hours.insert(
            "callbacks".into(),
            Hours::in_zone(
                vec![Span::parse("mon-fri 08:00-20:00").unwrap()],
                zone("America/New_York").unwrap(),
            ),
        );
        Run::start_env(flow(FLOW), env, Mode::Call, |_| {})
    }

    fn chosen(r: &Run) -> Option<String> {
        r.engine.contact().callback_not_before.map(|t| {
            jiff::Timestamp::from_millisecond(crate::flow::context::epoch_ms(t))
                .unwrap()
                .to_string()
        })
    }

    #[test]
    fn as_soon_as_possible_sets_no_time() {
        let mut r = run();
        assert_eq!(r.played(), ["schedule_offer"]);
        r.key('1');
        assert_eq!(r.path(), ["when", "done"]);
        assert_eq!(chosen(&r), None);
    }

    #[test]
    fn tomorrow_morning_is_local_time_in_the_queue_zone() {
        let mut r = run();
        r.playback_done();
        r.key('2');
        assert_eq!(r.path(), ["when", "done"]);
        // Wednesday 08:30 EST = 13:30 UTC.
        assert_eq!(chosen(&r).as_deref(), Some("2023-11-15T13:30:00Z"));
        assert_eq!(
            r.engine
                .contact()
                .attributes
                .get("callback_at_ms")
                .map(String::as_str),
            Some("1700055000000")
        );
    }

    #[test]
    fn a_keyed_time_later_today_or_tomorrow() {
        // 19:45 is still ahead today (it is 17:13 in New York).
        let mut r = run();
        r.key('3');
        assert_eq!(
            r.played(),
            ["schedule_enter_time"],
            "barge-in, then the time prompt"
        );
        r.keys("1945");
        assert_eq!(chosen(&r).as_deref(), Some("2023-11-15T00:45:00Z"));
        // 09:15 has passed: tomorrow.
        let mut r = run();
        r.playback_done();
        r.key('3');
        r.playback_done();
        r.keys("0915");
        assert_eq!(chosen(&r).as_deref(), Some("2023-11-15T14:15:00Z"));
    }

    #[test]
    fn outside_the_callback_hours_no_such_time_other_keys_and_silence() {
        let mut r = run();
        r.keys("3");
        r.keys("2130");
        assert_eq!(r.path(), ["when", "bad"], "after 20:00");
        let mut r = run();
        r.keys("32460");
        assert_eq!(r.path(), ["when", "bad"], "no such time");
        let mut r = run();
        r.key('7');
        assert_eq!(r.path(), ["when", "bad"]);
        let mut r = run();
        r.playback_done();
        r.advance_secs(6);
        assert_eq!(r.path(), ["when", "quiet"]);
        let mut r = run();
        r.key('3');
        r.playback_done();
        r.keys("19");
        r.advance_secs(6);
        assert_eq!(r.path(), ["when", "quiet"], "the time not finished");
        assert_eq!(chosen(&r), None);
    }
}
