//! Graceful shutdown (SIGTERM, SIGINT): new calls and probes get 503 with
//! Retry-After; calls in progress may finish for up to `shutdown.drain_s`;
//! then every call task is ended — its calls hang up as they drop (BYE
//! once answered, CANCEL while ringing, 480 before answer) and a callback
//! being offered or dialled goes back to its queue without using an
//! attempt. The SIP core stays up until our BYEs and CANCELs are answered
//! (or a short wait ran out), contact records are flushed, and the process
//! exits 0 — all within `shutdown.deadline_s` after the drain.

use super::Running;
use crate::call::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long at most to wait for answers to the BYEs and CANCELs sent.
const ANSWERS: Duration = Duration::from_secs(4);

impl Running {
    /// Returns whether everything ended within the deadline.
    pub async fn shutdown(self) -> bool {
        let centre = &self.app.centre;
        let cfg = &self.app.config.shutdown;
        info!(
            calls = centre.tasks.len(),
            "shutting down: new calls refused"
        );
        self.app.sip.send(Command::Drain);
        centre.begin_drain();
        let drain_until = Instant::now() + Duration::from_secs(cfg.drain_s);
        while !centre.tasks.is_empty() && Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(cfg.deadline_s);
        let live = centre.tasks.len();
        let ended = centre
            .tasks
            .cancel_and_wait(deadline.saturating_duration_since(Instant::now()))
            .await;
        info!(calls = live, all_ended = ended, "calls ended");
        // Claimed callbacks nobody was offered go back to the other nodes
        // now rather than when their leases run out.
        match centre.dialer.book.release_unstarted().await {
            Ok(0) => {}
            Ok(n) => info!(released = n, "claimed callbacks handed back"),
            Err(e) => warn!(error = %e, "claimed callbacks not handed back"),
        }
        let answers_until = (Instant::now() + ANSWERS).min(deadline);
        while self.app.stats.requests_in_flight.load(Ordering::Relaxed) > 0
            && Instant::now() < answers_until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let flushed = tokio::time::timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
            centre.records.flush(),
        )
        .await
        .is_ok();
        if !flushed {
            warn!("contact records not all written before the deadline");
        }
        self.core.abort();
        info!("shut down");
        ended && flushed
    }
}
