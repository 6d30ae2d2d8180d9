//! Running a flow, sans-IO. The engine is fed what happens on the call
//! (playback finished, a key, a callback created) and the current time;
//! it answers with actions (play, stop, create a callback, hang up) and
//! the time it next wants to be woken. The call task that drives it
//! (`driver.rs`) owns the sockets and timers; unit tests drive it with a
//! scripted caller and a fake clock.
//!
//! A flow cannot get stuck: input blocks time out, loops without input
//! are refused at load time, and a step budget ends any run that still
//! goes on too long.

use super::blocks::{Cx, Event, Step, Waiting};
use super::context::Contact;
use super::env::{CallbackRefusal, CallbackRequest, FlowEnv};
use super::load::Flow;
use crate::call::EndReason;
use crate::media::prompt::Prompt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::{info, warn};

/// Blocks a single flow run may execute before it is ended.
pub const MAX_STEPS: usize = 500;

/// How deep Transfer to flow may chain (flows calling each other).
const MAX_DEPTH: usize = 5;

/// What the call tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The audio of the last `Action::Play` has played to its end.
    PlaybackDone,
    /// A key press (RFC 4733 or SIP INFO), whenever it comes.
    Digit(char),
    /// The answer to the last `Action::CreateCallback`.
    CallbackCreated(Result<String, CallbackRefusal>),
}

/// What the engine asks of the call.
#[derive(Debug, Clone)]
pub enum Action {
    /// Play this (replacing whatever plays); `Input::PlaybackDone` when it
    /// ends, unless it loops.
    Play {
        audio: Vec<Arc<Prompt>>,
        looping: bool,
    },
    StopPlayback,
    /// Create this callback; answer with `Input::CallbackCreated`. (Boxed:
    /// it is rare and large, the other actions are small and frequent.)
    CreateCallback(Box<CallbackRequest>),
    /// End the call (BYE).
    Hangup,
}

/// How a flow run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A Disconnect block (or a failure without an error branch) hung up.
    Disconnected,
    /// The caller went away (or the call failed): the driver's verdict.
    Ended(EndReason),
    /// Voice transfer: the caller now waits in this queue.
    Queued { queue: String },
    /// A whisper flow reached its end (or a Disconnect block).
    Finished,
    /// The step budget ran out.
    StepLimit,
}

/// A caller's flow, or a whisper played to one side before a bridge: in a
/// whisper, reaching a Disconnect block (or failing) ends the whisper, not
/// the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Call,
    Whisper,
}

pub struct FlowEngine {
    flow: Arc<Flow>,
    mode: Mode,
    depth: usize,
    contact: Contact,
    current: String,
    waiting: Option<Waiting>,
    steps: usize,
    loops: HashMap<String, u32>,
    typeahead: VecDeque<char>,
    deadline: Option<Instant>,
    actions: VecDeque<Action>,
    outcome: Option<Outcome>,
    /// Wall-clock time at `anchor.0`: the engine reads no clock, it
    /// derives wall time (for "waited N minutes") from the instants fed in.
    anchor: (Instant, SystemTime),
    /// Every block entered, for tests to read the path taken.
    #[cfg(test)]
    pub(crate) visited: Vec<String>,
}

impl FlowEngine {
    pub fn new(
        flow: Arc<Flow>,
        contact: Contact,
        mode: Mode,
        now: Instant,
        wall: SystemTime,
    ) -> FlowEngine {
        FlowEngine {
            current: flow.start.clone(),
            flow,
            mode,
            depth: 0,
            contact,
            waiting: None,
            steps: 0,
            loops: HashMap::new(),
            typeahead: VecDeque::new(),
            deadline: None,
            actions: VecDeque::new(),
            outcome: None,
            anchor: (now, wall),
            #[cfg(test)]
            visited: Vec::new(),
        }
    }

    /// Enters the start block.
    pub fn start(&mut self, env: &dyn FlowEnv, now: Instant) {
        let first = self.current.clone();
        self.advance(Step::Next(first), env, now);
    }

    pub fn handle(&mut self, input: Input, env: &dyn FlowEnv, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        let event = match input {
            Input::PlaybackDone => Event::PlaybackDone,
            Input::CallbackCreated(r) => Event::Callback(r),
            Input::Digit(d) => {
                let takes = match (&self.waiting, self.flow.blocks.get(&self.current)) {
                    (Some(w), Some(b)) => b.takes_digit(w),
                    _ => false,
                };
                if !takes {
                    self.typeahead.push_back(d);
                    return;
                }
                Event::Digit(d)
            }
        };
        self.deliver(event, env, now);
    }

    /// Call when `timeout()` has passed.
    pub fn handle_timeout(&mut self, env: &dyn FlowEnv, now: Instant) {
        if self.outcome.is_some() || self.deadline.is_none_or(|d| d > now) {
            return;
        }
        self.deliver(Event::Timeout, env, now);
    }

    /// When the engine next wants `handle_timeout`.
    pub fn timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Set once the run is over (actions may still be pending).
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn contact(&self) -> &Contact {
        &self.contact
    }

    pub fn into_contact(self) -> Contact {
        self.contact
    }

    /// The block now running.
    pub fn current(&self) -> &str {
        &self.current
    }

    fn deliver(&mut self, event: Event, env: &dyn FlowEnv, now: Instant) {
        let Some(waiting) = self.waiting.take() else {
            return;
        };
        self.deadline = None;
        let flow = self.flow.clone();
        let Some(block) = flow.blocks.get(&self.current) else {
            return;
        };
        let step = {
            let mut cx = self.cx(env, now, &flow.name);
            block.on(waiting, event, &mut cx)
        };
        self.advance(step, env, now);
    }

    fn cx<'a>(&'a mut self, env: &'a dyn FlowEnv, now: Instant, flow: &'a str) -> Cx<'a> {
        let wall = self.anchor.1 + now.saturating_duration_since(self.anchor.0);
        Cx {
            env,
            contact: &mut self.contact,
            now,
            wall,
            flow,
            block: &self.current,
            actions: &mut self.actions,
            typeahead: &mut self.typeahead,
            deadline: &mut self.deadline,
            loops: &mut self.loops,
        }
    }

    /// Follows the blocks from `step` until one waits or the run ends.
    fn advance(&mut self, mut step: Step, env: &dyn FlowEnv, now: Instant) {
        loop {
            step = match step {
                Step::Wait(w) => {
                    self.waiting = Some(w);
                    return;
                }
                Step::End(outcome) => return self.finish(outcome),
                Step::Hangup => {
                    let outcome = match self.mode {
                        Mode::Whisper => Outcome::Finished,
                        Mode::Call => Outcome::Disconnected,
                    };
                    return self.finish(outcome);
                }
                Step::Transfer(name) => match env.flow(&name).filter(|_| self.depth < MAX_DEPTH) {
                    Some(sub) => {
                        info!(from = %self.flow.name, to = %sub.name, "transfer to flow");
                        self.depth += 1;
                        self.loops.clear();
                        let start = sub.start.clone();
                        self.flow = sub;
                        Step::Next(start)
                    }
                    None => {
                        warn!(flow = %name, "cannot transfer to flow");
                        return self.finish(Outcome::Disconnected);
                    }
                },
                Step::Next(name) => {
                    self.steps += 1;
                    if self.steps > MAX_STEPS {
                        warn!(flow = %self.flow.name, "flow exceeded {MAX_STEPS} steps");
                        return self.finish(Outcome::StepLimit);
                    }
                    #[cfg(test)]
                    self.visited.push(name.clone());
                    self.current = name;
                    let flow = self.flow.clone();
                    match flow.blocks.get(&self.current) {
                        None => {
                            warn!(flow = %flow.name, block = %self.current, "no such block");
                            Step::Hangup
                        }
                        Some(block) => {
                            info!(flow = %flow.name, block = %self.current, kind = %block.kind(), "block");
                            let mut cx = self.cx(env, now, &flow.name);
                            block.enter(&mut cx)
                        }
                    }
                }
            };
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.waiting = None;
        self.deadline = None;
        let ends_call = matches!(outcome, Outcome::Disconnected | Outcome::StepLimit);
        if ends_call && self.mode == Mode::Call {
            self.actions.push_back(Action::Hangup);
        }
        self.outcome = Some(outcome);
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
