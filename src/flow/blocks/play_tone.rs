//! Play tone: a call-progress tone ("reorder" fast busy, "busy",
//! "ringback") for a number of seconds.

use super::{Cx, Event, Step, Waiting};
use crate::media::tones::Tone;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayTone {
    pub tone: Tone,
    #[serde(default = "default_seconds")]
    pub seconds: u64,
    pub next: String,
}

fn default_seconds() -> u64 {
    3
}

impl PlayTone {
    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let tone = cx.env.tone(self.tone);
        cx.play(vec![tone], true);
        cx.arm(Duration::from_secs(self.seconds));
        Step::Wait(Waiting::Tone)
    }

    pub(super) fn on(&self, ev: Event, cx: &mut Cx<'_>) -> Step {
        match ev {
            Event::Timeout => {
                cx.stop_playback();
                Step::Next(self.next.clone())
            }
            _ => Step::Wait(Waiting::Tone),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{Run, flow};

    #[test]
    fn plays_for_its_seconds_then_goes_on() {
        let mut run = Run::start(flow(
            "start = \"t\"\n[blocks.t]\ntype = \"play_tone\"\ntone = \"reorder\"\nseconds = 4\nnext = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n",
        ));
        assert_eq!(run.played(), ["tone:reorder"]);
        run.keys("5");
        run.advance_secs(3);
        assert_eq!(run.current(), "t");
        run.advance_secs(1);
        assert_eq!(run.stops, 1);
        assert_eq!(run.path(), ["t", "end"]);
    }
}
