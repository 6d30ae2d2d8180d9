//! Loop: enters its body `count` times, then takes `done` (and starts
//! counting afresh, so a loop reached again loops again).

use super::{Branches, Cx, Problems, Step};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopBlock {
    /// How many times `body` is entered before `done` is taken.
    pub count: u32,
    pub body: String,
    pub done: String,
}

impl LoopBlock {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.one("body", &self.body);
        v.one("done", &self.done);
    }

    pub(super) fn check(&self, p: &mut Problems<'_>) {
        if self.count == 0 {
            p.at("count", "count must be at least 1");
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let name = cx.block.to_string();
        let used = cx.loop_count(&name);
        if *used < self.count {
            *used += 1;
            Step::Next(self.body.clone())
        } else {
            *used = 0;
            Step::Next(self.done.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{Run, flow};

    #[test]
    fn body_count_times_then_done() {
        let mut run = Run::start(flow(
            r#"
start = "tries"
[blocks.tries]
type = "loop"
count = 2
body = "menu"
done = "end"
[blocks.menu]
type = "get_input"
prompts = []
timeout_s = 1
conditions = { "1" = "end" }
on_timeout = "tries"
on_no_match = "tries"
[blocks.end]
type = "disconnect"
"#,
        ));
        run.advance_secs(1);
        run.advance_secs(1);
        assert_eq!(
            run.path(),
            ["tries", "menu", "tries", "menu", "tries", "end"]
        );
        assert!(run.hung_up());
    }

    #[test]
    fn a_loop_reached_again_counts_afresh() {
        let mut run = Run::start(flow(
            r#"
start = "outer"
[blocks.outer]
type = "loop"
count = 2
body = "tries"
done = "end"
[blocks.tries]
type = "loop"
count = 1
body = "menu"
done = "outer"
[blocks.menu]
type = "get_input"
prompts = []
timeout_s = 1
conditions = { "1" = "end" }
on_timeout = "tries"
on_no_match = "tries"
[blocks.end]
type = "disconnect"
"#,
        ));
        run.advance_secs(1);
        run.advance_secs(1);
        assert_eq!(
            run.path(),
            [
                "outer", "tries", "menu", "tries", "outer", "tries", "menu", "tries", "outer",
                "end"
            ]
        );
    }
}
