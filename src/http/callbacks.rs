//! Callbacks as stored: a page at a time, and one with its attempts and
//! state history.

use super::Shared;
use super::error::{ApiError, ErrorBody, Path, Query};
use super::page::{self, MAX_LIMIT};
use crate::store::{Attempt, CallbackFilter, CallbackRecord, CallbackState};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
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

/// Callbacks, newest first.
#[utoipa::path(get, path = "/api/callbacks", tag = "callbacks", params(CallbackQuery),
    security(("token" = [])),
    responses((status = 200, body = [CallbackRecord], headers(("x-next-cursor" = String))),
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
    Ok((
        page::headers("callbacks", page.next.as_ref(), &uri),
        axum::Json(page.items),
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
    callback: CallbackRecord,
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
        callback,
        attempts,
        history,
    })
    .into_response())
}
