//! The JSON API. Every error is a status and a JSON body naming it.

use crate::app::App;
use crate::centre::now_ms;
use crate::routing::{AgentStatus, ContactKind};
use crate::store::StoreError;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

type Shared = State<Arc<App>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(id) => error(StatusCode::NOT_FOUND, format!("no callback {id}")),
        StoreError::WrongState(id, state, _) => {
            error(StatusCode::CONFLICT, format!("callback {id} is {state}"))
        }
        e => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Unauthenticated, for load balancers and proxies: answered from memory
/// (the database is probed in the background), so a flood of checks
/// costs no database work. 503 while shutting down or when the database
/// does not answer.
pub async fn health(State(app): Shared) -> Response {
    let status = if app.centre.is_draining() {
        "draining"
    } else if !app.centre.database_ok() {
        "degraded"
    } else {
        "ok"
    };
    let body = json!({ "status": status, "version": env!("CARGO_PKG_VERSION") });
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

#[derive(Serialize)]
struct QueueView {
    name: String,
    max_contacts: usize,
    contacts_in_queue: usize,
    calls_waiting: usize,
    callbacks_waiting: usize,
    callbacks_scheduled: usize,
    offered: usize,
    oldest_contact_age_s: Option<i64>,
    agents: serde_json::Value,
}

pub async fn queues(State(app): Shared) -> Response {
    let now = now_ms();
    let router = app.centre.router.lock();
    let mut names: Vec<String> = router.queue_names().map(str::to_string).collect();
    names.sort();
    let views: Vec<QueueView> = names
        .iter()
        .map(|q| {
            let s = router.snapshot(q, now);
            QueueView {
                name: s.name.clone(),
                max_contacts: s.max_contacts,
                contacts_in_queue: s.contacts,
                calls_waiting: s.voice_waiting,
                callbacks_waiting: s.callbacks_waiting,
                callbacks_scheduled: s.callbacks_scheduled,
                offered: s.offered,
                oldest_contact_age_s: s.oldest_initial_start.map(|o| (now - o).max(0) / 1000),
                agents: json!({ "available": s.agents_available, "online": s.agents_online }),
            }
        })
        .collect();
    Json(views).into_response()
}

#[derive(Serialize)]
struct AgentView {
    user: String,
    name: Option<String>,
    routing_profile: Option<String>,
    state: &'static str,
    since_ms: i64,
    registered: bool,
    contact: Option<String>,
    /// The agent's registered phones and how offers reach them.
    registrations: Vec<RegistrationView>,
}

#[derive(Serialize)]
struct RegistrationView {
    /// The Contact as registered.
    contact: String,
    /// Where the REGISTER came from (`udp:ip:port`, `tcp:ip:port`).
    source: String,
    /// The transport offers leave on, and where they go first.
    transport: &'static str,
    next_hop: String,
    /// RFC 3327 Path, top first (the proxies offers go through).
    path: Vec<String>,
    expires_s: u64,
}

pub async fn agents(State(app): Shared) -> Response {
    let names: std::collections::HashMap<&str, Option<String>> = app
        .config
        .agents
        .iter()
        .map(|a| (a.user.as_str(), a.name.clone()))
        .collect();
    let now = std::time::Instant::now();
    let registrations = |user: &str| -> Vec<RegistrationView> {
        app.centre
            .bindings
            .of(user, now)
            .into_iter()
            .map(|b| {
                let (hop, _) = b.next_hop();
                RegistrationView {
                    contact: b.contact.uri.to_string(),
                    source: b.source.to_string(),
                    transport: match hop.kind {
                        crate::sip::transport::TransportKind::Udp => "udp",
                        crate::sip::transport::TransportKind::Tcp => "tcp",
                    },
                    next_hop: hop.addr.to_string(),
                    expires_s: b.remaining_secs(now),
                    path: b.path,
                }
            })
            .collect()
    };
    let router = app.centre.router.lock();
    let views: Vec<AgentView> = router
        .agents()
        .map(|a| AgentView {
            registrations: registrations(&a.name),
            user: a.name.clone(),
            name: names.get(a.name.as_str()).cloned().flatten(),
            routing_profile: a.profile.clone(),
            state: a.status.name(),
            since_ms: a.since,
            registered: a.registered,
            contact: match &a.status {
                AgentStatus::Reserved { contact } | AgentStatus::OnContact { contact } => {
                    Some(contact.clone())
                }
                _ => None,
            },
        })
        .collect();
    Json(views).into_response()
}

#[derive(Deserialize)]
pub struct StateBody {
    state: String,
}

pub async fn set_agent_state(
    State(app): Shared,
    Path(user): Path<String>,
    Json(body): Json<StateBody>,
) -> Response {
    let available = match body.state.as_str() {
        "available" => true,
        "offline" => false,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("state must be \"available\" or \"offline\", not {other:?}"),
            );
        }
    };
    let r = app
        .centre
        .router
        .lock()
        .set_available(&user, available, now_ms());
    match r {
        Ok(()) => {
            app.centre.wake.notify_one();
            let state = app
                .centre
                .router
                .lock()
                .agent(&user)
                .map(|a| a.status.name())
                .unwrap_or("offline");
            Json(json!({ "user": user, "state": state })).into_response()
        }
        Err(_) => error(StatusCode::NOT_FOUND, format!("no agent {user}")),
    }
}

#[derive(Serialize)]
struct ContactView {
    id: String,
    queue: String,
    kind: ContactKind,
    state: &'static str,
    initial_start_ms: i64,
    enqueued_ms: i64,
    routable_from_ms: i64,
    waited_s: i64,
    offered_to: Option<String>,
}

fn contact_views(app: &App) -> Vec<ContactView> {
    let now = now_ms();
    let router = app.centre.router.lock();
    let mut v: Vec<ContactView> = router
        .contacts()
        .map(|c| ContactView {
            id: c.id.clone(),
            queue: c.queue.clone(),
            kind: c.kind,
            state: if c.offered_to.is_some() {
                "offered"
            } else if c.eligible > now {
                "scheduled"
            } else {
                "queued"
            },
            initial_start_ms: c.initial_start,
            enqueued_ms: c.enqueued,
            routable_from_ms: c.eligible,
            waited_s: (now - c.initial_start).max(0) / 1000,
            offered_to: c.offered_to.clone(),
        })
        .collect();
    v.sort_by(|a, b| (a.initial_start_ms, &a.id).cmp(&(b.initial_start_ms, &b.id)));
    v
}

/// Contacts in queues now, in line order.
pub async fn contacts(State(app): Shared) -> Response {
    Json(contact_views(&app)).into_response()
}

/// One contact: live queue state, callback record and contact record.
pub async fn contact(State(app): Shared, Path(id): Path<String>) -> Response {
    let live = contact_views(&app).into_iter().find(|c| c.id == id);
    let centre = app.centre.clone();
    let id2 = id.clone();
    let stored = centre
        .db(move |s| Ok((s.callback(&id2)?, s.contact(&id2)?, s.attempts(&id2)?)))
        .await;
    match stored {
        Err(e) => store_error(e),
        Ok((None, None, _)) if live.is_none() => {
            error(StatusCode::NOT_FOUND, format!("no contact {id}"))
        }
        Ok((callback, record, attempts)) => Json(json!({
            "id": id,
            "queued": live,
            "callback": callback,
            "attempts": attempts,
            "record": record,
        }))
        .into_response(),
    }
}

/// StopContact: removes a queued or scheduled callback; it is never dialled
/// afterwards.
pub async fn stop_contact(State(app): Shared, Path(id): Path<String>) -> Response {
    match app.centre.stop_callback(&id).await {
        Ok(()) => Json(json!({ "id": id, "state": "stopped" })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    limit: Option<usize>,
}

pub async fn callbacks(State(app): Shared, Query(q): Query<CallbackQuery>) -> Response {
    let limit = q.limit.unwrap_or(500).min(5000);
    let state = q.state.clone();
    let all = app
        .centre
        .db(move |s| s.all_callbacks(state.as_deref(), limit))
        .await;
    match all {
        Ok(v) => Json(v).into_response(),
        Err(e) => store_error(e),
    }
}

pub async fn callback(State(app): Shared, Path(id): Path<String>) -> Response {
    let id2 = id.clone();
    let r = app
        .centre
        .db(move |s| Ok((s.callback(&id2)?, s.attempts(&id2)?, s.history(&id2)?)))
        .await;
    match r {
        Ok((Some(cb), attempts, history)) => {
            let history: Vec<_> = history
                .into_iter()
                .map(|(at, state, detail)| json!({ "at_ms": at, "state": state, "detail": detail }))
                .collect();
            Json(json!({ "callback": cb, "attempts": attempts, "history": history }))
                .into_response()
        }
        Ok((None, ..)) => error(StatusCode::NOT_FOUND, format!("no callback {id}")),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
pub struct RecordQuery {
    limit: Option<usize>,
}

pub async fn records(State(app): Shared, Query(q): Query<RecordQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(5000);
    match app.centre.db(move |s| s.contacts(limit)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => store_error(e),
    }
}
