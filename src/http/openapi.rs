//! The OpenAPI 3.1 document, built from the same route list as the router
//! (`super::routes`), so it cannot drift from what is served.

use axum::Extension;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

/// The two halves (token required or not) as one document.
pub fn finish(protected: OpenApi, public: OpenApi) -> OpenApi {
    let mut doc = protected.merge_from(public);
    doc.info = InfoBuilder::new()
        .title("callgate")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The operator's API of callgate, a SIP contact gateway with queued callbacks. \
             Everything but the health check, this document and the dashboard's files needs \
             `Authorization: Bearer <http.token>`. Errors are JSON: `{\"error\": \"...\"}`. \
             Lists are paged with `?limit=` and `?cursor=`: when more rows follow, the \
             response carries `X-Next-Cursor` and a `Link: <...>; rel=\"next\"` header.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("http.token from the configuration file"))
                .build(),
        ),
    );
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
pub async fn document(Extension(doc): Extension<Arc<OpenApi>>) -> Response {
    axum::Json(doc.as_ref().clone()).into_response()
}
