//! Runs a flow on a call: feeds the engine what happens on the call's
//! session (end of playback, keys, time) and carries out what it asks
//! (play, stop, create a callback, hang up). The only async part of a
//! flow; every decision is the engine's.

use super::context::Contact;
use super::engine::{Action, FlowEngine, Input, Mode, Outcome};
use super::env::{CallbackRefusal, CallbackRequest, FlowEnv};
use super::load::Flow;
use crate::call::{Session, Waited};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Creates callbacks (durably: it takes a database write).
#[allow(async_fn_in_trait)]
pub trait Callbacks {
    async fn create_callback(&self, req: CallbackRequest) -> Result<String, CallbackRefusal>;
}

/// Runs `flow` on `session` until it ends, the call ends, or (voice
/// transfer) the caller is to wait in a queue. `contact` comes back with
/// what the flow stored.
pub async fn run<E: FlowEnv + Callbacks>(
    flow: Arc<Flow>,
    session: &mut Session,
    contact: &mut Contact,
    env: &E,
    mode: Mode,
) -> Outcome {
    let mut engine = FlowEngine::new(
        flow,
        contact.clone(),
        mode,
        Instant::now(),
        SystemTime::now(),
    );
    engine.start(env, Instant::now());
    // The playback the engine waits for: `PlaybackDone` of any other
    // (stopped or replaced) is not its business.
    let mut token = None;
    let outcome = loop {
        while let Some(action) = engine.poll_action() {
            match action {
                Action::Play { audio, looping } => {
                    token = session.play(audio, looping);
                    if token.is_none() {
                        // No media leg: nothing will play, say so at once.
                        engine.handle(Input::PlaybackDone, env, Instant::now());
                    }
                }
                Action::StopPlayback => {
                    session.stop_playback();
                    token = None;
                }
                Action::CreateCallback(req) => {
                    let result = env.create_callback(*req).await;
                    engine.handle(Input::CallbackCreated(result), env, Instant::now());
                }
                Action::Hangup => session.hangup(),
            }
        }
        if let Some(o) = engine.outcome() {
            break o.clone();
        }
        match session.wait_for(token, true, false, engine.timeout()).await {
            Err(reason) => break Outcome::Ended(reason),
            Ok(Waited::PlaybackDone) => {
                token = None;
                engine.handle(Input::PlaybackDone, env, Instant::now());
            }
            Ok(Waited::Digit(d)) => engine.handle(Input::Digit(d), env, Instant::now()),
            Ok(Waited::Timeout) => engine.handle_timeout(env, Instant::now()),
            Ok(Waited::Response) => {}
        }
    };
    *contact = engine.into_contact();
    outcome
}
