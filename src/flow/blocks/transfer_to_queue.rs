//! Transfer to queue. Voice mode: the caller waits in the queue (the run
//! ends with `Outcome::Queued`). Callback mode: a callback is created
//! with the contact's place in line, its initial delay, retries and
//! interval; the run goes on (usually to a confirmation).

use super::{Branches, Cx, Event, Problems, References, Step, Waiting};
use crate::flow::engine::Outcome;
use crate::flow::env::{CallbackRefusal, CallbackRequest};
use crate::flow::model::TransferMode;
use serde::Deserialize;
use std::time::Duration;
use tracing::info;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferToQueue {
    pub mode: TransferMode,
    /// Defaults to the working queue.
    pub queue: Option<String>,
    /// Callback mode: the queue the callback goes to (default: `queue`).
    pub callback_queue: Option<String>,
    #[serde(default)]
    pub initial_delay_s: u64,
    #[serde(default)]
    pub max_retries: u32,
    #[serde(default = "default_retry_interval")]
    pub retry_interval_s: u64,
    /// Callback mode: after the callback is created.
    pub next: Option<String>,
    pub on_at_capacity: String,
    /// Callback mode: a callback for this number is already pending in
    /// the queue and the queue refuses duplicates.
    pub on_duplicate: Option<String>,
    pub on_error: Option<String>,
}

fn default_retry_interval() -> u64 {
    600
}

impl TransferToQueue {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.opt("next", &self.next);
        v.opt("on_duplicate", &self.on_duplicate);
        v.opt("on_error", &self.on_error);
        v.one("on_at_capacity", &self.on_at_capacity);
    }

    pub(super) fn check(&self, refs: &References<'_>, whisper: bool, p: &mut Problems<'_>) {
        if whisper {
            p.block("transfers are not allowed in whisper flows");
        }
        for (k, q) in [
            ("queue", &self.queue),
            ("callback_queue", &self.callback_queue),
        ] {
            if let Some(q) = q {
                p.queue(k, q, refs);
            }
        }
        if self.mode == TransferMode::Callback {
            if self.next.is_none() {
                p.block("callback mode needs a next branch (after the callback is created)");
            }
            if self.max_retries > 20 {
                p.at("max_retries", "max_retries above 20");
            }
            if self.retry_interval_s == 0 {
                p.at("retry_interval_s", "retry_interval_s must be at least 1");
            }
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let Some(queue) = self
            .queue
            .clone()
            .or_else(|| cx.contact.working_queue.clone())
        else {
            return cx.error(&self.on_error, "no queue: set a working queue first");
        };
        match self.mode {
            TransferMode::Voice => {
                if cx.env.queue_full(&queue) {
                    info!(queue = %queue, "queue at capacity");
                    return Step::Next(self.on_at_capacity.clone());
                }
                cx.contact.working_queue = Some(queue.clone());
                Step::End(Outcome::Queued { queue })
            }
            TransferMode::Callback => {
                let Some(number) = cx.contact.callback_number.clone() else {
                    return cx.error(&self.on_error, "no callback number set");
                };
                cx.create_callback(CallbackRequest {
                    contact: cx.contact.clone(),
                    queue: self.callback_queue.clone().unwrap_or(queue),
                    number,
                    initial_delay: Duration::from_secs(self.initial_delay_s),
                    max_retries: self.max_retries,
                    retry_interval: Duration::from_secs(self.retry_interval_s),
                    not_before: cx.contact.callback_not_before,
                });
                Step::Wait(Waiting::Callback)
            }
        }
    }

    pub(super) fn on(&self, ev: Event, cx: &mut Cx<'_>) -> Step {
        let Event::Callback(result) = ev else {
            return Step::Wait(Waiting::Callback);
        };
        match result {
            Ok(id) => {
                info!(callback = %id, "callback created");
                self.next.clone().map(Step::Next).unwrap_or(Step::Hangup)
            }
            Err(CallbackRefusal::AtCapacity) => Step::Next(self.on_at_capacity.clone()),
            Err(CallbackRefusal::Duplicate) => Step::Next(
                self.on_duplicate
                    .clone()
                    .unwrap_or_else(|| self.on_at_capacity.clone()),
            ),
            Err(
                e @ (CallbackRefusal::NotAllowed(_)
                | CallbackRefusal::UnknownQueue(_)
                | CallbackRefusal::Failed(_)),
            ) => cx.error(&self.on_error, &e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{FakeEnv, Run, flow};
    use crate::flow::engine::{Mode, Outcome};
    use crate::flow::env::CallbackRefusal;
    use std::time::Duration;

    fn callback(extra: &str) -> String {
        format!(
            r#"
start = "t"
[blocks.t]
type = "transfer_to_queue"
mode = "callback"
queue = "support"
callback_queue = "callbacks"
initial_delay_s = 99
max_retries = 2
retry_interval_s = 600
next = "ok"
on_at_capacity = "full"
on_duplicate = "dup"
on_error = "error"
{extra}
[blocks.ok]
type = "play_prompt"
prompts = ["callback_confirmed"]
next = "end"
[blocks.full]
type = "disconnect"
[blocks.dup]
type = "disconnect"
[blocks.error]
type = "disconnect"
[blocks.end]
type = "disconnect"
"#
        )
    }

    fn with_number(text: &str) -> Run {
        Run::start_with(flow(text), |c| {
            c.callback_number = Some("+12015550123".into());
            c.attributes.insert("k".into(), "v".into());
        })
    }

    #[test]
    fn callback_mode_asks_for_the_callback_and_waits_for_it() {
        let mut run = with_number(&callback(""));
        let req = run.callbacks.first().expect("callback requested").clone();
        assert_eq!(req.queue, "callbacks");
        assert_eq!(req.number, "+12015550123");
        assert_eq!(req.initial_delay, Duration::from_secs(99));
        assert_eq!((req.max_retries, req.retry_interval.as_secs()), (2, 600));
        assert_eq!(
            req.contact.initial_start,
            run.contact().initial_start,
            "keeps its place"
        );
        assert_eq!(
            req.contact.attributes.get("k").map(String::as_str),
            Some("v")
        );
        run.advance_secs(30);
        assert_eq!(run.current(), "t", "waits for the database, however long");
        run.callback_result(Ok("cb-1"));
        assert_eq!(run.path(), ["t", "ok"]);
        assert_eq!(run.played(), ["callback_confirmed"]);
    }

    #[test]
    fn refusals_take_their_branches() {
        for (refusal, branch) in [
            (CallbackRefusal::AtCapacity, "full"),
            (CallbackRefusal::Duplicate, "dup"),
            (CallbackRefusal::NotAllowed("+1900".into()), "error"),
            (CallbackRefusal::Failed("disk".into()), "error"),
        ] {
            let mut run = with_number(&callback(""));
            run.callback_result(Err(refusal));
            assert_eq!(run.path(), ["t", branch]);
        }
    }

    #[test]
    fn a_duplicate_without_its_branch_is_at_capacity() {
        let mut run = with_number(&callback("").replace("on_duplicate = \"dup\"\n", ""));
        run.callback_result(Err(CallbackRefusal::Duplicate));
        assert_eq!(run.path(), ["t", "full"]);
    }

    #[test]
    fn no_callback_number_is_an_error() {
        let run = Run::start(flow(&callback("")));
        assert!(run.callbacks.is_empty());
        assert_eq!(run.path(), ["t", "error"]);
    }

    const VOICE: &str = r#"
start = "t"
[blocks.t]
type = "transfer_to_queue"
mode = "voice"
on_at_capacity = "full"
on_error = "error"
[blocks.full]
type = "disconnect"
[blocks.error]
type = "disconnect"
"#;

    #[test]
    fn voice_mode_ends_the_run_queued_in_the_working_queue() {
        let run = Run::start_with(flow(VOICE), |c| c.working_queue = Some("sales".into()));
        assert_eq!(
            run.outcome(),
            Some(&Outcome::Queued {
                queue: "sales".into()
            })
        );
        assert_eq!(run.hangups, 0, "the caller stays on the line");
    }

    #[test]
    fn voice_mode_full_queue_and_no_queue() {
        let mut env = FakeEnv::default();
        env.full.insert("sales".into());
        let run = Run::start_env(flow(VOICE), env, Mode::Call, |c| {
            c.working_queue = Some("sales".into())
        });
        assert_eq!(run.path(), ["t", "full"]);
        let run = Run::start(flow(VOICE));
        assert_eq!(run.path(), ["t", "error"], "no working queue set");
    }
}
