//! Set working queue: the queue later blocks (transfer, check status,
//! `number:queue_position`) use when they name none.

use super::{Cx, Step};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetWorkingQueue {
    pub queue: String,
    pub next: String,
}

impl SetWorkingQueue {
    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        cx.contact.working_queue = Some(self.queue.clone());
        Step::Next(self.next.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{Run, flow};

    #[test]
    fn sets_the_queue_and_goes_on() {
        let run = Run::start(flow(
            "start = \"q\"\n[blocks.q]\ntype = \"set_working_queue\"\nqueue = \"sales\"\nnext = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n",
        ));
        assert_eq!(run.contact().working_queue.as_deref(), Some("sales"));
        assert_eq!(run.path(), ["q", "end"]);
    }
}
