//! Flow definitions as written in flow files (TOML): a named graph of
//! blocks, each with the branches its outcome can take.

use super::blocks::announce_position::AnnouncePosition;
use super::blocks::check_queue_status::CheckQueueStatus;
use super::blocks::disconnect::Disconnect;
use super::blocks::get_input::GetInput;
use super::blocks::loop_block::LoopBlock;
use super::blocks::play_prompt::PlayPrompt;
use super::blocks::play_tone::PlayTone;
use super::blocks::schedule_callback::ScheduleCallback;
use super::blocks::set_callback_number::SetCallbackNumber;
use super::blocks::set_contact_attributes::SetContactAttributes;
use super::blocks::set_working_queue::SetWorkingQueue;
use super::blocks::store_input::StoreInput;
use super::blocks::transfer_to_flow::TransferToFlow;
use super::blocks::transfer_to_queue::TransferToQueue;
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

/// The blocks. Each type's fields, checks and behaviour live in its own
/// file under `blocks/`; branch fields name the next block.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    PlayPrompt(PlayPrompt),
    GetInput(GetInput),
    StoreInput(StoreInput),
    SetCallbackNumber(SetCallbackNumber),
    SetWorkingQueue(SetWorkingQueue),
    SetContactAttributes(SetContactAttributes),
    TransferToQueue(TransferToQueue),
    CheckQueueStatus(CheckQueueStatus),
    AnnouncePosition(AnnouncePosition),
    ScheduleCallback(ScheduleCallback),
    Loop(LoopBlock),
    TransferToFlow(TransferToFlow),
    PlayTone(PlayTone),
    Disconnect(Disconnect),
}
