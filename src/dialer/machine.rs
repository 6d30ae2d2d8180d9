//! Answering-machine detection on a callback the customer's line answered:
//! the first seconds of what the line sends are classified
//! (`media::amd`, app_amd's approach) while the agent still hears
//! ringback, so the agent is bridged only to a person — or told it is a
//! machine (queue `on_machine`).

use crate::call::Session;
use crate::media::amd::{Amd, AmdConfig, Verdict};
use std::time::Duration;
use tokio::time::Instant;

/// A peer sending nothing for this long is silent (no RTP while quiet).
const QUIET_TICK: Duration = Duration::from_millis(100);

/// Classifies the answering party from its audio.
pub async fn detect(session: &Session) -> Verdict {
    let Some(leg) = session.leg.as_ref() else {
        return Verdict::NotSure;
    };
    let cfg = AmdConfig::default();
    let mut rx = leg.tap_audio();
    let mut amd = Amd::new(cfg);
    // The detector counts audio time; the deadline only guards a peer
    // whose packets stop and start.
    let deadline = Instant::now() + Duration::from_millis(u64::from(cfg.total_ms) + 1000);
    let verdict = loop {
        tokio::select! {
            pcm = rx.recv() => match pcm {
                Some(pcm) => if let Some(v) = amd.feed(&pcm) { break v },
                None => break amd.finish(),
            },
            _ = tokio::time::sleep(QUIET_TICK) => {
                if let Some(v) = amd.silence(QUIET_TICK.as_millis() as u32) {
                    break v;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break amd.finish(),
        }
    };
    leg.untap_audio();
    verdict
}

/// Mean absolute amplitude below which audio is silence (as `AmdConfig`).
const QUIET: u32 = 256;
/// The greeting (and its beep) is over after this much silence.
const END_OF_GREETING: Duration = Duration::from_millis(1200);
/// A message is left at the latest this long after the verdict.
const LONGEST_GREETING: Duration = Duration::from_secs(20);

/// Waits for a voicemail greeting to end (a pause after the beep), so a
/// message played afterwards is recorded whole.
pub async fn greeting_end(session: &Session) {
    let Some(leg) = session.leg.as_ref() else {
        return;
    };
    let mut rx = leg.tap_audio();
    let deadline = Instant::now() + LONGEST_GREETING;
    let mut quiet_since = Instant::now();
    loop {
        let until_quiet = quiet_since + END_OF_GREETING;
        tokio::select! {
            pcm = rx.recv() => match pcm {
                Some(pcm) => {
                    let sum: u64 = pcm.iter().map(|s| u64::from(s.unsigned_abs())).sum();
                    if sum / (pcm.len().max(1) as u64) >= u64::from(QUIET) {
                        quiet_since = Instant::now();
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(until_quiet) => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    leg.untap_audio();
}
