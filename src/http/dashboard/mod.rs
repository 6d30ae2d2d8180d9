//! The supervisor's dashboard: one page, a script and a stylesheet,
//! compiled into the binary (no CDN, no build step). The files hold no
//! data: the page signs in with the API token and gets everything from
//! the API and its event stream (see `app.js`). A strict Content Security
//! Policy allows nothing but these files and this origin's API.

use super::error::{ApiError, ErrorBody, Path};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("index.html");
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("app.css"),
    ),
    ("favicon.svg", "image/svg+xml", include_str!("favicon.svg")),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The dashboard (HTML).
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html")))]
pub async fn page() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// The dashboard (HTML), under its own name.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html")))]
pub async fn page_alias() -> Response {
    page().await
}

/// The dashboard's script, stylesheet and icon.
#[utoipa::path(get, path = "/assets/{file}", tag = "dashboard",
    params(("file" = String, Path, description = "app.js, app.css or favicon.svg")),
    responses((status = 200, description = "The file"), (status = 404, body = ErrorBody)))]
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, ct, body)| file(ct, body))
        .ok_or_else(|| ApiError::not_found(format!("no asset {name}")))
}
