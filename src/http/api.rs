//! The live part of the JSON API, answered from memory: health, queues,
//! agents, contacts in queues; StopContact. Every error is a status and a
//! JSON body naming it (`error.rs`).

use super::error::{ApiError, ErrorBody, Json, Path, Query};
use super::page::{self, MAX_LIMIT};
use super::{Ctx, Shared};
use crate::app::App;
use crate::centre::now_ms;
use crate::routing::{AgentStatus, ContactKind};
use crate::store::{Attempt, CallbackRecord, ContactRecord, Cursor};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `draining` (shutting down) or `degraded` (the database does
    /// not answer).
    status: &'static str,
    version: &'static str,
}

/// Unauthenticated, for load balancers and proxies: answered from memory
/// (the database is probed in the background), so a flood of checks
/// costs no database work. 503 while shutting down or when the database
/// does not answer.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(ctx): Shared) -> Response {
    let centre = &ctx.app.centre;
    let status = if centre.is_draining() {
        "draining"
    } else if !centre.database_ok() {
        "degraded"
    } else {
        "ok"
    };
    let body = Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
    };
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// Agents serving a queue.
#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct QueueAgents {
    available: usize,
    /// Not offline.
    online: usize,
    /// By state: `offline`, `available`, `reserved`, `on_contact`,
    /// `after_contact_work`, `missed`.
    by_state: BTreeMap<String, usize>,
}

/// Since midnight in the queue's `utc_offset_minutes`.
#[derive(Serialize, Clone, Default, PartialEq, ToSchema)]
pub struct QueueToday {
    /// Contacts connected to an agent.
    handled: u64,
    /// Callers who hung up while waiting.
    abandoned: u64,
    /// Callback dials the customer answered.
    callbacks_connected: u64,
}

#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct QueueView {
    name: String,
    max_contacts: usize,
    /// Calls and callbacks together (what `max_contacts` limits).
    contacts_in_queue: usize,
    calls_waiting: usize,
    /// Callbacks routable now.
    callbacks_waiting: usize,
    /// Callbacks in their initial delay or retry interval.
    callbacks_scheduled: usize,
    /// Contacts ringing an agent.
    offered: usize,
    /// The oldest contact's original start (epoch ms).
    oldest_contact_start_ms: Option<i64>,
    oldest_contact_age_s: Option<i64>,
    /// For a contact arriving now: its place in line times the queue's
    /// average time-to-agent per place (`wait_cold_start_s` per place,
    /// shared among the agents online, until a first contact was answered).
    estimated_wait_s: u64,
    /// The average time one place in line took recently (an exponentially
    /// weighted average of time-to-agent); null while no contact has yet
    /// reached an agent.
    wait_per_place_s: Option<f64>,
    /// Contacts whose time-to-agent went into that average.
    wait_samples: u64,
    agents: QueueAgents,
    today: QueueToday,
}

impl QueueView {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn contacts_in_queue(&self) -> usize {
        self.contacts_in_queue
    }

    pub fn oldest_age_s(&self) -> i64 {
        self.oldest_contact_age_s.unwrap_or(0)
    }
}

/// Every queue's view, sorted by name; `now` None leaves ages out (the
/// live view sends start times and the page counts).
pub fn queue_views(
    app: &App,
    today: &std::collections::HashMap<String, crate::store::DayCounts>,
    now: Option<i64>,
) -> Vec<QueueView> {
    let at = now.unwrap_or_else(now_ms);
    let router = app.centre.router.lock();
    let mut names: Vec<String> = router.queue_names().map(str::to_string).collect();
    names.sort();
    names
        .iter()
        .map(|q| {
            let s = router.snapshot(q, at);
            // A contact arriving now joins behind everyone waiting.
            let position = (s.voice_waiting + s.callbacks_waiting) as u64 + 1;
            let estimate = router.wait_estimate(q);
            QueueView {
                name: s.name.clone(),
                max_contacts: s.max_contacts,
                contacts_in_queue: s.contacts,
                calls_waiting: s.voice_waiting,
                callbacks_waiting: s.callbacks_waiting,
                callbacks_scheduled: s.callbacks_scheduled,
                offered: s.offered,
                oldest_contact_start_ms: s.oldest_initial_start,
                oldest_contact_age_s: now
                    .and(s.oldest_initial_start)
                    .map(|o| (at - o).max(0) / 1000),
                estimated_wait_s: app.centre.estimated_wait_s(&router, &s, position),
                wait_per_place_s: estimate.per_place_s(),
                wait_samples: estimate.samples(),
                agents: QueueAgents {
                    available: s.agents_available,
                    online: s.agents_online,
                    by_state: s
                        .agents_by_state
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                },
                today: today
                    .get(q)
                    .map(|d| QueueToday {
                        handled: d.handled,
                        abandoned: d.abandoned,
                        callbacks_connected: d.callbacks_connected,
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// `?limit=&cursor=` of the lists answered from memory.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows per page, 1–1000 (default 100).
    limit: Option<usize>,
    /// From the previous page's `X-Next-Cursor` header.
    cursor: Option<String>,
}

/// A page of an in-memory list, with the next page's headers.
fn paged<T: Serialize>(
    list: &str,
    items: Vec<T>,
    key: impl Fn(&T) -> Cursor,
    q: &PageQuery,
    uri: &Uri,
) -> Result<Response, ApiError> {
    let limit = page::limit(q.limit, MAX_LIMIT)?;
    let after = page::decode(list, q.cursor.as_deref())?;
    let (items, next) = page::slice(items, key, after.as_ref(), limit);
    Ok((page::headers(list, next.as_ref(), uri), axum::Json(items)).into_response())
}

fn name_key(name: &str) -> Cursor {
    Cursor {
        ms: 0,
        id: name.to_string(),
    }
}

/// Queues with their real-time metrics, by name.
#[utoipa::path(get, path = "/api/queues", tag = "real-time", params(PageQuery),
    security(("token" = [])),
    responses((status = 200, body = [QueueView], headers(("x-next-cursor" = String, description = "Present when another page follows"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn queues(
    State(ctx): Shared,
    Query(q): Query<PageQuery>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let views = queue_views(&ctx.app, &ctx.live.today(), Some(now_ms()));
    paged("queues", views, |v| name_key(&v.name), &q, &uri)
}

#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct AgentView {
    user: String,
    name: Option<String>,
    routing_profile: Option<String>,
    /// `offline`, `available`, `reserved`, `on_contact`,
    /// `after_contact_work`, `missed`.
    state: &'static str,
    /// In this state since (epoch ms).
    since_ms: i64,
    registered: bool,
    /// The contact being offered or handled.
    contact: Option<String>,
    /// The agent's registered phones and how offers reach them.
    registrations: Vec<RegistrationView>,
}

#[derive(Serialize, Clone, PartialEq, ToSchema)]
pub struct RegistrationView {
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

/// Every agent, by user name.
pub fn agent_views(app: &App) -> Vec<AgentView> {
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
    let mut views: Vec<AgentView> = router
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
    views.sort_by(|a, b| a.user.cmp(&b.user));
    views
}

/// Agents and their states, by user name.
#[utoipa::path(get, path = "/api/agents", tag = "real-time", params(PageQuery),
    security(("token" = [])),
    responses((status = 200, body = [AgentView], headers(("x-next-cursor" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn agents(
    State(ctx): Shared,
    Query(q): Query<PageQuery>,
    uri: Uri,
) -> Result<Response, ApiError> {
    paged(
        "agents",
        agent_views(&ctx.app),
        |v| name_key(&v.user),
        &q,
        &uri,
    )
}

#[derive(Deserialize, ToSchema)]
pub struct StateBody {
    /// `available` or `offline`.
    state: String,
}

/// Sets an agent available or offline.
#[utoipa::path(put, path = "/api/agents/{user}/state", tag = "real-time",
    params(("user" = String, Path, description = "The agent's user name")),
    request_body = StateBody, security(("token" = [])),
    responses((status = 200, description = "The agent's state now"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub async fn set_agent_state(
    State(ctx): Shared,
    Path(user): Path<String>,
    Json(body): Json<StateBody>,
) -> Result<Response, ApiError> {
    let available = match body.state.as_str() {
        "available" => true,
        "offline" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "state must be \"available\" or \"offline\", not {other:?}"
            )));
        }
    };
    let centre = &ctx.app.centre;
    let r = centre
        .router
        .lock()
        .set_available(&user, available, now_ms());
    if r.is_err() {
        return Err(ApiError::not_found(format!("no agent {user}")));
    }
    centre.wake.notify_one();
    let state = centre
        .router
        .lock()
        .agent(&user)
        .map(|a| a.status.name())
        .unwrap_or("offline");
    Ok(axum::Json(json!({ "user": user, "state": state })).into_response())
}

#[derive(Serialize, Clone, ToSchema)]
pub struct ContactView {
    id: String,
    queue: String,
    /// `voice` or `callback`.
    #[schema(value_type = String)]
    kind: ContactKind,
    /// `queued`, `scheduled` or `offered`.
    state: &'static str,
    initial_start_ms: i64,
    enqueued_ms: i64,
    routable_from_ms: i64,
    waited_s: i64,
    offered_to: Option<String>,
}

fn contact_views(ctx: &Ctx) -> Vec<ContactView> {
    let now = now_ms();
    let router = ctx.app.centre.router.lock();
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

/// Contacts in queues now, in line order (by original start).
#[utoipa::path(get, path = "/api/contacts", tag = "real-time", params(PageQuery),
    security(("token" = [])),
    responses((status = 200, body = [ContactView], headers(("x-next-cursor" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn contacts(
    State(ctx): Shared,
    Query(q): Query<PageQuery>,
    uri: Uri,
) -> Result<Response, ApiError> {
    paged(
        "contacts",
        contact_views(&ctx),
        |c| Cursor {
            ms: c.initial_start_ms,
            id: c.id.clone(),
        },
        &q,
        &uri,
    )
}

#[derive(Serialize, ToSchema)]
pub struct ContactDetail {
    id: String,
    /// In a queue now.
    queued: Option<ContactView>,
    /// When the contact is a callback.
    callback: Option<CallbackRecord>,
    attempts: Vec<Attempt>,
    record: Option<ContactRecord>,
}

/// One contact: live queue state, callback, attempts and contact record.
#[utoipa::path(get, path = "/api/contacts/{id}", tag = "real-time",
    params(("id" = String, Path, description = "Contact id")), security(("token" = [])),
    responses((status = 200, body = ContactDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn contact(State(ctx): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let live = contact_views(&ctx).into_iter().find(|c| c.id == id);
    let id2 = id.clone();
    let (callback, record, attempts) = ctx
        .app
        .centre
        .db(move |s| Ok((s.callback(&id2)?, s.contact(&id2)?, s.attempts(&id2)?)))
        .await?;
    if callback.is_none() && record.is_none() && live.is_none() {
        return Err(ApiError::not_found(format!("no contact {id}")));
    }
    Ok(axum::Json(ContactDetail {
        id,
        queued: live,
        callback,
        attempts,
        record,
    })
    .into_response())
}

/// StopContact: removes a queued or scheduled callback (or one whose offer
/// is ringing an agent); it is never dialled afterwards. 409 once it is
/// being dialled or has finished.
#[utoipa::path(post, path = "/api/contacts/{id}/stop", tag = "real-time",
    params(("id" = String, Path, description = "Callback (contact) id")), security(("token" = [])),
    responses((status = 200, description = "Stopped"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn stop_contact(
    State(ctx): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.app.centre.stop_callback(&id).await?;
    Ok(axum::Json(json!({ "id": id, "state": "stopped" })).into_response())
}
