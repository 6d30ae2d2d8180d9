//! The operator's HTTP interface: a JSON API (token required), Prometheus
//! metrics, a dashboard page and an unauthenticated health check.

pub mod api;
pub mod dashboard;
pub mod metrics;

use crate::app::App;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::sync::Arc;

/// Compares digests, so that neither the content nor the length of the
/// token leaks through timing.
fn token_ok(expected: &str, given: Option<&str>) -> bool {
    use sha2::{Digest, Sha256};
    let Some(given) = given else { return false };
    let (a, b) = (Sha256::digest(expected), Sha256::digest(given));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// `Authorization: Bearer <token>` on everything but /health and the
/// dashboard page. Only the header: a token in the URL (`?token=`) ends up
/// in proxy and server logs, browser history and Referer headers, so it is
/// not accepted at all.
async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if token_ok(&app.config.http.token, bearer) {
        let mut resp = next.run(req).await;
        // Operational data: never kept by a shared cache.
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        resp
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "token required (Authorization: Bearer <token>)\n",
        )
            .into_response()
    }
}

pub fn router(app: Arc<App>) -> Router {
    let protected = Router::new()
        .route("/api/queues", get(api::queues))
        .route("/api/agents", get(api::agents))
        .route("/api/agents/{user}/state", put(api::set_agent_state))
        .route("/api/contacts", get(api::contacts))
        .route("/api/contacts/{id}", get(api::contact))
        .route("/api/contacts/{id}/stop", post(api::stop_contact))
        .route("/api/callbacks", get(api::callbacks))
        .route("/api/callbacks/{id}", get(api::callback))
        .route("/api/records", get(api::records))
        .route("/metrics", get(metrics::render))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_token,
        ));
    Router::new()
        .route("/health", get(api::health))
        .route("/", get(dashboard::page))
        .route("/dashboard", get(dashboard::page))
        .merge(protected)
        .with_state(app)
}

/// Serves the router on `listener` until the process ends.
pub fn spawn(app: Arc<App>, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    let router = router(app);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(token_ok("abc", Some("abc")));
        assert!(!token_ok("abc", Some("abd")));
        assert!(!token_ok("abc", Some("ab")));
        assert!(!token_ok("abc", None));
    }
}
