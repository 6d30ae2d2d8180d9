//! Whispers: what one side hears before a bridge (the agent: "callback
//! for a customer who has been waiting N minutes"; the customer: "hello,
//! this is your scheduled callback"). A queue's whisper flow if it has
//! one, else built-in prompts.

use super::context::Contact;
use super::driver::{Callbacks, run};
use super::engine::{Mode, Outcome};
use super::env::FlowEnv;
use super::load::Flow;
use super::speech::{Variables, resolve};
use crate::call::{EndReason, Session};
use std::sync::Arc;
use std::time::SystemTime;
use tracing::warn;

/// Plays the whisper flow `flow`, or else the prompt items `default`
/// (which may speak `number:wait_minutes`). `Err` only if the call ended:
/// a whisper that fails to play is skipped, never the bridge.
pub async fn whisper<E: FlowEnv + Callbacks>(
    env: &E,
    session: &mut Session,
    flow: Option<Arc<Flow>>,
    default: &[&str],
    contact: &mut Contact,
) -> Result<(), EndReason> {
    if let Some(flow) = flow {
        return match run(flow, session, contact, env, Mode::Whisper).await {
            Outcome::Ended(r) => Err(r),
            _ => Ok(()),
        };
    }
    let items: Vec<String> = default.iter().map(|s| s.to_string()).collect();
    let vars = Variables {
        wait_minutes: contact.waited_secs(SystemTime::now()) / 60,
        queue_position: None,
        contacts_in_queue: None,
    };
    match resolve(&items, env.prompts(), contact, &vars) {
        Ok(audio) => {
            session.play_and_wait(audio, false).await?;
        }
        Err(e) => warn!(error = %e, "whisper prompts missing"),
    }
    Ok(())
}
