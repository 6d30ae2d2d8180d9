//! Flow definitions as written in flow files (TOML): a named graph of
//! blocks, each with the branches its outcome can take.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowType {
    /// Runs when a caller dials a number.
    Inbound,
    /// What a caller waiting in a queue hears; may offer a callback.
    CustomerQueue,
    /// Played to the agent on answer, before the customer is connected.
    AgentWhisper,
    /// Played to the customer on a callback, before the agent is connected.
    OutboundWhisper,
}

/// One flow file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    /// Defaults to the file name without `.toml`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub flow_type: FlowType,
    pub description: Option<String>,
    /// The first block.
    pub start: String,
    pub blocks: BTreeMap<String, Block>,
}

/// A prompt item: a prompt name, or a value spoken with the digit/number
/// prompts: `digits:<attribute>` (each digit), `number:<variable>` (a
/// whole number: `wait_minutes`, `queue_position`, `contacts_in_queue`,
/// or an attribute).
pub type PromptItem = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    #[default]
    Digits,
    PhoneNumber,
}

pub use crate::phone::PhoneFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    Voice,
    Callback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    ContactsInQueue,
    CallbacksInQueue,
    OldestContactAgeS,
    /// Position this contact would take in the queue.
    Position,
    EstimatedWaitS,
    AgentsAvailable,
    AgentsOnline,
    /// 1 within the queue's hours of operation, else 0.
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Comparison {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "=")]
    Eq,
}

impl Comparison {
    pub fn holds(self, a: u64, b: u64) -> bool {
        match self {
            Comparison::Lt => a < b,
            Comparison::Le => a <= b,
            Comparison::Gt => a > b,
            Comparison::Ge => a >= b,
            Comparison::Eq => a == b,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricCondition {
    pub metric: Metric,
    pub op: Comparison,
    pub value: u64,
    pub next: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CallbackNumberSource {
    /// An attribute stored by a Store customer input block.
    #[default]
    Attribute,
    /// The caller's own number (ANI).
    CallerNumber,
}

/// The blocks. Branch fields name the next block; `next` is the "ok" one.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    PlayPrompt {
        prompts: Vec<PromptItem>,
        next: String,
        on_error: Option<String>,
    },
    GetInput {
        prompts: Vec<PromptItem>,
        /// Seconds to wait for a key after the prompt.
        #[serde(default = "default_timeout")]
        timeout_s: u64,
        /// A key press interrupts the prompt.
        #[serde(default = "yes")]
        barge_in: bool,
        /// Key → block.
        conditions: BTreeMap<String, String>,
        on_timeout: String,
        on_no_match: String,
        on_error: Option<String>,
    },
    StoreInput {
        prompts: Vec<PromptItem>,
        /// Attribute that receives the input (normalised to E.164 in
        /// phone-number mode).
        attribute: String,
        #[serde(default)]
        mode: InputMode,
        #[serde(default)]
        format: PhoneFormat,
        /// ISO 3166 country for local format, e.g. "US".
        country: Option<String>,
        #[serde(default = "default_max_digits")]
        max_digits: usize,
        /// Ends the input; empty for none.
        #[serde(default = "default_terminator")]
        terminator: String,
        #[serde(default = "default_timeout")]
        timeout_s: u64,
        #[serde(default = "default_inter_digit")]
        inter_digit_timeout_s: u64,
        next: String,
        on_invalid: Option<String>,
        on_timeout: String,
        on_error: Option<String>,
    },
    SetCallbackNumber {
        #[serde(default)]
        source: CallbackNumberSource,
        /// With source = "attribute".
        attribute: Option<String>,
        next: String,
        on_invalid: String,
    },
    SetWorkingQueue {
        queue: String,
        next: String,
    },
    SetContactAttributes {
        attributes: BTreeMap<String, String>,
        next: String,
    },
    TransferToQueue {
        mode: TransferMode,
        /// Defaults to the working queue.
        queue: Option<String>,
        /// Callback mode: queue the callback goes to (default: `queue`).
        callback_queue: Option<String>,
        #[serde(default)]
        initial_delay_s: u64,
        #[serde(default)]
        max_retries: u32,
        #[serde(default = "default_retry_interval")]
        retry_interval_s: u64,
        /// Callback mode: after the callback is created.
        next: Option<String>,
        on_at_capacity: String,
        /// Callback mode: a callback for this number is already pending in
        /// the queue and the queue refuses duplicates.
        on_duplicate: Option<String>,
        on_error: Option<String>,
    },
    CheckQueueStatus {
        queue: Option<String>,
        conditions: Vec<MetricCondition>,
        on_no_match: String,
    },
    Loop {
        /// How many times `body` is entered before `done` is taken.
        count: u32,
        body: String,
        done: String,
    },
    /// Continues in another flow (of the same type), e.g. a shared
    /// "callback request" flow used by the inbound and the queue flow.
    TransferToFlow {
        flow: String,
    },
    /// A call-progress tone: "reorder" (fast busy), "busy" or "ringback".
    PlayTone {
        tone: crate::media::tones::Tone,
        #[serde(default = "default_tone_seconds")]
        seconds: u64,
        next: String,
    },
    Disconnect {},
}

fn default_tone_seconds() -> u64 {
    3
}

fn default_timeout() -> u64 {
    5
}
fn yes() -> bool {
    true
}
fn default_max_digits() -> usize {
    20
}
fn default_terminator() -> String {
    "#".into()
}
fn default_inter_digit() -> u64 {
    5
}
fn default_retry_interval() -> u64 {
    600
}

impl Block {
    pub fn kind(&self) -> &'static str {
        match self {
            Block::PlayPrompt { .. } => "play_prompt",
            Block::GetInput { .. } => "get_input",
            Block::StoreInput { .. } => "store_input",
            Block::SetCallbackNumber { .. } => "set_callback_number",
            Block::SetWorkingQueue { .. } => "set_working_queue",
            Block::SetContactAttributes { .. } => "set_contact_attributes",
            Block::TransferToQueue { .. } => "transfer_to_queue",
            Block::CheckQueueStatus { .. } => "check_queue_status",
            Block::Loop { .. } => "loop",
            Block::PlayTone { .. } => "play_tone",
            Block::TransferToFlow { .. } => "transfer_to_flow",
            Block::Disconnect {} => "disconnect",
        }
    }

    /// Every branch target with the key that names it.
    pub fn branches(&self) -> Vec<(String, &str)> {
        let mut v: Vec<(String, &str)> = Vec::new();
        fn opt<'a>(v: &mut Vec<(String, &'a str)>, k: &str, t: &'a Option<String>) {
            if let Some(t) = t {
                v.push((k.to_string(), t.as_str()));
            }
        }

        match self {
            Block::PlayPrompt { next, on_error, .. } => {
                opt(&mut v, "on_error", on_error);
                v.push(("next".into(), next));
            }
            Block::GetInput {
                conditions,
                on_timeout,
                on_no_match,
                on_error,
                ..
            } => {
                opt(&mut v, "on_error", on_error);
                for (k, t) in conditions {
                    v.push((format!("conditions.{k}"), t));
                }
                v.push(("on_timeout".into(), on_timeout));
                v.push(("on_no_match".into(), on_no_match));
            }
            Block::StoreInput {
                next,
                on_invalid,
                on_timeout,
                on_error,
                ..
            } => {
                opt(&mut v, "on_invalid", on_invalid);
                opt(&mut v, "on_error", on_error);
                v.push(("next".into(), next));
                v.push(("on_timeout".into(), on_timeout));
            }
            Block::SetCallbackNumber {
                next, on_invalid, ..
            } => {
                v.push(("next".into(), next));
                v.push(("on_invalid".into(), on_invalid));
            }
            Block::SetWorkingQueue { next, .. }
            | Block::SetContactAttributes { next, .. }
            | Block::PlayTone { next, .. } => {
                v.push(("next".into(), next));
            }
            Block::TransferToQueue {
                next,
                on_at_capacity,
                on_duplicate,
                on_error,
                ..
            } => {
                opt(&mut v, "next", next);
                opt(&mut v, "on_duplicate", on_duplicate);
                opt(&mut v, "on_error", on_error);
                v.push(("on_at_capacity".into(), on_at_capacity));
            }
            Block::CheckQueueStatus {
                conditions,
                on_no_match,
                ..
            } => {
                for (i, c) in conditions.iter().enumerate() {
                    v.push((format!("conditions[{i}].next"), &c.next));
                }
                v.push(("on_no_match".into(), on_no_match));
            }
            Block::Loop { body, done, .. } => {
                v.push(("body".into(), body));
                v.push(("done".into(), done));
            }
            Block::Disconnect {} | Block::TransferToFlow { .. } => {}
        }
        v
    }

    /// Blocks that wait for the caller: a cycle through one of these
    /// cannot spin without input.
    pub fn takes_input(&self) -> bool {
        matches!(self, Block::GetInput { .. } | Block::StoreInput { .. })
    }

    /// Prompt items this block plays.
    pub fn prompts(&self) -> &[PromptItem] {
        match self {
            Block::PlayPrompt { prompts, .. }
            | Block::GetInput { prompts, .. }
            | Block::StoreInput { prompts, .. } => prompts,
            _ => &[],
        }
    }
}
