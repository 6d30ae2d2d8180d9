//! Play prompt: plays its prompts to the end, then goes on.

use super::{Branches, Cx, Event, Problems, Step, Waiting};
use crate::flow::model::PromptItem;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayPrompt {
    pub prompts: Vec<PromptItem>,
    pub next: String,
    /// Taken when a prompt cannot be played (e.g. `digits:` of an
    /// attribute that is not set); without it the call ends.
    pub on_error: Option<String>,
}

impl PlayPrompt {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.opt("on_error", &self.on_error);
        v.one("next", &self.next);
    }

    pub(super) fn check(&self, p: &mut Problems<'_>) {
        if self.prompts.is_empty() {
            p.at("prompts", "no prompts to play");
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        match cx.audio(&self.prompts) {
            Err(e) => cx.error(&self.on_error, &e),
            Ok(audio) => {
                if cx.play(audio, false) {
                    Step::Wait(Waiting::Prompt)
                } else {
                    // Nothing to say (an empty attribute read out): go on.
                    Step::Next(self.next.clone())
                }
            }
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
    use crate::flow::blocks::testkit::{Run, flow};

    const FLOW: &str = r#"
start = "hello"
[blocks.hello]
type = "play_prompt"
prompts = ["welcome", "goodbye"]
next = "end"
on_error = "oops"
[blocks.oops]
type = "play_prompt"
prompts = ["goodbye"]
next = "end"
[blocks.end]
type = "disconnect"
"#;

    #[test]
    fn plays_every_prompt_then_takes_next() {
        let mut run = Run::start(flow(FLOW));
        assert_eq!(run.played(), ["welcome", "goodbye"]);
        assert_eq!(run.current(), "hello", "waits for the audio to end");
        run.advance_secs(60);
        assert_eq!(run.current(), "hello", "no timeout of its own");
        run.keys("12");
        assert_eq!(run.current(), "hello", "keys do not cut it short");
        run.playback_done();
        assert!(run.hung_up(), "went on to disconnect");
        assert_eq!(run.path(), ["hello", "end"]);
    }

    #[test]
    fn unplayable_item_takes_the_error_branch() {
        let text = FLOW.replace("\"welcome\", \"goodbye\"", "\"digits:unset\"");
        let mut run = Run::start(flow(&text));
        assert_eq!(run.path(), ["hello", "oops"]);
        run.playback_done();
        assert!(run.hung_up());
    }

    #[test]
    fn unplayable_item_without_error_branch_ends_the_call() {
        let text = FLOW
            .replace("\"welcome\", \"goodbye\"", "\"digits:unset\"")
            .replace("on_error = \"oops\"\n", "");
        let run = Run::start(flow(&text));
        assert_eq!(run.path(), ["hello"]);
        assert!(run.hung_up());
    }

    #[test]
    fn an_empty_read_out_is_skipped() {
        let text = FLOW.replace("\"welcome\", \"goodbye\"", "\"digits:empty\"");
        let run = Run::start_with(flow(&text), |c| {
            c.attributes.insert("empty".into(), String::new());
        });
        assert!(run.played_all().is_empty());
        assert!(run.hung_up());
        assert_eq!(run.path(), ["hello", "end"]);
    }
}
