//! Prometheus text exposition (format 0.0.4), rendered from live state on
//! each scrape: queues, agents, callbacks, SIP counters (messages,
//! responses by code, transactions by outcome), histograms (queue wait,
//! ring time, call set-up), RTP pacing.

use super::Shared;
use super::error::ErrorBody;
use crate::centre::now_ms;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

fn family(out: &mut String, name: &str, kind: Kind, help: &str) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Summary => "summary",
    };
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("token" = [])),
    responses((status = 200, description = "Prometheus text", content_type = "text/plain; version=0.0.4"),
        (status = 401, body = ErrorBody)))]
pub async fn render(State(ctx): Shared) -> Response {
    let app = &ctx.app;
    let mut out = String::with_capacity(8192);
    let now = now_ms();
    {
        let router = app.centre.router.lock();
        let mut names: Vec<String> = router.queue_names().map(str::to_string).collect();
        names.sort();
        let snaps: Vec<_> = names.iter().map(|q| router.snapshot(q, now)).collect();
        type Gauge = (
            &'static str,
            &'static str,
            fn(&crate::routing::QueueSnapshot) -> i64,
        );
        let gauges: [Gauge; 6] = [
            (
                "callgate_queue_contacts",
                "Contacts in the queue: waiting calls and callbacks together.",
                |s| s.contacts as i64,
            ),
            (
                "callgate_queue_calls_waiting",
                "Callers waiting on hold.",
                |s| s.voice_waiting as i64,
            ),
            (
                "callgate_queue_callbacks_waiting",
                "Callbacks routable now.",
                |s| s.callbacks_waiting as i64,
            ),
            (
                "callgate_queue_callbacks_scheduled",
                "Callbacks in their initial delay or retry interval.",
                |s| s.callbacks_scheduled as i64,
            ),
            (
                "callgate_queue_offered",
                "Contacts ringing an agent.",
                |s| s.offered as i64,
            ),
            ("callgate_queue_max_contacts", "Queue size limit.", |s| {
                s.max_contacts as i64
            }),
        ];
        for (name, help, f) in gauges {
            family(&mut out, name, Kind::Gauge, help);
            for s in &snaps {
                let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", label(&s.name), f(s));
            }
        }
        family(
            &mut out,
            "callgate_queue_oldest_contact_age_seconds",
            Kind::Gauge,
            "Age of the oldest contact by its original start time.",
        );
        for s in &snaps {
            let age = s
                .oldest_initial_start
                .map(|o| (now - o).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "callgate_queue_oldest_contact_age_seconds{{queue=\"{}\"}} {age}",
                label(&s.name)
            );
        }
        family(
            &mut out,
            "callgate_queue_estimated_wait_seconds",
            Kind::Gauge,
            "Estimated wait of a contact joining the queue now.",
        );
        for s in &snaps {
            let position = (s.voice_waiting + s.callbacks_waiting) as u64 + 1;
            let wait = app.centre.estimated_wait_s(&router, s, position);
            let _ = writeln!(
                out,
                "callgate_queue_estimated_wait_seconds{{queue=\"{}\"}} {wait}",
                label(&s.name)
            );
        }
        family(
            &mut out,
            "callgate_queue_wait_per_place_seconds",
            Kind::Gauge,
            "Weighted average of recent time-to-agent per place in line (absent while no contact has reached an agent).",
        );
        for s in &snaps {
            if let Some(w) = router.wait_estimate(&s.name).per_place_s() {
                let _ = writeln!(
                    out,
                    "callgate_queue_wait_per_place_seconds{{queue=\"{}\"}} {w}",
                    label(&s.name)
                );
            }
        }
        family(&mut out, "callgate_agents", Kind::Gauge, "Agents by state.");
        for state in [
            "offline",
            "available",
            "reserved",
            "on_contact",
            "after_contact_work",
            "missed",
        ] {
            let n = router.agents().filter(|a| a.status.name() == state).count();
            let _ = writeln!(out, "callgate_agents{{state=\"{state}\"}} {n}");
        }
    }
    if let Ok(counts) = app.centre.store.callback_counts() {
        family(
            &mut out,
            "callgate_callbacks",
            Kind::Gauge,
            "Callbacks in the database by state.",
        );
        for (state, n) in counts {
            let _ = writeln!(out, "callgate_callbacks{{state=\"{}\"}} {n}", label(&state));
        }
    }
    let st = &app.stats;
    for (name, help, v) in [
        (
            "callgate_sip_messages_total",
            "SIP messages received.",
            &st.received,
        ),
        (
            "callgate_sip_malformed_total",
            "Messages that could not be parsed (400 or dropped).",
            &st.malformed,
        ),
        (
            "callgate_sip_rejected_total",
            "Requests refused by validation (400, 416, 420, 505…).",
            &st.rejected,
        ),
        (
            "callgate_sip_rate_limited_total",
            "Messages dropped by the per-source rate limit.",
            &st.rate_limited,
        ),
        (
            "callgate_sip_banned_dropped_total",
            "Messages dropped from banned sources.",
            &st.banned_dropped,
        ),
        (
            "callgate_sip_oversized_total",
            "Messages over the size limit.",
            &st.oversized,
        ),
        (
            "callgate_calls_total",
            "Inbound calls received.",
            &st.calls_total,
        ),
    ] {
        family(&mut out, name, Kind::Counter, help);
        let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
    }
    family(
        &mut out,
        "callgate_calls_active",
        Kind::Gauge,
        "Calls in progress (inbound and outbound legs).",
    );
    let _ = writeln!(
        out,
        "callgate_calls_active {}",
        st.calls_active.load(Ordering::Relaxed)
    );
    st.responses.render(&mut out);
    st.transactions.render(&mut out);
    st.call_setup.render(&mut out);
    app.centre.histograms.queue_wait.render(&mut out);
    app.centre.histograms.ring.render(&mut out);
    let pacers = app.media.pacer_stats();
    family(
        &mut out,
        "callgate_rtp_packets_sent_total",
        Kind::Counter,
        "RTP packets sent by the pacers.",
    );
    let sent: u64 = pacers.iter().map(|p| p.sent.load(Ordering::Relaxed)).sum();
    let _ = writeln!(out, "callgate_rtp_packets_sent_total {sent}");
    family(
        &mut out,
        "callgate_rtp_send_lateness_seconds",
        Kind::Summary,
        "Lateness of RTP sends against their schedule since start.",
    );
    for q in [0.5, 0.99, 0.999] {
        let worst = pacers
            .iter()
            .map(|p| p.lateness(q))
            .max()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "callgate_rtp_send_lateness_seconds{{quantile=\"{q}\"}} {}",
            worst.as_secs_f64()
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_lines_name_a_type() {
        let mut out = String::new();
        family(&mut out, "m", Kind::Gauge, "Help text.");
        assert_eq!(out, "# HELP m Help text.\n# TYPE m gauge\n");
    }
}
