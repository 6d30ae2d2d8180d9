//! The application: what callgate does with calls. Holds what every call
//! task shares (configuration, media engine, the contact centre, the way
//! to the SIP core) and starts a task per call.

use crate::call::uas::InboundCall;
use crate::call::{CallEvent, CallRef, SipHandle};
use crate::centre::Centre;
use crate::config::Config;
use crate::config::load::number_key;
use crate::flow::FlowSet;
use crate::media::engine::MediaEngine;
use crate::services;
use crate::sip::message::{HeaderName, MessageExt, Request};
use crate::sip::transaction::ServerTxId;
use crate::sip::transport::Peer;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

pub struct App {
    pub config: Arc<Config>,
    pub media: Arc<MediaEngine>,
    pub sip: SipHandle,
    pub centre: Arc<Centre>,
    pub stats: Arc<crate::endpoint::Stats>,
}

/// Prompts the built-in whispers and read-backs use when a queue has no
/// flow of its own.
const BUILT_IN: &[&str] = &[
    "agent_whisper_inbound",
    "agent_whisper_callback",
    "customer_whisper",
    "callback_no_answer_agent",
    "callback_failed_agent",
    "minutes",
    "machine_connect_agent",
    "machine_retry_agent",
    "machine_message_agent",
    "machine_message",
];

impl App {
    /// Starts the task for a new inbound call; returns where its events go.
    pub fn start_inbound(
        self: &Arc<Self>,
        call: CallRef,
        tx: ServerTxId,
        request: Request,
        peer: Peer,
    ) -> mpsc::UnboundedSender<CallEvent> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("call", call = %call, call_id = %request.call_id().unwrap_or_default());
        let inbound = InboundCall::new(
            call,
            self.sip.clone(),
            events_rx,
            request,
            tx,
            peer,
            self.media.clone(),
        );
        let app = self.clone();
        self.centre
            .tasks
            .spawn(async move { app.run_inbound(inbound).await }.instrument(span));
        events_tx
    }

    async fn run_inbound(self: Arc<Self>, mut call: InboundCall) {
        let dialled = call.dialled();
        tracing::info!(dialled = %dialled, from = %call.invite.header(&HeaderName::From).unwrap_or_default(), "incoming call");
        let key = number_key(&dialled);
        let same = |n: &str| number_key(n) == key;
        if let Some(t) = self.config.test_numbers.iter().find(|t| same(&t.number)) {
            match self.media.prompts.get(&t.prompt) {
                Some(prompt) => {
                    let _ = services::test_number::run(&mut call, t, prompt).await;
                }
                None => call.reject(500, Some("Prompt not loaded"), &[]),
            }
            return;
        }
        if let Some(n) = self.config.numbers.iter().find(|n| same(&n.number)) {
            let flow = n.flow.clone();
            if n.ring_s > 0 {
                call.ring();
                if call
                    .pause(std::time::Duration::from_secs(n.ring_s))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            crate::centre::inbound::run(self.centre.clone(), call, &flow).await;
            return;
        }
        call.reject(404, Some("No flow for this number"), &[]);
    }

    /// Every prompt the configuration refers to, for loading at start-up.
    pub fn prompt_names(config: &Config, flows: &FlowSet) -> Vec<String> {
        let mut names: Vec<String> = config
            .test_numbers
            .iter()
            .map(|t| t.prompt.clone())
            .collect();
        names.extend(flows.prompt_names());
        if !config.queues.is_empty() {
            names.extend(config.queues.iter().map(|q| q.hold_music.clone()));
            names.extend(BUILT_IN.iter().map(|s| s.to_string()));
            names.extend(crate::flow::speech::number_prompt_names());
        }
        names.sort();
        names.dedup();
        names
    }
}
