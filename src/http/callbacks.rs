//! Callbacks: created from outside (a website, a CRM) like a caller's flow
//! creates them; as stored, a page at a time, and one with its attempts and
//! state history.

use super::Shared;
use super::error::{ApiError, ErrorBody, Json, Path, Query};
use super::page::{self, MAX_LIMIT};
use crate::centre::new_callback::ApiCallback;
use crate::flow::CallbackRefusal;
use crate::store::{Attempt, CallbackFilter, CallbackRecord, CallbackState};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// `scheduled`, `queued`, `offered`, `dialing`, `connected`, `failed`,
    /// `expired` or `stopped`; or `pending` (the first four).
    state: Option<String>,
    queue: Option<String>,
    /// The customer's number, E.164.
    number: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    limit: Option<usize>,
    /// From the previous page's `X-Next-Cursor` header.
    cursor: Option<String>,
}

/// A stored callback, with when it will be dialled.
#[derive(Serialize, ToSchema)]
pub struct CallbackView {
    #[serde(flatten)]
    callback: CallbackRecord,
    /// While pending (scheduled or queued): when it will be dialled at the
    /// earliest (an agent free), its not-before time moved into the
    /// queue's callback hours. Null otherwise.
    dial_at_ms: Option<i64>,
}

fn view(ctx: &super::Ctx, callback: CallbackRecord, now: i64) -> CallbackView {
    let waiting = matches!(
        callback.state,
        CallbackState::Scheduled | CallbackState::Queued
    );
    CallbackView {
        dial_at_ms: waiting.then(|| ctx.app.centre.dial_at_ms(&callback, now)),
        callback,
    }
}

/// Callbacks, newest first.
#[utoipa::path(get, path = "/api/callbacks", tag = "callbacks", params(CallbackQuery),
    security(("token" = [])),
    responses((status = 200, body = [CallbackView], headers(("x-next-cursor" = String))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(ctx): Shared,
    Query(q): Query<CallbackQuery>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let pending = q.state.as_deref() == Some("pending");
    let state = match q.state.as_deref() {
        None | Some("pending") => None,
        Some(s) => Some(CallbackState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("state {s:?} is not a callback state"))
        })?),
    };
    let limit = page::limit(q.limit, MAX_LIMIT)?;
    let after = page::decode("callbacks", q.cursor.as_deref())?;
    let filter = CallbackFilter {
        state,
        pending,
        queue: q.queue,
        number: q.number,
    };
    let page = ctx
        .app
        .centre
        .db(move |s| s.callbacks_page(&filter, after.as_ref(), limit))
        .await?;
    let now = crate::centre::now_ms();
    let items: Vec<CallbackView> = page.items.into_iter().map(|c| view(&ctx, c, now)).collect();
    Ok((
        page::headers("callbacks", page.next.as_ref(), &uri),
        axum::Json(items),
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct StateChange {
    at_ms: i64,
    state: String,
    detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct CallbackDetail {
    callback: CallbackView,
    attempts: Vec<Attempt>,
    history: Vec<StateChange>,
}

/// One callback with its dial attempts and every state change.
#[utoipa::path(get, path = "/api/callbacks/{id}", tag = "callbacks",
    params(("id" = String, Path, description = "Callback id")), security(("token" = [])),
    responses((status = 200, body = CallbackDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn one(State(ctx): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id2 = id.clone();
    let (cb, attempts, history) = ctx
        .app
        .centre
        .db(move |s| Ok((s.callback(&id2)?, s.attempts(&id2)?, s.history(&id2)?)))
        .await?;
    let callback = cb.ok_or_else(|| ApiError::not_found(format!("no callback {id}")))?;
    let history = history
        .into_iter()
        .map(|(at_ms, state, detail)| StateChange {
            at_ms,
            state,
            detail,
        })
        .collect();
    Ok(axum::Json(CallbackDetail {
        callback: view(&ctx, callback, crate::centre::now_ms()),
        attempts,
        history,
    })
    .into_response())
}

/// A callback to create (`POST /api/callbacks`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCallbackBody {
    /// The customer's number: E.164 (`+12015550123`), or a national
    /// number of the dialer's `country`. It must pass the dial rules.
    number: String,
    /// The queue the callback waits in.
    queue: String,
    /// The customer's name, kept as the attribute `name`.
    name: Option<String>,
    /// Not dialled before this RFC 3339 time (`2026-12-02T09:00:00-05:00`);
    /// absent: as soon as an agent is free. The queue's callback hours
    /// still apply.
    not_before: Option<String>,
    /// Contact attributes (at most 32; names of letters, digits, `_`, `-`,
    /// `.`, up to 64 characters; values up to 256 characters).
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// Default 2 (at most 3 dials); at most 20.
    max_retries: Option<u32>,
    /// Minimum time between attempts, 1–86400 s (default 600).
    retry_interval_s: Option<u64>,
}

/// The callback created.
#[derive(Serialize, ToSchema)]
pub struct Created {
    id: String,
    /// `scheduled` or `queued`.
    state: &'static str,
    queue: String,
    /// E.164.
    number: String,
    not_before_ms: i64,
    /// When it will be dialled at the earliest (an agent free), within the
    /// queue's callback hours.
    dial_at_ms: i64,
    expires_ms: i64,
}

/// Why a callback was refused: `error` for a person, `code` for a program
/// (`invalid_number`, `number_not_allowed`, `unknown_queue`,
/// `invalid_field`, `duplicate`, `at_capacity`).
#[derive(Serialize, ToSchema)]
pub struct RefusalBody {
    error: String,
    code: &'static str,
}

const MAX_ATTRIBUTES: usize = 32;
const MAX_NAME: usize = 64;
const MAX_VALUE: usize = 256;

/// A refused request: its status and body.
struct Refused(StatusCode, RefusalBody);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

fn refusal(status: StatusCode, code: &'static str, error: impl Into<String>) -> Refused {
    Refused(
        status,
        RefusalBody {
            error: error.into(),
            code,
        },
    )
}

fn invalid(error: impl Into<String>) -> Refused {
    refusal(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", error)
}

fn printable(v: &str) -> bool {
    !v.chars().any(char::is_control)
}

/// Checks the fields a request may get wrong and turns them into what the
/// centre stores.
fn validate(
    body: NewCallbackBody,
    country: Option<phonenumber::country::Id>,
    now: i64,
    expiry_s: u64,
) -> Result<ApiCallback, Refused> {
    let number = crate::phone::normalize_signalled(&body.number, country)
        .filter(|_| body.number.len() <= 32)
        .ok_or_else(|| {
            refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_number",
                format!("{:?} is not a valid phone number", body.number),
            )
        })?;
    let mut attributes = body.attributes;
    if let Some(name) = body.name {
        attributes.insert("name".into(), name);
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "at most {MAX_ATTRIBUTES} attributes (the name counts as one)"
        )));
    }
    for (k, v) in &attributes {
        let good_key = !k.is_empty()
            && k.len() <= MAX_NAME
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !good_key {
            return Err(invalid(format!(
                "attribute name {k:?} must be 1-{MAX_NAME} letters, digits, '_', '-' or '.'"
            )));
        }
        if v.chars().count() > MAX_VALUE || !printable(v) {
            return Err(invalid(format!(
                "attribute {k:?}: at most {MAX_VALUE} characters, no control characters"
            )));
        }
    }
    let not_before_ms = match body.not_before.as_deref() {
        None => None,
        Some(t) => {
            let ts: jiff::Timestamp = t.parse().map_err(|_| {
                invalid(format!(
                    "not_before {t:?} is not an RFC 3339 time such as 2026-12-02T09:00:00Z"
                ))
            })?;
            let ms = ts.as_millisecond();
            if ms >= now + (expiry_s as i64) * 1000 {
                return Err(invalid(format!(
                    "not_before {t:?} is after the callback would expire ({expiry_s} s from now)"
                )));
            }
            Some(ms)
        }
    };
    let max_retries = body.max_retries.unwrap_or(2);
    if max_retries > 20 {
        return Err(invalid("max_retries must be at most 20"));
    }
    let retry_interval_s = body.retry_interval_s.unwrap_or(600);
    if !(1..=86_400).contains(&retry_interval_s) {
        return Err(invalid("retry_interval_s must be 1 to 86400"));
    }
    Ok(ApiCallback {
        queue: body.queue,
        number,
        not_before_ms,
        max_retries,
        retry_interval_s,
        attributes,
    })
}

/// Creates a callback, as a caller's flow would: the same number rules,
/// queue size limit, dedupe and durability (stored before the answer).
/// For "call me back" buttons and CRMs.
#[utoipa::path(post, path = "/api/callbacks", tag = "callbacks",
    request_body = NewCallbackBody, security(("token" = [])),
    responses((status = 201, body = Created, headers(("location" = String))),
        (status = 400, body = ErrorBody, description = "Not JSON, or not of this shape"),
        (status = 401, body = ErrorBody),
        (status = 409, body = RefusalBody, description = "A callback for this number is already pending in the queue (`duplicate`), or the queue is full (`at_capacity`)"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = RefusalBody, description = "The number is invalid or refused by the dial rules, the queue does not exist, or a field is out of range"),
        (status = 503, body = ErrorBody, description = "Shutting down")))]
pub async fn create(State(ctx): Shared, Json(body): Json<NewCallbackBody>) -> Response {
    let centre = &ctx.app.centre;
    if centre.is_draining() {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let now = crate::centre::now_ms();
    let req = match validate(body, centre.country, now, ctx.app.config.dialer.expiry_s) {
        Ok(r) => r,
        Err(refused) => return refused.into_response(),
    };
    let rec = match centre.create_api_callback(req).await {
        Ok(rec) => rec,
        Err(e) => {
            let (status, code) = match &e {
                CallbackRefusal::Duplicate => (StatusCode::CONFLICT, "duplicate"),
                CallbackRefusal::AtCapacity => (StatusCode::CONFLICT, "at_capacity"),
                CallbackRefusal::NotAllowed(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "number_not_allowed")
                }
                CallbackRefusal::UnknownQueue(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "unknown_queue")
                }
                CallbackRefusal::Failed(_) => {
                    return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                        .into_response();
                }
            };
            return refusal(status, code, e.to_string()).into_response();
        }
    };
    let body = Created {
        state: rec.state.as_str(),
        dial_at_ms: centre.dial_at_ms(&rec, now),
        id: rec.id.clone(),
        queue: rec.queue,
        number: rec.number,
        not_before_ms: rec.not_before_ms,
        expires_ms: rec.expires_ms,
    };
    let location = format!("/api/callbacks/{}", body.id);
    (
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response()
}
