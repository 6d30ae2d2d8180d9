//! Server-Sent Events for the dashboard: `series` (the hour of samples)
//! and `board` (queues, agents, pending callbacks) at once, then `board`
//! whenever it changes and `sample` every 10 s. The token goes in the
//! `Authorization` header like everywhere else (the dashboard reads the
//! stream with fetch(), not EventSource, which cannot set headers: no
//! token ever goes in a URL).

use super::Shared;
use super::error::ErrorBody;
use super::live::Live;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

struct Feed {
    live: Arc<Live>,
    board: watch::Receiver<Arc<String>>,
    samples: broadcast::Receiver<Arc<String>>,
    sent_series: bool,
    sent_board: bool,
}

fn event(name: &str, data: &str) -> Event {
    Event::default().event(name).data(data)
}

/// The next event; `None` ends the stream (the server is going away).
async fn next(f: &mut Feed) -> Option<Event> {
    if !f.sent_series {
        f.sent_series = true;
        return Some(event("series", &f.live.series_json()));
    }
    if !f.sent_board {
        f.sent_board = true;
        let board = f.board.borrow_and_update().clone();
        if !board.is_empty() {
            return Some(event("board", &board));
        }
    }
    tokio::select! {
        changed = f.board.changed() => {
            changed.ok()?;
            let board = f.board.borrow_and_update().clone();
            Some(event("board", &board))
        }
        sample = f.samples.recv() => match sample {
            Ok(s) => Some(event("sample", &s)),
            // Fell behind: start the charts over.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Some(event("series", &f.live.series_json()))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        },
    }
}

fn feed(live: Arc<Live>) -> impl Stream<Item = Result<Event, Infallible>> {
    let f = Feed {
        board: live.board(),
        samples: live.samples(),
        live,
        sent_series: false,
        sent_board: false,
    };
    stream::unfold(
        f,
        |mut f| async move { next(&mut f).await.map(|e| (Ok(e), f)) },
    )
}

/// The live view as Server-Sent Events (`text/event-stream`): events
/// `series` (`{"interval_s":10,"queues":{"q":[[t_ms,depth,oldest_age_s],…]}}`),
/// `board` (`{"queues":[…],"agents":[…],"callbacks":[…],"callbacks_pending":n}`,
/// numbers masked but the last four digits) and `sample`
/// (`{"t":ms,"queues":{"q":[depth,oldest_age_s]}}`); a comment every 15 s
/// keeps proxies from closing it.
#[utoipa::path(get, path = "/api/events", tag = "real-time", security(("token" = [])),
    responses((status = 200, description = "An endless event stream", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody)))]
pub async fn stream(State(ctx): Shared) -> Response {
    let sse = Sse::new(feed(ctx.live.clone()))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let mut resp = sse.into_response();
    // nginx and its kind would otherwise hold events back.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}
