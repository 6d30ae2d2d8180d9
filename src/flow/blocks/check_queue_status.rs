//! Check queue status: branches on the queue's live metrics (contacts
//! waiting, oldest age, the caller's position, estimated wait, agents,
//! hours of operation). The first condition that holds wins.

use super::{Branches, Cx, Problems, References, Step};
use crate::flow::model::MetricCondition;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQueueStatus {
    /// Defaults to the working queue.
    pub queue: Option<String>,
    pub conditions: Vec<MetricCondition>,
    pub on_no_match: String,
}

impl CheckQueueStatus {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        for (i, c) in self.conditions.iter().enumerate() {
            v.one(&format!("conditions[{i}].next"), &c.next);
        }
        v.one("on_no_match", &self.on_no_match);
    }

    pub(super) fn check(&self, refs: &References<'_>, p: &mut Problems<'_>) {
        if let Some(q) = &self.queue {
            p.queue("queue", q, refs);
        }
        if self.conditions.is_empty() {
            p.at("conditions", "no conditions");
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let Some(q) = self
            .queue
            .clone()
            .or_else(|| cx.contact.working_queue.clone())
        else {
            return Step::Next(self.on_no_match.clone());
        };
        let m = cx.env.metrics(&q, cx.contact, cx.wall);
        let hit = self
            .conditions
            .iter()
            .find(|c| c.op.holds(m.get(c.metric), c.value));
        Step::Next(hit.map_or_else(|| self.on_no_match.clone(), |c| c.next.clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{FakeEnv, Run, flow};
    use crate::flow::engine::Mode;
    use crate::flow::env::QueueMetrics;

    const FLOW: &str = r#"
start = "check"
[blocks.check]
type = "check_queue_status"
queue = "support"
conditions = [
  { metric = "open", op = "=", value = 0, next = "closed" },
  { metric = "estimated_wait_s", op = ">", value = 300, next = "long" },
  { metric = "agents_available", op = ">=", value = 1, next = "free" },
]
on_no_match = "other"
[blocks.closed]
type = "disconnect"
[blocks.long]
type = "disconnect"
[blocks.free]
type = "disconnect"
[blocks.other]
type = "disconnect"
"#;

    fn with(m: QueueMetrics) -> Run {
        let mut env = FakeEnv::default();
        env.metrics.insert("support".into(), m);
        Run::start_env(flow(FLOW), env, Mode::Call, |_| {})
    }

    #[test]
    fn the_first_condition_that_holds_wins() {
        let open = QueueMetrics {
            open: true,
            ..QueueMetrics::default()
        };
        assert_eq!(with(QueueMetrics::default()).path(), ["check", "closed"]);
        let long = QueueMetrics {
            estimated_wait_s: 301,
            agents_available: 2,
            ..open
        };
        assert_eq!(with(long).path(), ["check", "long"]);
        let free = QueueMetrics {
            estimated_wait_s: 300,
            agents_available: 1,
            ..open
        };
        assert_eq!(with(free).path(), ["check", "free"]);
        assert_eq!(with(open).path(), ["check", "other"]);
    }

    #[test]
    fn no_queue_is_no_match() {
        let run = Run::start(flow(&FLOW.replace("queue = \"support\"\n", "")));
        assert_eq!(run.path(), ["check", "other"]);
    }
}
