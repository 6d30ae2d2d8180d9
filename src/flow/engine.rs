//! Running a flow: block by block, against a call (`CallIo`) and the
//! contact centre's services (`ContactCenter`). Both are traits so that
//! flows are unit-tested with a scripted caller and no network.
//!
//! A flow cannot get stuck: input blocks have timeouts, loops without input
//! are refused at load time, and a step budget ends any run that still
//! goes on too long.

use super::context::Contact;
use super::load::Flow;
use super::model::{Block, CallbackNumberSource, InputMode, Metric, TransferMode};
use super::speech::{Variables, resolve};
use crate::call::EndReason;
use crate::media::prompt::{Prompt, PromptLibrary};
use crate::phone;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// Blocks a single flow run may execute before it is ended.
pub const MAX_STEPS: usize = 500;

/// The call a flow runs on.
#[allow(async_fn_in_trait)]
pub trait CallIo {
    /// Plays to the end; with `barge_in` the first key press stops it and
    /// is returned.
    async fn play(
        &mut self,
        prompts: Vec<Arc<Prompt>>,
        barge_in: bool,
    ) -> Result<Option<char>, EndReason>;
    /// Plays (looping if asked) for at most `max`, ignoring keys.
    async fn play_for(
        &mut self,
        prompts: Vec<Arc<Prompt>>,
        looping: bool,
        max: Duration,
    ) -> Result<(), EndReason>;
    /// The next key press within `timeout` (type-ahead first).
    async fn digit(&mut self, timeout: Duration) -> Result<Option<char>, EndReason>;
    /// Forgets key presses not yet consumed.
    fn clear_digits(&mut self);
    /// Hangs up.
    fn disconnect(&mut self);
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueMetrics {
    pub contacts_in_queue: u64,
    pub callbacks_in_queue: u64,
    pub oldest_age_s: u64,
    pub position: u64,
    pub estimated_wait_s: u64,
    pub agents_available: u64,
    pub agents_online: u64,
    pub open: bool,
}

impl QueueMetrics {
    pub fn get(&self, m: Metric) -> u64 {
        match m {
            Metric::ContactsInQueue => self.contacts_in_queue,
            Metric::CallbacksInQueue => self.callbacks_in_queue,
            Metric::OldestContactAgeS => self.oldest_age_s,
            Metric::Position => self.position,
            Metric::EstimatedWaitS => self.estimated_wait_s,
            Metric::AgentsAvailable => self.agents_available,
            Metric::AgentsOnline => self.agents_online,
            Metric::Open => u64::from(self.open),
        }
    }
}

/// What a Transfer to queue block in callback mode asks for.
#[derive(Debug, Clone)]
pub struct CallbackRequest {
    pub contact: Contact,
    pub queue: String,
    pub number: String,
    pub initial_delay: Duration,
    pub max_retries: u32,
    pub retry_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackRefusal {
    AtCapacity,
    Duplicate,
    NotAllowed(String),
    Failed(String),
}

/// The contact centre as a flow sees it.
#[allow(async_fn_in_trait)]
pub trait ContactCenter {
    fn metrics(&self, queue: &str, contact: &Contact) -> QueueMetrics;
    fn queue_full(&self, queue: &str) -> bool;
    fn dial_rules(&self) -> &phone::DialRules;
    fn default_country(&self) -> Option<phonenumber::country::Id>;
    async fn create_callback(&self, req: CallbackRequest) -> Result<String, CallbackRefusal>;
}

/// How a flow run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A Disconnect block (or a missing error branch) hung up.
    Disconnected,
    /// The caller went away (or the call failed).
    Ended(EndReason),
    /// Voice transfer: the caller now waits in this queue.
    Queued { queue: String },
    /// A whisper flow reached its end without disconnecting.
    Finished,
    /// The step budget ran out.
    StepLimit,
}

pub struct FlowRun<'a, Io: CallIo, Cc: ContactCenter> {
    pub flow: &'a Flow,
    pub io: &'a mut Io,
    pub cc: &'a Cc,
    pub prompts: &'a PromptLibrary,
    pub tones: &'a crate::media::tones::Tones,
    pub contact: &'a mut Contact,
    /// For Transfer to flow blocks.
    pub flows: Option<&'a super::FlowSet>,
}

/// How deep Transfer to flow may nest (flows calling each other).
const MAX_DEPTH: usize = 5;

impl<Io: CallIo, Cc: ContactCenter> FlowRun<'_, Io, Cc> {
    fn vars(&self) -> Variables {
        let q = self
            .contact
            .working_queue
            .as_deref()
            .map(|q| self.cc.metrics(q, self.contact));
        Variables {
            wait_minutes: self.contact.waited_secs(SystemTime::now()) / 60,
            queue_position: q.map(|m| m.position),
            contacts_in_queue: q.map(|m| m.contacts_in_queue),
        }
    }

    fn audio(&self, items: &[String]) -> Result<Vec<Arc<Prompt>>, String> {
        resolve(items, self.prompts, self.contact, &self.vars()).map_err(|e| e.0)
    }

    /// Takes an optional error branch, or ends the call when there is none.
    fn error_branch(&mut self, block: &str, branch: &Option<String>, why: &str) -> Option<String> {
        warn!(flow = %self.flow.name, block, error = why, "block failed");
        branch.clone()
    }

    /// Runs a whisper flow: reaching a Disconnect block (or any error)
    /// ends the whisper, not the call.
    pub async fn run_whisper(&mut self) -> Outcome {
        self.run_inner(true, 0).await
    }

    pub async fn run(&mut self) -> Outcome {
        self.run_inner(false, 0).await
    }

    async fn run_inner(&mut self, whisper: bool, depth: usize) -> Outcome {
        let mut current = self.flow.start.clone();
        let mut loops: HashMap<String, u32> = HashMap::new();
        for _ in 0..MAX_STEPS {
            let Some(block) = self.flow.blocks.get(&current) else {
                warn!(flow = %self.flow.name, block = %current, "no such block");
                if whisper {
                    return Outcome::Finished;
                }
                self.io.disconnect();
                return Outcome::Disconnected;
            };
            info!(flow = %self.flow.name, block = %current, kind = %block.kind(), "block");
            if let Block::TransferToFlow { flow } = block {
                let sub = self.flows.and_then(|f| f.get(flow));
                let Some(sub) = sub.filter(|_| depth < MAX_DEPTH) else {
                    warn!(flow = %flow, "cannot transfer to flow");
                    if !whisper {
                        self.io.disconnect();
                    }
                    return Outcome::Disconnected;
                };
                info!(from = %self.flow.name, to = %sub.name, "transfer to flow");
                let mut run = FlowRun {
                    flow: &sub,
                    io: &mut *self.io,
                    cc: self.cc,
                    prompts: self.prompts,
                    tones: self.tones,
                    contact: &mut *self.contact,
                    flows: self.flows,
                };
                return Box::pin(run.run_inner(whisper, depth + 1)).await;
            }
            let next = match self.step(&current, block, &mut loops).await {
                Ok(Some(n)) => n,
                Ok(None) if whisper => return Outcome::Finished,
                Ok(None) => {
                    self.io.disconnect();
                    return Outcome::Disconnected;
                }
                Err(o) => return o,
            };
            current = next;
        }
        warn!(flow = %self.flow.name, "flow exceeded {MAX_STEPS} steps");
        if !whisper {
            self.io.disconnect();
        }
        Outcome::StepLimit
    }

    /// Runs one block: `Ok(Some(next))`, `Ok(None)` to hang up, or `Err` to
    /// end the run with that outcome.
    async fn step(
        &mut self,
        name: &str,
        block: &Block,
        loops: &mut HashMap<String, u32>,
    ) -> Result<Option<String>, Outcome> {
        match block {
            Block::PlayPrompt {
                prompts,
                next,
                on_error,
            } => match self.audio(prompts) {
                Ok(audio) => {
                    self.io.play(audio, false).await.map_err(Outcome::Ended)?;
                    Ok(Some(next.clone()))
                }
                Err(e) => Ok(self.error_branch(name, on_error, &e)),
            },
            Block::GetInput {
                prompts,
                timeout_s,
                barge_in,
                conditions,
                on_timeout,
                on_no_match,
                on_error,
            } => {
                let audio = match self.audio(prompts) {
                    Ok(a) => a,
                    Err(e) => return Ok(self.error_branch(name, on_error, &e)),
                };
                self.io.clear_digits();
                let mut key = self
                    .io
                    .play(audio, *barge_in)
                    .await
                    .map_err(Outcome::Ended)?;
                if key.is_none() {
                    key = self
                        .io
                        .digit(Duration::from_secs(*timeout_s))
                        .await
                        .map_err(Outcome::Ended)?;
                }
                let Some(k) = key else {
                    info!(block = name, "no input");
                    return Ok(Some(on_timeout.clone()));
                };
                info!(block = name, key = %k, "input");
                Ok(Some(
                    conditions
                        .get(&k.to_string())
                        .unwrap_or(on_no_match)
                        .clone(),
                ))
            }
            Block::StoreInput {
                prompts,
                attribute,
                mode,
                format,
                country,
                max_digits,
                terminator,
                timeout_s,
                inter_digit_timeout_s,
                next,
                on_invalid,
                on_timeout,
                on_error,
            } => {
                let audio = match self.audio(prompts) {
                    Ok(a) => a,
                    Err(e) => return Ok(self.error_branch(name, on_error, &e)),
                };
                self.io.clear_digits();
                let first = self.io.play(audio, true).await.map_err(Outcome::Ended)?;
                let mut typed = String::new();
                let mut terminated = false;
                let mut key = match first {
                    Some(k) => Some(k),
                    None => self
                        .io
                        .digit(Duration::from_secs(*timeout_s))
                        .await
                        .map_err(Outcome::Ended)?,
                };
                while let Some(k) = key {
                    if terminator.starts_with(k) {
                        terminated = true;
                        break;
                    }
                    if k.is_ascii_digit() {
                        typed.push(k);
                    }
                    if typed.len() >= *max_digits {
                        break;
                    }
                    key = self
                        .io
                        .digit(Duration::from_secs(*inter_digit_timeout_s))
                        .await
                        .map_err(Outcome::Ended)?;
                }
                info!(
                    block = name,
                    digits = typed.len(),
                    terminated,
                    "input stored"
                );
                if typed.is_empty() {
                    return Ok(Some(match (terminated, on_invalid) {
                        (true, Some(inv)) => inv.clone(),
                        _ => on_timeout.clone(),
                    }));
                }
                // The digits as typed, for reading back (the stored value
                // may be normalised to E.164).
                self.contact
                    .attributes
                    .insert(format!("{attribute}_keyed"), typed.clone());
                let value = match mode {
                    InputMode::Digits => typed,
                    InputMode::PhoneNumber => {
                        let c = country.as_deref().and_then(phone::country);
                        // A number callgate would never dial is invalid
                        // here already: the caller hears so before
                        // confirming it, not after.
                        let checked = phone::normalize_keyed(&typed, *format, c)
                            .map_err(|e| e.to_string())
                            .and_then(|n| {
                                self.cc.dial_rules().check(&n).map_err(|e| e.to_string())?;
                                Ok(n)
                            });
                        match checked {
                            Ok(n) => n,
                            Err(reason) => {
                                info!(block = name, %reason, "invalid phone number");
                                return Ok(on_invalid.clone().or_else(|| Some(on_timeout.clone())));
                            }
                        }
                    }
                };
                self.contact.attributes.insert(attribute.clone(), value);
                Ok(Some(next.clone()))
            }
            Block::SetCallbackNumber {
                source,
                attribute,
                next,
                on_invalid,
            } => {
                let number = match source {
                    CallbackNumberSource::Attribute => attribute
                        .as_deref()
                        .and_then(|a| self.contact.attributes.get(a).cloned()),
                    CallbackNumberSource::CallerNumber => self.contact.caller_number.clone(),
                };
                match number.map(|n| (self.cc.dial_rules().check(&n), n)) {
                    Some((Ok(()), n)) => {
                        info!(number = %n, "callback number set");
                        self.contact.callback_number = Some(n);
                        Ok(Some(next.clone()))
                    }
                    Some((Err(e), _)) => {
                        info!(reason = %e, "callback number refused");
                        Ok(Some(on_invalid.clone()))
                    }
                    None => Ok(Some(on_invalid.clone())),
                }
            }
            Block::SetWorkingQueue { queue, next } => {
                self.contact.working_queue = Some(queue.clone());
                Ok(Some(next.clone()))
            }
            Block::SetContactAttributes { attributes, next } => {
                for (k, v) in attributes {
                    self.contact.attributes.insert(k.clone(), v.clone());
                }
                Ok(Some(next.clone()))
            }
            Block::TransferToQueue {
                mode,
                queue,
                callback_queue,
                initial_delay_s,
                max_retries,
                retry_interval_s,
                next,
                on_at_capacity,
                on_duplicate,
                on_error,
            } => {
                let Some(q) = queue.clone().or_else(|| self.contact.working_queue.clone()) else {
                    return Ok(self.error_branch(
                        name,
                        on_error,
                        "no queue: set a working queue first",
                    ));
                };
                match mode {
                    TransferMode::Voice => {
                        if self.cc.queue_full(&q) {
                            info!(queue = %q, "queue at capacity");
                            return Ok(Some(on_at_capacity.clone()));
                        }
                        self.contact.working_queue = Some(q.clone());
                        Err(Outcome::Queued { queue: q })
                    }
                    TransferMode::Callback => {
                        let target = callback_queue.clone().unwrap_or(q);
                        let Some(number) = self.contact.callback_number.clone() else {
                            return Ok(self.error_branch(name, on_error, "no callback number set"));
                        };
                        let req = CallbackRequest {
                            contact: self.contact.clone(),
                            queue: target.clone(),
                            number,
                            initial_delay: Duration::from_secs(*initial_delay_s),
                            max_retries: *max_retries,
                            retry_interval: Duration::from_secs(*retry_interval_s),
                        };
                        match self.cc.create_callback(req).await {
                            Ok(id) => {
                                info!(callback = %id, queue = %target, "callback created");
                                Ok(next.clone())
                            }
                            Err(CallbackRefusal::AtCapacity) => Ok(Some(on_at_capacity.clone())),
                            Err(CallbackRefusal::Duplicate) => Ok(Some(
                                on_duplicate
                                    .clone()
                                    .unwrap_or_else(|| on_at_capacity.clone()),
                            )),
                            Err(
                                CallbackRefusal::NotAllowed(why) | CallbackRefusal::Failed(why),
                            ) => Ok(self.error_branch(name, on_error, &why)),
                        }
                    }
                }
            }
            Block::CheckQueueStatus {
                queue,
                conditions,
                on_no_match,
            } => {
                let Some(q) = queue.clone().or_else(|| self.contact.working_queue.clone()) else {
                    return Ok(Some(on_no_match.clone()));
                };
                let m = self.cc.metrics(&q, self.contact);
                let hit = conditions
                    .iter()
                    .find(|c| c.op.holds(m.get(c.metric), c.value));
                Ok(Some(
                    hit.map(|c| c.next.clone())
                        .unwrap_or_else(|| on_no_match.clone()),
                ))
            }
            Block::Loop { count, body, done } => {
                let used = loops.entry(name.to_string()).or_insert(0);
                if *used < *count {
                    *used += 1;
                    Ok(Some(body.clone()))
                } else {
                    *used = 0;
                    Ok(Some(done.clone()))
                }
            }
            Block::PlayTone {
                tone,
                seconds,
                next,
            } => {
                let t = self.tones.get(*tone);
                self.io
                    .play_for(vec![t], true, Duration::from_secs(*seconds))
                    .await
                    .map_err(Outcome::Ended)?;
                Ok(Some(next.clone()))
            }
            Block::Disconnect {} | Block::TransferToFlow { .. } => Ok(None),
        }
    }
}
