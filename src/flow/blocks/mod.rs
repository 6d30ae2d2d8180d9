//! The blocks a flow is made of: one file each, holding the block's
//! fields as written in flow files, its load-time checks and what it does
//! when run. Running is sans-IO: a block is entered with a context
//! (`Cx`) through which it asks for audio, timers and callbacks, and is
//! then told what happened (`Event`) until it names the next block.

pub mod announce_position;
pub mod check_queue_status;
pub mod disconnect;
pub mod get_input;
pub mod loop_block;
pub mod play_prompt;
pub mod play_tone;
pub mod schedule_callback;
pub mod set_callback_number;
pub mod set_contact_attributes;
pub mod set_working_queue;
pub mod store_input;
pub mod transfer_to_flow;
pub mod transfer_to_queue;

#[cfg(test)]
pub(crate) mod testkit;

use super::context::Contact;
use super::engine::{Action, Outcome};
use super::env::{CallbackRefusal, CallbackRequest, FlowEnv};
use super::model::{Block, PromptItem};
use super::speech::{Variables, resolve};
use crate::media::prompt::Prompt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::warn;

/// What happened while a block waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The audio the block started has played to its end.
    PlaybackDone,
    /// A key press the block takes (see `Block::takes_digit`).
    Digit(char),
    /// The timer the block armed has run out.
    Timeout,
    /// The answer to the block's callback request.
    Callback(Result<String, CallbackRefusal>),
}

/// What a block is waiting for, with the little state it keeps meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Play prompt: the end of its audio.
    Prompt,
    /// Get customer input: the prompt (`collecting` false) or a key.
    Input { collecting: bool },
    /// Store customer input: keys so far.
    Store(store_input::Entry),
    /// Transfer to queue (callback mode): the callback's creation.
    Callback,
    /// Play tone: its time to run out.
    Tone,
    /// Schedule callback: the menu or the time being keyed.
    Schedule(schedule_callback::Stage),
}

/// Where a block goes once it has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// To the named block.
    Next(String),
    /// Nothing decided yet: wait for an event.
    Wait(Waiting),
    /// No branch to take (Disconnect, or a failure without an error
    /// branch): the call ends (a whisper just finishes).
    Hangup,
    /// The run ends with this outcome (a voice transfer).
    End(Outcome),
    /// Continue in another flow.
    Transfer(String),
}

/// A block's view of the engine while it runs.
pub struct Cx<'a> {
    pub env: &'a dyn FlowEnv,
    pub contact: &'a mut Contact,
    pub now: Instant,
    pub wall: SystemTime,
    pub flow: &'a str,
    pub block: &'a str,
    pub(super) actions: &'a mut VecDeque<Action>,
    pub(super) typeahead: &'a mut VecDeque<char>,
    pub(super) deadline: &'a mut Option<Instant>,
    pub(super) loops: &'a mut HashMap<String, u32>,
}

impl Cx<'_> {
    /// The audio of prompt items, with `number:`/`digits:` items spoken
    /// from the contact and the queue's metrics.
    pub fn audio(&self, items: &[PromptItem]) -> Result<Vec<Arc<Prompt>>, String> {
        let q = self
            .contact
            .working_queue
            .as_deref()
            .map(|q| self.env.metrics(q, self.contact, self.wall));
        let vars = Variables {
            wait_minutes: self.contact.waited_secs(self.wall) / 60,
            queue_position: q.map(|m| m.position),
            contacts_in_queue: q.map(|m| m.contacts_in_queue),
        };
        resolve(items, self.env.prompts(), self.contact, &vars).map_err(|e| e.0)
    }

    /// Starts playing; false when there is nothing to play (the caller of
    /// this goes on as if it had played: no event will come).
    pub fn play(&mut self, audio: Vec<Arc<Prompt>>, looping: bool) -> bool {
        if audio.is_empty() {
            return false;
        }
        self.actions.push_back(Action::Play { audio, looping });
        true
    }

    pub fn stop_playback(&mut self) {
        self.actions.push_back(Action::StopPlayback);
    }

    /// A timeout event after `d`.
    pub fn arm(&mut self, d: Duration) {
        *self.deadline = Some(self.now + d);
    }

    /// The oldest key pressed while no block took keys.
    pub fn take_digit(&mut self) -> Option<char> {
        self.typeahead.pop_front()
    }

    /// Keys pressed before this block asked are not its answer.
    pub fn clear_digits(&mut self) {
        self.typeahead.clear();
    }

    pub fn create_callback(&mut self, req: CallbackRequest) {
        self.actions
            .push_back(Action::CreateCallback(Box::new(req)));
    }

    /// How often the loop block `name` has entered its body in this run.
    pub fn loop_count(&mut self, name: &str) -> &mut u32 {
        self.loops.entry(name.to_string()).or_insert(0)
    }

    /// Takes an error branch, or ends the call when the block has none.
    pub fn error(&self, branch: &Option<String>, why: &str) -> Step {
        warn!(flow = %self.flow, block = %self.block, error = why, "block failed");
        branch.clone().map(Step::Next).unwrap_or(Step::Hangup)
    }
}

/// What a flow may refer to, from the main configuration.
pub struct References<'a> {
    pub prompt_dir: &'a Path,
    pub queues: HashSet<String>,
}

/// Load-time problems of one block, as (key path, message).
pub struct Problems<'a> {
    pub name: &'a str,
    pub list: &'a mut Vec<(String, String)>,
}

impl Problems<'_> {
    /// A problem with one field of the block.
    pub fn at(&mut self, field: &str, message: impl std::fmt::Display) {
        self.list.push((
            format!("blocks.{}.{field}", self.name),
            format!("block {:?}: {message}", self.name),
        ));
    }

    /// A problem with the block as a whole.
    pub fn block(&mut self, message: impl std::fmt::Display) {
        self.list.push((
            format!("blocks.{}", self.name),
            format!("block {:?}: {message}", self.name),
        ));
    }

    pub fn queue(&mut self, field: &str, queue: &str, refs: &References<'_>) {
        if !refs.queues.contains(queue) {
            self.at(field, format!("unknown queue {queue:?}"));
        }
    }
}

impl Block {
    pub fn kind(&self) -> &'static str {
        match self {
            Block::PlayPrompt(_) => "play_prompt",
            Block::GetInput(_) => "get_input",
            Block::StoreInput(_) => "store_input",
            Block::SetCallbackNumber(_) => "set_callback_number",
            Block::SetWorkingQueue(_) => "set_working_queue",
            Block::SetContactAttributes(_) => "set_contact_attributes",
            Block::TransferToQueue(_) => "transfer_to_queue",
            Block::CheckQueueStatus(_) => "check_queue_status",
            Block::AnnouncePosition(_) => "announce_position",
            Block::ScheduleCallback(_) => "schedule_callback",
            Block::Loop(_) => "loop",
            Block::PlayTone(_) => "play_tone",
            Block::TransferToFlow(_) => "transfer_to_flow",
            Block::Disconnect(_) => "disconnect",
        }
    }

    /// Every branch target with the key that names it.
    pub fn branches(&self) -> Vec<(String, &str)> {
        let mut v = Branches(Vec::new());
        match self {
            Block::PlayPrompt(b) => b.branches(&mut v),
            Block::GetInput(b) => b.branches(&mut v),
            Block::StoreInput(b) => b.branches(&mut v),
            Block::SetCallbackNumber(b) => b.branches(&mut v),
            Block::SetWorkingQueue(b) => v.one("next", &b.next),
            Block::SetContactAttributes(b) => v.one("next", &b.next),
            Block::TransferToQueue(b) => b.branches(&mut v),
            Block::CheckQueueStatus(b) => b.branches(&mut v),
            Block::AnnouncePosition(b) => b.branches(&mut v),
            Block::ScheduleCallback(b) => b.branches(&mut v),
            Block::Loop(b) => b.branches(&mut v),
            Block::PlayTone(b) => v.one("next", &b.next),
            Block::TransferToFlow(_) | Block::Disconnect(_) => {}
        }
        v.0
    }

    /// Blocks that wait for the caller: a cycle through one of these
    /// cannot spin without input.
    pub fn takes_input(&self) -> bool {
        matches!(
            self,
            Block::GetInput(_) | Block::StoreInput(_) | Block::ScheduleCallback(_)
        )
    }

    /// Prompt items this block plays.
    pub fn prompts(&self) -> Vec<&PromptItem> {
        match self {
            Block::PlayPrompt(b) => b.prompts.iter().collect(),
            Block::GetInput(b) => b.prompts.iter().collect(),
            Block::StoreInput(b) => b.prompts.iter().collect(),
            Block::AnnouncePosition(b) => b.prompts().iter().collect(),
            Block::ScheduleCallback(b) => b.prompts.iter().chain(&b.time_prompts).collect(),
            _ => Vec::new(),
        }
    }

    /// Load-time checks particular to the block type.
    pub fn check(&self, refs: &References<'_>, whisper: bool, p: &mut Problems<'_>) {
        match self {
            Block::PlayPrompt(b) => b.check(p),
            Block::GetInput(b) => b.check(p),
            Block::StoreInput(b) => b.check(p),
            Block::SetCallbackNumber(b) => b.check(p),
            Block::SetWorkingQueue(b) => p.queue("queue", &b.queue, refs),
            Block::TransferToQueue(b) => b.check(refs, whisper, p),
            Block::CheckQueueStatus(b) => b.check(refs, p),
            Block::AnnouncePosition(b) => b.check(refs, p),
            Block::ScheduleCallback(b) => b.check(refs, p),
            Block::Loop(b) => b.check(p),
            Block::SetContactAttributes(_)
            | Block::PlayTone(_)
            | Block::TransferToFlow(_)
            | Block::Disconnect(_) => {}
        }
    }

    /// Runs the block from its start.
    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        match self {
            Block::PlayPrompt(b) => b.enter(cx),
            Block::GetInput(b) => b.enter(cx),
            Block::StoreInput(b) => b.enter(cx),
            Block::SetCallbackNumber(b) => b.enter(cx),
            Block::SetWorkingQueue(b) => b.enter(cx),
            Block::SetContactAttributes(b) => b.enter(cx),
            Block::TransferToQueue(b) => b.enter(cx),
            Block::CheckQueueStatus(b) => b.enter(cx),
            Block::AnnouncePosition(b) => b.enter(cx),
            Block::ScheduleCallback(b) => b.enter(cx),
            Block::Loop(b) => b.enter(cx),
            Block::PlayTone(b) => b.enter(cx),
            Block::TransferToFlow(b) => Step::Transfer(b.flow.clone()),
            Block::Disconnect(_) => Step::Hangup,
        }
    }

    /// Whether the block, waiting as it is, takes a key press now; keys it
    /// does not take wait as type-ahead.
    pub(super) fn takes_digit(&self, waiting: &Waiting) -> bool {
        match (self, waiting) {
            (Block::GetInput(b), Waiting::Input { collecting }) => *collecting || b.barge_in,
            (Block::StoreInput(_), Waiting::Store(_)) => true,
            (Block::ScheduleCallback(_), Waiting::Schedule(_)) => true,
            _ => false,
        }
    }

    /// Tells the waiting block what happened.
    pub(super) fn on(&self, waiting: Waiting, ev: Event, cx: &mut Cx<'_>) -> Step {
        match (self, waiting) {
            (Block::PlayPrompt(b), Waiting::Prompt) => b.on(ev),
            (Block::AnnouncePosition(b), Waiting::Prompt) => b.on(ev),
            (Block::ScheduleCallback(b), Waiting::Schedule(stage)) => b.on(stage, ev, cx),
            (Block::GetInput(b), Waiting::Input { collecting }) => b.on(collecting, ev, cx),
            (Block::StoreInput(b), Waiting::Store(entry)) => b.on(entry, ev, cx),
            (Block::TransferToQueue(b), Waiting::Callback) => b.on(ev, cx),
            (Block::PlayTone(b), Waiting::Tone) => b.on(ev, cx),
            // An event the block did not ask for (a stale timer): ignore.
            (_, w) => Step::Wait(w),
        }
    }
}

/// Collects a block's branches.
pub struct Branches<'a>(Vec<(String, &'a str)>);

impl<'a> Branches<'a> {
    pub fn one(&mut self, key: &str, target: &'a str) {
        self.0.push((key.to_string(), target));
    }

    pub fn opt(&mut self, key: &str, target: &'a Option<String>) {
        if let Some(t) = target {
            self.one(key, t);
        }
    }
}
