//! The operator's HTTP interface: a JSON API (token required), live
//! updates as Server-Sent Events, Prometheus metrics, the dashboard and
//! an unauthenticated health check. Every route is declared once, with
//! its OpenAPI description (`#[utoipa::path]` on the handler); the router
//! and `/api/openapi.json` are both built from that one list.

pub mod api;
pub mod callbacks;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod records;

use crate::app::App;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the handlers share: the application and the live view.
pub struct Ctx {
    pub app: Arc<App>,
    pub live: Arc<live::Live>,
}

pub type Shared = State<Arc<Ctx>>;

/// Request bodies are small JSON documents.
const BODY_LIMIT: usize = 16 * 1024;

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

/// `Authorization: Bearer <token>` on everything but /health, the OpenAPI
/// document and the dashboard's files. Only the header: a token in the
/// URL (`?token=`) ends up in proxy and server logs, browser history and
/// Referer headers, so it is not accepted at all.
async fn require_token(State(ctx): Shared, req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if token_ok(&ctx.app.config.http.token, bearer) {
        next.run(req).await
    } else {
        let mut resp = error::ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "token required (Authorization: Bearer <token>)",
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        resp
    }
}

/// Operational data and pages: never kept by a shared cache.
async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Every route, with its description. Routes needing the token first.
pub fn routes() -> (OpenApiRouter<Arc<Ctx>>, OpenApiRouter<Arc<Ctx>>) {
    let protected = OpenApiRouter::new()
        .routes(routes!(api::queues))
        .routes(routes!(api::agents))
        .routes(routes!(api::set_agent_state))
        .routes(routes!(api::contacts))
        .routes(routes!(api::contact))
        .routes(routes!(api::stop_contact))
        .routes(routes!(callbacks::list))
        .routes(routes!(callbacks::one))
        .routes(routes!(records::list))
        .routes(routes!(events::stream))
        .routes(routes!(metrics::render));
    let public = OpenApiRouter::new()
        .routes(routes!(api::health))
        .routes(routes!(openapi::document))
        .routes(routes!(dashboard::page))
        .routes(routes!(dashboard::page_alias))
        .routes(routes!(dashboard::asset));
    (protected, public)
}

pub fn router(ctx: Arc<Ctx>) -> Router {
    let (protected, public) = routes();
    let (protected, protected_doc) = protected.split_for_parts();
    let (public, public_doc) = public.split_for_parts();
    let doc = Arc::new(openapi::finish(protected_doc, public_doc));
    let protected = protected.route_layer(from_fn_with_state(ctx.clone(), require_token));
    Router::new()
        .merge(public)
        .merge(protected)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::Extension(doc))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn(no_store))
        .layer(from_fn(error::json_errors))
        .with_state(ctx)
}

/// Starts the live view and serves the router on `listener` until the
/// process ends.
pub fn spawn(app: Arc<App>, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    let live = live::Live::spawn(app.clone());
    let router = router(Arc::new(Ctx { app, live }));
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
