//! Announce position: "You are number three in line. Your expected wait
//! is about five minutes." Built from number prompts at run time from the
//! queue's live figures: the caller's place in line (ordered by the
//! original call's start, as the router offers them) and the queue's
//! estimated wait for that place (`routing::wait`).

use super::{Branches, Cx, Event, Problems, Step, Waiting};
use crate::flow::model::PromptItem;
use crate::flow::speech::number_names;
use serde::Deserialize;
use std::sync::LazyLock;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncePosition {
    /// Defaults to the working queue.
    pub queue: Option<String>,
    /// Say the estimated wait after the position (default true).
    #[serde(default = "yes")]
    pub wait: bool,
    pub next: String,
    /// Taken when there is no queue to speak of; without it the call ends.
    pub on_error: Option<String>,
}

fn yes() -> bool {
    true
}

/// Every prompt the block can play, for the load-time checks.
static PROMPTS: LazyLock<Vec<PromptItem>> = LazyLock::new(|| {
    [
        "position_you_are",
        "position_in_line",
        "wait_about",
        "minute",
        "minutes",
        "wait_over_an_hour",
        "number:queue_position",
    ]
    .map(str::to_string)
    .to_vec()
});

/// Waits above this are "more than an hour".
const MAX_SPOKEN_MINUTES: u64 = 60;

/// The prompt names of the announcement.
pub fn announcement(position: u64, wait_s: Option<u64>) -> Vec<String> {
    let mut names = vec!["position_you_are".to_string()];
    names.extend(number_names(position.max(1)));
    names.push("position_in_line".into());
    if let Some(s) = wait_s {
        // "About": to the nearest minute, and never "about zero minutes".
        let minutes = s.saturating_add(30) / 60;
        let minutes = minutes.max(1);
        if minutes > MAX_SPOKEN_MINUTES {
            names.push("wait_over_an_hour".into());
        } else {
            names.push("wait_about".into());
            names.extend(number_names(minutes));
            names.push(if minutes == 1 { "minute" } else { "minutes" }.into());
        }
    }
    names
}

impl AnnouncePosition {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.opt("on_error", &self.on_error);
        v.one("next", &self.next);
    }

    pub(super) fn prompts(&self) -> &[PromptItem] {
        &PROMPTS
    }

    pub(super) fn check(&self, refs: &super::References<'_>, p: &mut Problems<'_>) {
        if let Some(q) = &self.queue {
            p.queue("queue", q, refs);
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let Some(q) = self
            .queue
            .clone()
            .or_else(|| cx.contact.working_queue.clone())
        else {
            return cx.error(&self.on_error, "no queue: set a working queue first");
        };
        let m = cx.env.metrics(&q, cx.contact, cx.wall);
        let names = announcement(m.position, self.wait.then_some(m.estimated_wait_s));
        let lib = cx.env.prompts();
        let audio: Option<Vec<_>> = names.iter().map(|n| lib.get(n)).collect();
        let Some(audio) = audio else {
            return cx.error(&self.on_error, "a position prompt is not loaded");
        };
        tracing::info!(queue = %q, position = m.position, estimated_wait_s = m.estimated_wait_s, "announcing position");
        if cx.play(audio, false) {
            Step::Wait(Waiting::Prompt)
        } else {
            Step::Next(self.next.clone())
        }
    }

    pub(super) fn on(&self, ev: Event) -> Step {
        match ev {
            Event::PlaybackDone => Step::Next(self.next.clone()),
            _ => Step::Wait(Waiting::Prompt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::announcement;
    use crate::flow::blocks::testkit::{FakeEnv, Run, flow};
    use crate::flow::engine::Mode;
    use crate::flow::env::QueueMetrics;

    const FLOW: &str = r#"
start = "where"
[blocks.where]
type = "announce_position"
queue = "support"
next = "end"
on_error = "end"
[blocks.end]
type = "disconnect"
"#;

    fn run(position: u64, wait_s: u64, text: &str) -> Run {
        let mut env = FakeEnv::default();
        env.metrics.insert(
            "support".into(),
            QueueMetrics {
                position,
                estimated_wait_s: wait_s,
                ..QueueMetrics::default()
            },
        );
        Run::start_env(flow(text), env, Mode::Call, |_| {})
    }

    #[test]
    fn says_the_position_then_the_wait_and_goes_on() {
        let mut r = run(3, 290, FLOW);
        assert_eq!(
            r.played(),
            [
                "position_you_are",
                "number_3",
                "position_in_line",
                "wait_about",
                "number_5",
                "minutes"
            ]
        );
        assert_eq!(r.current(), "where", "waits for the audio");
        r.playback_done();
        assert!(r.hung_up());
        assert_eq!(r.path(), ["where", "end"]);
    }

    #[test]
    fn one_minute_long_waits_and_no_wait() {
        assert_eq!(
            announcement(1, Some(10))[3..],
            ["wait_about", "number_1", "minute"]
        );
        assert_eq!(
            announcement(45, Some(61 * 60))[1..],
            [
                "number_40",
                "number_5",
                "position_in_line",
                "wait_over_an_hour"
            ]
        );
        assert_eq!(
            announcement(2, None),
            ["position_you_are", "number_2", "position_in_line"]
        );
        let r = run(2, 0, &FLOW.replace("on_error", "wait = false\non_error"));
        assert_eq!(
            r.played(),
            ["position_you_are", "number_2", "position_in_line"]
        );
    }

    #[test]
    fn no_queue_takes_the_error_branch() {
        let r = run(1, 0, &FLOW.replace("queue = \"support\"\n", ""));
        assert_eq!(r.path(), ["where", "end"]);
        assert!(r.played_all().is_empty());
    }
}
