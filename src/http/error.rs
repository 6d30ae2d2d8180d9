//! Every error the HTTP interface answers is JSON: `{"error": "..."}` with
//! the status. Handlers return `ApiError`; the extractors here turn the
//! framework's own rejections (a body that is not JSON, a missing
//! Content-Type, a body over the limit, a bad query or path) into the same
//! shape; unknown paths and methods get it from the router's fallbacks;
//! and `json_errors` rewrites anything else that slipped through as text.

use crate::store::StoreError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// The error body of every endpoint.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_error(self.status, &self.message)
    }
}

pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(id) => ApiError::not_found(format!("no callback {id}")),
            StoreError::WrongState(id, state, _) => {
                ApiError::new(StatusCode::CONFLICT, format!("callback {id} is {state}"))
            }
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// A rejection's status and text, as JSON.
fn rejection(status: StatusCode, text: String) -> ApiError {
    ApiError::new(status, text)
}

/// `axum::Json` whose rejections (400 syntax, 415 content type, 413 size,
/// 422 shape) are JSON.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e @ JsonRejection::JsonDataError(_)) => {
                // Valid JSON of the wrong shape is still a bad request.
                Err(rejection(StatusCode::BAD_REQUEST, e.body_text()))
            }
            Err(e) => Err(rejection(e.status(), e.body_text())),
        }
    }
}

/// `axum::extract::Query` with JSON rejections.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| rejection(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

/// `axum::extract::Path` with JSON rejections.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e: PathRejection| rejection(e.status(), e.body_text()))
    }
}

/// The router's fallback: no such path.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such path: {}", uri.path()))
}

/// The router's fallback for a known path and another method.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed here"),
    )
}

/// Error bodies longer than this are not rewritten but cut.
const MAX_TEXT: usize = 4096;

/// The last line of defence: an error response that is not JSON (from a
/// layer or a rejection not covered above) is rewritten as one, its text
/// as the message. Successful responses pass untouched.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let body = json!({ "error": message }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::middleware::from_fn;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// (status line, head, body) of `GET path` through `json_errors`.
    async fn get_through_layer(path: &str) -> (String, String, String) {
        let app = Router::new()
            .route(
                "/text",
                get(|| async { (StatusCode::BAD_GATEWAY, "upstream said no") }),
            )
            .route("/empty", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route("/ok", get(|| async { "plain and fine" }))
            .layer(from_fn(json_errors));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let status = head.lines().next().unwrap().to_string();
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    #[tokio::test]
    async fn error_text_that_slipped_through_is_rewritten_as_json() {
        let (status, head, body) = get_through_layer("/text").await;
        assert!(status.contains("502"), "{status}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(body, r#"{"error":"upstream said no"}"#);
        let (status, head, body) = get_through_layer("/empty").await;
        assert!(status.contains("503"), "{status}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(body, r#"{"error":"Service Unavailable"}"#);
        let (_, head, body) = get_through_layer("/ok").await;
        assert!(head.contains("content-type: text/plain"), "{head}");
        assert_eq!(body, "plain and fine");
    }
}
