//! Calling a customer back. The agent has accepted the offer; they hear
//! the agent whisper, then ringback while the customer is dialled through
//! the trunk with the queue's caller ID; on answer the customer hears the
//! outbound whisper and the two are bridged. Only the dial counts as an
//! attempt, and it is counted before the INVITE leaves.

use super::book::CallbackBook;
use super::book::{outcome_name, sip_status};
use super::machine;
use super::scheduler::AfterAttempt;
use crate::call::uac::{DialOutcome, DialSpec, OutboundCall, asserted_identity};
use crate::call::{EndReason, SipHandle};
use crate::config::{Config, OnMachine, QueueConfig};
use crate::flow::whisper::whisper;
use crate::flow::{Callbacks, Contact, FlowEnv};
use crate::media::engine::MediaEngine;
use crate::media::tones::Tone;
use crate::phone::DialRules;
use crate::sip::transport::{Peer, TransportKind};
use crate::store::{CallbackRecord, ContactRecord, RecordWriter, initiation};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{Instrument, info, warn};

/// What the dialer needs besides the book.
pub struct Dialer {
    pub book: CallbackBook,
    pub config: Arc<Config>,
    pub sip: SipHandle,
    pub media: Arc<MediaEngine>,
    pub rules: DialRules,
    /// The attempt's contact record is written as it goes: dialled,
    /// connected, ended.
    pub records: RecordWriter,
    /// Ring time of each dial.
    pub histograms: Arc<crate::telemetry::CentreHistograms>,
}

/// How an accepted callback ended.
pub enum CallBack {
    /// The agent hung up before the customer was dialled: the callback is
    /// back in its queue as it was (no attempt used).
    AgentLeft,
    /// The number is no longer allowed (the rules changed): failed, never
    /// dialled.
    Refused,
    /// A dial attempt was made; the decision is stored. The contact
    /// record of the attempt is for the caller to write.
    Attempted {
        decision: AfterAttempt,
        record: Box<ContactRecord>,
    },
    /// The callback changed meanwhile (stopped, or the database failed):
    /// nothing dialled.
    Abandoned,
}

fn now_ms() -> i64 {
    crate::flow::context::epoch_ms(SystemTime::now())
}

/// The contact as whisper flows see it.
fn contact_of(cb: &CallbackRecord) -> Contact {
    let mut c = Contact::new_inbound("", Some(cb.number.clone()));
    c.id = cb.id.clone();
    c.initial_id = cb.initial_contact_id.clone();
    c.initial_start = crate::flow::context::from_epoch_ms(cb.initial_start_ms);
    c.attributes = cb.attributes.clone();
    c.working_queue = Some(cb.queue.clone());
    c
}

impl Dialer {
    /// Runs an accepted callback from the agent whisper to the end of the
    /// conversation.
    pub async fn call_back<E: FlowEnv + Callbacks>(
        &self,
        env: &E,
        agent: &mut OutboundCall,
        (agent_name, agent_leg): (&str, &str),
        cb: CallbackRecord,
        queue: Option<&QueueConfig>,
    ) -> CallBack {
        // The last line of defence against toll fraud: whatever put this
        // number here, and whatever the rules were then, only a number
        // passing today's rules is dialled. Checked before the whisper, so
        // the agent is released at once.
        if let Err(e) = self.rules.check(&cb.number) {
            warn!(callback = %cb.id, number = %cb.number, reason = %e, "callback refused by the dial rules: failed");
            if let Err(e) = self.book.refuse(&cb.id, &e.to_string(), now_ms()).await {
                warn!(error = %e, "callback state not updated");
            }
            agent.hangup();
            return CallBack::Refused;
        }
        let flow = queue
            .and_then(|q| q.agent_whisper_flow.as_deref())
            .and_then(|f| env.flow(f));
        let mut contact = contact_of(&cb);
        let heard = whisper(
            env,
            &mut agent.session,
            flow,
            &["agent_whisper_callback", "number:wait_minutes", "minutes"],
            &mut contact,
        )
        .await;
        if heard.is_err() {
            info!(callback = %cb.id, "agent hung up during the whisper: callback back in the queue");
            return match self
                .book
                .unoffer(
                    &cb.id,
                    "agent hung up before the customer was dialled",
                    now_ms(),
                )
                .await
            {
                Ok(_) => CallBack::AgentLeft,
                Err(e) => {
                    warn!(error = %e, "callback not requeued");
                    CallBack::Abandoned
                }
            };
        }
        let cb = match self.book.begin_attempt(&cb.id, agent_name, now_ms()).await {
            Ok(cb) => cb,
            Err(e) => {
                warn!(error = %e, "callback cannot be dialled");
                agent.hangup();
                return CallBack::Abandoned;
            }
        };
        info!(callback = %cb.id, attempt = cb.attempts, number = %cb.number, "callback attempt");
        // The attempt's own record, chained to the agent leg that made it.
        let mut record = ContactRecord {
            id: uuid::Uuid::new_v4().to_string(),
            initial_contact_id: cb.initial_contact_id.clone(),
            previous_contact_id: Some(agent_leg.to_string()),
            initiation: initiation::DIAL_ATTEMPT.into(),
            queue: Some(cb.queue.clone()),
            agent: Some(agent_name.to_string()),
            customer_number: Some(cb.number.clone()),
            caller_id_used: queue.and_then(|q| q.caller_id_number.clone()),
            attempt: Some(cb.attempts),
            initiated_ms: now_ms(),
            attributes: cb.attributes.clone(),
            ..ContactRecord::default()
        };
        self.records.write(record.clone());
        let span = tracing::info_span!("dial", callback = %cb.id, attempt = cb.attempts, call_id = tracing::field::Empty);
        let decision = self
            .dial_customer(env, agent, &cb, queue, &mut record)
            .instrument(span)
            .await;
        record.disconnected_ms = Some(now_ms());
        let text = match &decision {
            AfterAttempt::Connected => "connected",
            AfterAttempt::Retry { outcome, .. } | AfterAttempt::Fail { outcome } => outcome,
        };
        record
            .disconnect_reason
            .get_or_insert_with(|| text.to_string());
        CallBack::Attempted {
            decision,
            record: Box::new(record),
        }
    }

    /// The trunk, the Request-URI and our identity for dialling `number`.
    fn spec(&self, number: &str, queue: Option<&QueueConfig>) -> Result<DialSpec, String> {
        let cfg = &self.config.dialer;
        let uri = cfg.uri_template.render(number)?;
        let target = cfg.target;
        let peer = match cfg.transport {
            crate::config::Transport::Udp => Peer::udp(target),
            crate::config::Transport::Tcp => Peer::tcp(target, None),
        };
        let display = queue.and_then(|q| q.caller_id_name.clone());
        let user = queue
            .and_then(|q| q.caller_id_number.clone())
            .unwrap_or_else(|| "callgate".into());
        let host = self.sip.local.sent_by(TransportKind::Udp, &target);
        Ok(DialSpec {
            uri,
            peer,
            route: Vec::new(),
            asserted_identity: Some(asserted_identity(display.as_deref(), &user, &host)),
            from_display: display,
            from_user: user,
            extra_headers: vec![],
            credentials: cfg.auth_user.clone().zip(cfg.auth_password.clone()),
        })
    }

    /// Dials, records the attempt's outcome as soon as it is known (so a
    /// crash mid-conversation never dials the customer again), then runs
    /// the conversation.
    async fn dial_customer<E: FlowEnv + Callbacks>(
        &self,
        env: &E,
        agent: &mut OutboundCall,
        cb: &CallbackRecord,
        queue: Option<&QueueConfig>,
        record: &mut ContactRecord,
    ) -> AfterAttempt {
        let outcome = match self.spec(&cb.number, queue) {
            Err(e) => {
                warn!(error = %e, "cannot dial");
                DialOutcome::Failed(500)
            }
            Ok(spec) => {
                // Ringback for the agent while the customer's phone rings.
                agent
                    .session
                    .play(vec![self.media.tones.get(Tone::Ringback)], true);
                match OutboundCall::dial(self.sip.clone(), self.media.clone(), &spec) {
                    Err(_) => DialOutcome::Failed(503),
                    Ok(mut customer) => {
                        tracing::Span::current().record("call_id", customer.call_id());
                        record.call_id = Some(customer.call_id().to_string());
                        self.records.write(record.clone());
                        let ring = Duration::from_secs(self.config.dialer.ring_timeout_s);
                        // If the agent hangs up while the customer's phone
                        // rings, give up.
                        let agent_gone =
                            async { while agent.session.wait(None, false, None).await.is_ok() {} };
                        let sent = std::time::Instant::now();
                        let outcome = customer.wait_answer(ring, agent_gone).await;
                        let rang = sent.elapsed().as_secs_f64();
                        self.histograms.ring.observe(&["customer"], rang);
                        record.ring_ms = Some((rang * 1000.0) as i64);
                        record.outcome = Some(outcome_name(outcome).into());
                        record.sip_status = sip_status(outcome);
                        if outcome == DialOutcome::Answered {
                            return self.answered(env, agent, customer, cb, queue, record).await;
                        }
                        outcome
                    }
                }
            }
        };
        let decision = self.store_outcome(cb, outcome).await;
        if agent.session.ended.is_none() {
            // Tell the agent what happens next, then release them.
            let words = match decision {
                AfterAttempt::Retry { .. } => "callback_no_answer_agent",
                _ => "callback_failed_agent",
            };
            if let Some(p) = self.media.prompts.get(words) {
                let _ = agent.session.play_and_wait(vec![p], false).await;
            }
            agent.hangup();
        }
        decision
    }

    async fn store_outcome(&self, cb: &CallbackRecord, outcome: DialOutcome) -> AfterAttempt {
        match self.book.end_attempt(cb, outcome, now_ms()).await {
            Ok((decision, _)) => {
                info!(callback = %cb.id, decision = ?decision, "attempt finished");
                decision
            }
            Err(e) => {
                warn!(error = %e, "callback state not updated");
                self.book.decide(cb, outcome, now_ms())
            }
        }
    }

    /// The line answered. With `on_machine` set, a person or a machine?
    /// (The agent hears ringback meanwhile.)
    async fn answered<E: FlowEnv + Callbacks>(
        &self,
        env: &E,
        agent: &mut OutboundCall,
        customer: OutboundCall,
        cb: &CallbackRecord,
        queue: Option<&QueueConfig>,
        record: &mut ContactRecord,
    ) -> AfterAttempt {
        let Some(action) = queue.and_then(|q| q.on_machine) else {
            return self
                .converse(env, agent, customer, cb, queue, record, true)
                .await;
        };
        let verdict = machine::detect(&customer.session).await;
        info!(
            machine = verdict.is_machine(),
            cause = verdict.cause(),
            "answering-machine detection"
        );
        if !verdict.is_machine() {
            return self
                .converse(env, agent, customer, cb, queue, record, true)
                .await;
        }
        record.outcome = Some(format!("answering machine ({})", verdict.cause()));
        match action {
            OnMachine::Connect => {
                self.tell(agent, "machine_connect_agent").await;
                self.converse(env, agent, customer, cb, queue, record, false)
                    .await
            }
            OnMachine::Retry | OnMachine::Message => {
                self.machine_answered(agent, customer, cb, action, record)
                    .await
            }
        }
    }

    /// Plays `prompt` to the agent, to its end.
    async fn tell(&self, agent: &mut OutboundCall, prompt: &str) {
        if let Some(p) = self.media.prompts.get(prompt) {
            let _ = agent.session.play_and_wait(vec![p], false).await;
        }
    }

    /// A machine answered and the queue does not connect machines: leave a
    /// message or not, hang up, record the attempt, tell the agent.
    async fn machine_answered(
        &self,
        agent: &mut OutboundCall,
        mut customer: OutboundCall,
        cb: &CallbackRecord,
        action: OnMachine,
        record: &mut ContactRecord,
    ) -> AfterAttempt {
        let decision = if action == OnMachine::Message {
            machine::greeting_end(&customer.session).await;
            if let Some(p) = self.media.prompts.get("machine_message") {
                let _ = customer.session.play_and_wait(vec![p], false).await;
            }
            AfterAttempt::Fail {
                outcome: "answering machine: message left".into(),
            }
        } else {
            super::scheduler::after_machine(cb, now_ms())
        };
        customer.hangup();
        let text = match &decision {
            AfterAttempt::Retry { outcome, .. } | AfterAttempt::Fail { outcome } => outcome.clone(),
            AfterAttempt::Connected => "connected".into(),
        };
        record.disconnect_reason = Some(text);
        if let Err(e) = self
            .book
            .end_attempt_decided(cb, decision.clone(), now_ms())
            .await
        {
            warn!(error = %e, "callback state not updated");
        }
        info!(callback = %cb.id, decision = ?decision, "answering machine: attempt finished");
        if agent.session.ended.is_none() {
            let words = match (&decision, action) {
                (_, OnMachine::Message) => "machine_message_agent",
                (AfterAttempt::Retry { .. }, _) => "machine_retry_agent",
                _ => "callback_failed_agent",
            };
            self.tell(agent, words).await;
            agent.hangup();
        }
        decision
    }

    /// The customer answered: the outbound whisper (unless a machine is
    /// being connected), then the bridge until one side hangs up.
    #[allow(clippy::too_many_arguments)]
    async fn converse<E: FlowEnv + Callbacks>(
        &self,
        env: &E,
        agent: &mut OutboundCall,
        mut customer: OutboundCall,
        cb: &CallbackRecord,
        queue: Option<&QueueConfig>,
        record: &mut ContactRecord,
        whispered_to: bool,
    ) -> AfterAttempt {
        let answered = now_ms();
        record.connected_ms = Some(answered);
        self.records.write(record.clone());
        // The callback contact itself: answered, by whom.
        self.records.write(ContactRecord {
            agent: record.agent.clone(),
            connected_ms: Some(answered),
            ..ContactRecord::update(&cb.contact_id)
        });
        info!(number = %cb.number, "customer answered");
        let flow = queue
            .and_then(|q| q.outbound_whisper_flow.as_deref())
            .and_then(|f| env.flow(f));
        let mut contact = contact_of(cb);
        // Stored as connected while the customer hears the whisper (not
        // after it: the customer must not wait on a disk write).
        let (stored, whispered) =
            tokio::join!(self.store_outcome(cb, DialOutcome::Answered), async {
                if !whispered_to {
                    return Ok(());
                }
                whisper(
                    env,
                    &mut customer.session,
                    flow,
                    &["customer_whisper"],
                    &mut contact,
                )
                .await
            });
        if whispered.is_err() || agent.session.ended.is_some() {
            // Answered, so it counts as connected even if a side left early.
            record.disconnect_reason = Some("ended during the whisper".into());
            self.close_callback(cb, "ended during the whisper");
            agent.hangup();
            return stored;
        }
        if let (Some(a), Some(c)) = (agent.session.leg.as_ref(), customer.session.leg.as_ref()) {
            // Either side may hold; the other hears the queue's music.
            let music: Vec<_> = queue
                .and_then(|q| self.media.prompts.get(&q.hold_music))
                .into_iter()
                .collect();
            a.set_hold_music(music.clone());
            c.set_hold_music(music);
            a.link().bridge(&c.link());
        }
        let bridged = now_ms();
        record.connected_to_agent_ms = Some(bridged);
        self.records.write(record.clone());
        self.records.write(ContactRecord {
            connected_to_agent_ms: Some(bridged),
            ..ContactRecord::update(&cb.contact_id)
        });
        info!("customer and agent bridged");
        let who = tokio::select! {
            r = until_ended(&mut agent.session) => ("agent hung up", r),
            r = until_ended(&mut customer.session) => ("customer hung up", r),
        };
        record.disconnect_reason = Some(who.0.into());
        self.close_callback(cb, who.0);
        agent.hangup();
        customer.hangup();
        stored
    }

    /// The callback's conversation is over: its contact record closes.
    fn close_callback(&self, cb: &CallbackRecord, reason: &str) {
        self.records.write(ContactRecord {
            disconnected_ms: Some(now_ms()),
            disconnect_reason: Some(reason.to_string()),
            ..ContactRecord::update(&cb.contact_id)
        });
    }
}

async fn until_ended(session: &mut crate::call::Session) -> EndReason {
    loop {
        if let Err(r) = session.wait(None, false, None).await {
            return r;
        }
    }
}
