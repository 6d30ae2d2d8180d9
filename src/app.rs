//! The application: what callgate does with calls. Holds what every call
//! task shares (configuration, media engine, the way to the SIP core) and
//! starts a task per call.

use crate::call::uas::InboundCall;
use crate::call::{CallEvent, CallRef, SipHandle};
use crate::config::Config;
use crate::media::engine::MediaEngine;
use crate::services;
use crate::sip::message::Request;
use crate::sip::transaction::ServerTxId;
use crate::sip::transport::Peer;
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

pub struct App {
    pub config: Arc<Config>,
    pub media: Arc<MediaEngine>,
    pub sip: SipHandle,
}

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
        let span = tracing::info_span!(
            "call",
            call = %call,
            call_id = %crate::sip::message::MessageExt::call_id(&request).unwrap_or_default(),
        );
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
        tokio::spawn(async move { app.run_inbound(inbound).await }.instrument(span));
        events_tx
    }

    async fn run_inbound(self: Arc<Self>, mut call: InboundCall) {
        let dialled = call.dialled();
        tracing::info!(dialled = %dialled, from = %crate::sip::message::MessageExt::header(&call.invite, &crate::sip::message::HeaderName::From).unwrap_or_default(), "incoming call");
        let test = self.config.test_numbers.iter().find(|t| {
            t.number == dialled
                || t.number.trim_start_matches('+') == dialled.trim_start_matches('+')
        });
        match test {
            Some(t) => match self.media.prompts.get(&t.prompt) {
                Some(prompt) => {
                    let _ = services::test_number::run(&mut call, t, prompt).await;
                }
                None => call.reject(500, Some("Prompt not loaded"), &[]),
            },
            None => call.reject(404, Some("No flow for this number"), &[]),
        }
        call.finish();
    }

    /// Every prompt the configuration refers to, for loading at start-up.
    pub fn prompt_names(config: &Config) -> Vec<String> {
        let mut names: Vec<String> = config
            .test_numbers
            .iter()
            .map(|t| t.prompt.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
