//! Get customer input: plays a prompt and reads one key, matched against
//! the block's conditions.

use super::{Branches, Cx, Event, Problems, Step, Waiting};
use crate::flow::model::PromptItem;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::info;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetInput {
    pub prompts: Vec<PromptItem>,
    /// Seconds to wait for a key after the prompt.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// A key press interrupts the prompt.
    #[serde(default = "yes")]
    pub barge_in: bool,
    /// Key → block.
    pub conditions: BTreeMap<String, String>,
    pub on_timeout: String,
    pub on_no_match: String,
    pub on_error: Option<String>,
}

pub(super) fn default_timeout() -> u64 {
    5
}

fn yes() -> bool {
    true
}

/// A condition key: one of the twelve keypad keys.
fn is_key(k: &str) -> bool {
    k.len() == 1
        && k.chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

impl GetInput {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.opt("on_error", &self.on_error);
        for (k, t) in &self.conditions {
            v.one(&format!("conditions.{k}"), t);
        }
        v.one("on_timeout", &self.on_timeout);
        v.one("on_no_match", &self.on_no_match);
    }

    pub(super) fn check(&self, p: &mut Problems<'_>) {
        for k in self.conditions.keys() {
            if !is_key(k) {
                p.at(
                    "conditions",
                    format!("condition {k:?} is not a single key (0-9, * or #)"),
                );
            }
        }
        if self.conditions.is_empty() {
            p.at("conditions", "no conditions");
        }
        if self.timeout_s == 0 || self.timeout_s > 120 {
            p.at("timeout_s", "timeout_s must be 1..=120");
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let audio = match cx.audio(&self.prompts) {
            Ok(a) => a,
            Err(e) => return cx.error(&self.on_error, &e),
        };
        cx.clear_digits();
        if cx.play(audio, false) {
            Step::Wait(Waiting::Input { collecting: false })
        } else {
            // No prompt (or nothing to say): listen at once, so the
            // timeout runs from the block's start.
            self.collect(cx)
        }
    }

    /// After the prompt: a key typed during it, or wait for one.
    fn collect(&self, cx: &mut Cx<'_>) -> Step {
        if let Some(k) = cx.take_digit() {
            return self.choose(k, cx);
        }
        cx.arm(Duration::from_secs(self.timeout_s));
        Step::Wait(Waiting::Input { collecting: true })
    }

    fn choose(&self, k: char, cx: &Cx<'_>) -> Step {
        info!(block = %cx.block, key = %k, "input");
        let next = self
            .conditions
            .get(k.encode_utf8(&mut [0; 4]) as &str)
            .unwrap_or(&self.on_no_match);
        Step::Next(next.clone())
    }

    pub(super) fn on(&self, collecting: bool, ev: Event, cx: &mut Cx<'_>) -> Step {
        match (collecting, ev) {
            (false, Event::Digit(k)) => {
                // Barge-in: the key stops the prompt and is the answer.
                cx.stop_playback();
                self.choose(k, cx)
            }
            (false, Event::PlaybackDone) => self.collect(cx),
            (true, Event::Digit(k)) => self.choose(k, cx),
            (true, Event::Timeout) => {
                info!(block = %cx.block, "no input");
                Step::Next(self.on_timeout.clone())
            }
            (collecting, _) => Step::Wait(Waiting::Input { collecting }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{Run, flow};
    use std::time::Duration;

    fn menu(extra: &str) -> String {
        format!(
            r##"
start = "menu"
[blocks.menu]
type = "get_input"
prompts = ["callback_offer"]
timeout_s = 5
conditions = {{ "1" = "one", "#" = "hash" }}
on_timeout = "timeout"
on_no_match = "nomatch"
on_error = "error"
{extra}
[blocks.one]
type = "disconnect"
[blocks.hash]
type = "disconnect"
[blocks.timeout]
type = "disconnect"
[blocks.nomatch]
type = "disconnect"
[blocks.error]
type = "disconnect"
"##
        )
    }

    #[test]
    fn key_during_the_prompt_barges_in() {
        let mut run = Run::start(flow(&menu("")));
        assert_eq!(run.played(), ["callback_offer"]);
        run.key('1');
        assert_eq!(run.stops, 1, "prompt stopped");
        assert_eq!(run.path(), ["menu", "one"]);
    }

    #[test]
    fn key_after_the_prompt_within_the_timeout() {
        let mut run = Run::start(flow(&menu("")));
        run.advance_secs(30);
        assert_eq!(
            run.current(),
            "menu",
            "the prompt's length is not a timeout"
        );
        run.playback_done();
        assert_eq!(run.timer_in(), Some(Duration::from_secs(5)));
        run.advance(Duration::from_millis(4900));
        run.key('#');
        assert_eq!(run.path(), ["menu", "hash"]);
    }

    #[test]
    fn silence_takes_the_timeout_branch() {
        let mut run = Run::start(flow(&menu("")));
        run.playback_done();
        run.advance(Duration::from_millis(4999));
        assert_eq!(run.current(), "menu");
        run.advance(Duration::from_millis(1));
        assert_eq!(run.path(), ["menu", "timeout"]);
    }

    #[test]
    fn an_unlisted_key_is_no_match() {
        let mut run = Run::start(flow(&menu("")));
        run.playback_done();
        run.key('7');
        assert_eq!(run.path(), ["menu", "nomatch"]);
    }

    #[test]
    fn without_barge_in_a_key_waits_for_the_prompt_to_end() {
        let mut run = Run::start(flow(
            &menu("").replace("timeout_s = 5", "timeout_s = 5\nbarge_in = false"),
        ));
        run.key('1');
        assert_eq!(run.stops, 0, "prompt not cut");
        assert_eq!(run.current(), "menu");
        run.playback_done();
        assert_eq!(run.path(), ["menu", "one"], "the key typed ahead counts");
    }

    #[test]
    fn keys_pressed_before_the_block_are_not_its_answer() {
        let text = r#"
start = "hello"
[blocks.hello]
type = "play_prompt"
prompts = ["welcome"]
next = "menu"
"#
        .to_string()
            + &menu("").replace("start = \"menu\"", "");
        let mut run = Run::start(flow(&text));
        run.key('1');
        run.playback_done();
        assert_eq!(run.current(), "menu");
        run.playback_done();
        run.advance_secs(5);
        assert_eq!(run.path(), ["hello", "menu", "timeout"]);
    }

    #[test]
    fn no_prompt_still_times_out() {
        // Regression: prompts = [] waited for a playback that never came.
        let text = menu("").replace("prompts = [\"callback_offer\"]", "prompts = []");
        let mut run = Run::start(flow(&text));
        assert!(run.played_all().is_empty());
        assert_eq!(run.timer_in(), Some(Duration::from_secs(5)));
        run.advance_secs(5);
        assert_eq!(run.path(), ["menu", "timeout"]);
    }

    #[test]
    fn unplayable_prompt_takes_the_error_branch() {
        let text = menu("").replace("\"callback_offer\"", "\"digits:nothing\"");
        let run = Run::start(flow(&text));
        assert_eq!(run.path(), ["menu", "error"]);
    }
}
