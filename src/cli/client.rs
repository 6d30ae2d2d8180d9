//! A small HTTP/1.1 client for the operator commands (hyper's, over one
//! TCP connection per request): the gateway's API on the local network.
//! TLS, if wanted, is a reverse proxy's job; this says so instead of
//! sending a token in clear to an https:// URL it cannot speak.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Url(String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, String),
    #[error("HTTP: {0}")]
    Http(String),
    /// The API answered with an error.
    #[error("{status}: {message}")]
    Api { status: u16, message: String },
}

/// Where the API is and how to open it.
#[derive(Debug, Clone)]
pub struct Client {
    /// host:port to connect to.
    authority: String,
    /// Path prefix (a reverse proxy's), without trailing slash.
    prefix: String,
    token: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub next_cursor: Option<String>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Http(format!("the answer is not JSON: {e}")))
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// `url`: `http://host:port[/prefix]`.
    pub fn new(url: &str, token: &str) -> Result<Client, ClientError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            ClientError::Url(format!(
                "{url:?}: only http:// URLs (put a TLS proxy in front of callgate for https)"
            ))
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(ClientError::Url(format!("{url:?}: no host")));
        }
        Ok(Client {
            authority: authority.to_string(),
            prefix: prefix.to_string(),
            token: token.to_string(),
        })
    }

    pub fn base(&self) -> String {
        format!("http://{}{}", self.authority, self.prefix)
    }

    pub async fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.send(Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> Result<Reply, ClientError> {
        self.send(Method::POST, path).await
    }

    /// One request; an error status becomes `ClientError::Api` with the
    /// API's own message.
    async fn send(&self, method: Method, path: &str) -> Result<Reply, ClientError> {
        let work = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| ClientError::Connect(self.base(), e.to_string()))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
            tokio::spawn(conn);
            let req = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.prefix))
                .header(hyper::header::HOST, &self.authority)
                .header(
                    hyper::header::AUTHORIZATION,
                    format!("Bearer {}", self.token),
                )
                .body(Empty::<Bytes>::new())
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let status = resp.status();
            let next_cursor = resp
                .headers()
                .get("x-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            Ok::<_, ClientError>(Reply {
                status,
                next_cursor,
                body,
            })
        };
        let reply = tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Connect(self.base(), "no answer within 30 s".into()))??;
        if reply.status.is_success() {
            return Ok(reply);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).trim().to_string());
        Err(ClientError::Api {
            status: reply.status.as_u16(),
            message,
        })
    }
}

/// A query string value, percent-encoded.
pub fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_encoding() {
        let c = Client::new("http://127.0.0.1:8080/ops/", "t").unwrap();
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("127.0.0.1:8080", "/ops")
        );
        assert!(Client::new("https://x", "t").is_err());
        assert!(Client::new("http://", "t").is_err());
        assert_eq!(encode("+1 2:3"), "%2B1%202%3A3");
    }
}
