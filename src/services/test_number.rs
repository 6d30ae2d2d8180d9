//! Diagnostic numbers: answer, play a prompt, log every DTMF digit heard
//! (like a PBX's echo-test number). Operators use them to check audio and
//! DTMF through a trunk; the integration tests use them to check RTP.

use crate::call::uas::{EndReason, InboundCall, Waited};
use crate::config::TestNumberConfig;
use crate::media::prompt::Prompt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

pub async fn run(
    call: &mut InboundCall,
    cfg: &TestNumberConfig,
    prompt: Arc<Prompt>,
) -> Result<(), EndReason> {
    call.ring();
    call.answer()?;
    let deadline = Instant::now() + Duration::from_secs(cfg.max_seconds);
    let token = call.play(vec![prompt], false);
    loop {
        match call.wait(token, false, Some(deadline)).await? {
            Waited::PlaybackDone => break,
            Waited::Timeout => {
                call.hangup();
                return Ok(());
            }
            Waited::Digit(_) | Waited::Response => {}
        }
    }
    info!("test prompt played");
    if cfg.hangup_after_prompt {
        call.hangup();
        return Ok(());
    }
    let mut heard = String::new();
    loop {
        match call.wait(None, true, Some(deadline)).await? {
            Waited::Digit(d) => {
                heard.push(d);
                info!(digits = %heard, "digits so far");
            }
            Waited::Timeout => {
                call.hangup();
                return Ok(());
            }
            Waited::PlaybackDone | Waited::Response => {}
        }
    }
}
