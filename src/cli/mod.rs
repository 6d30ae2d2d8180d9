//! The operator's commands on the same binary: `status`, `callbacks list`,
//! `callbacks stop ID`, `records export`. They talk to a running gateway
//! through its HTTP API: the URL and token come from `CALLGATE_URL` and
//! `CALLGATE_TOKEN`, or else from the configuration file's `[http]`
//! (`listen`, `token`).

pub mod client;
pub mod table;

use client::{Client, ClientError, encode};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use table::{Table, duration};

/// What to ask.
#[derive(Debug, Clone)]
pub enum Request {
    Status,
    Callbacks {
        state: Option<String>,
        queue: Option<String>,
        limit: usize,
    },
    Stop {
        id: String,
    },
    Export {
        since: String,
        until: Option<String>,
        queue: Option<String>,
        number: Option<String>,
    },
}

/// The API's URL and token: the environment first, then the config file.
pub fn client(config: &Path) -> Result<Client, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (mut url, mut token) = (env("CALLGATE_URL"), env("CALLGATE_TOKEN"));
    if url.is_none() || token.is_none() {
        let text = std::fs::read_to_string(config).map_err(|e| {
            format!(
                "{}: {e} (set CALLGATE_URL and CALLGATE_TOKEN, or --config)",
                config.display()
            )
        })?;
        let doc: toml::Table =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
        let http = doc.get("http").and_then(|h| h.as_table());
        let get = |k: &str| http.and_then(|h| h.get(k)).and_then(|v| v.as_str());
        if url.is_none() {
            let listen = get("listen").unwrap_or("127.0.0.1:8080");
            url = Some(format!("http://{}", connectable(listen)));
        }
        if token.is_none() {
            token = Some(get("token").unwrap_or("change-me").to_string());
        }
    }
    let (url, token) = (url.unwrap_or_default(), token.unwrap_or_default());
    Client::new(&url, &token).map_err(|e| e.to_string())
}

/// A listen address as a place to connect: the wildcard becomes loopback.
fn connectable(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let ip = if a.is_ipv4() { "127.0.0.1" } else { "[::1]" };
            format!("{ip}:{}", a.port())
        }
        _ => listen.to_string(),
    }
}

/// Runs `req`, printing to `out`; the error is the message to print.
pub async fn run(client: &Client, req: Request, out: &mut dyn Write) -> Result<(), ClientError> {
    let w = |out: &mut dyn Write, s: &str| {
        let _ = out.write_all(s.as_bytes());
    };
    match req {
        Request::Status => w(out, &status(client).await?),
        Request::Callbacks {
            state,
            queue,
            limit,
        } => w(out, &callbacks(client, state, queue, limit).await?),
        Request::Stop { id } => {
            client
                .post(&format!("/api/contacts/{}/stop", encode(&id)))
                .await?;
            w(out, &format!("stopped {id}: it will not be dialled\n"));
        }
        Request::Export {
            since,
            until,
            queue,
            number,
        } => export(client, since, until, queue, number, out).await?,
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every page of a list.
async fn all(client: &Client, path: &str) -> Result<Vec<Value>, ClientError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_string(),
        };
        let reply = client.get(&url).await?;
        if let Value::Array(page) = reply.json()? {
            items.extend(page);
        }
        match reply.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(items),
        }
    }
}

async fn status(client: &Client) -> Result<String, ClientError> {
    let health = match client.get("/health").await {
        Ok(r) => r.json()?,
        // 503 while draining or degraded: still a status to show.
        Err(ClientError::Api { message, .. }) => Value::String(message),
        Err(e) => return Err(e),
    };
    let queues = all(client, "/api/queues?limit=1000").await?;
    let agents = all(client, "/api/agents?limit=1000").await?;
    let mut out = format!(
        "callgate {} at {}: {}\n\n",
        s(&health["version"]),
        client.base(),
        if health.is_string() {
            s(&health)
        } else {
            s(&health["status"])
        }
    );
    let mut t = Table::new(&[
        "QUEUE",
        "IN QUEUE",
        "CALLS",
        "CALLBACKS",
        "SCHEDULED",
        "RINGING",
        "OLDEST",
        "EST. WAIT",
        "AGENTS",
        "HANDLED",
        "ABANDONED",
        "CB CONNECTED",
    ])
    .right(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for q in &queues {
        t.row(vec![
            s(&q["name"]),
            format!("{}/{}", s(&q["contacts_in_queue"]), s(&q["max_contacts"])),
            s(&q["calls_waiting"]),
            s(&q["callbacks_waiting"]),
            s(&q["callbacks_scheduled"]),
            s(&q["offered"]),
            q["oldest_contact_age_s"]
                .as_i64()
                .map(duration)
                .unwrap_or_else(|| "-".into()),
            q["estimated_wait_s"]
                .as_i64()
                .map(duration)
                .unwrap_or_default(),
            format!(
                "{}/{}",
                s(&q["agents"]["available"]),
                s(&q["agents"]["online"])
            ),
            s(&q["today"]["handled"]),
            s(&q["today"]["abandoned"]),
            s(&q["today"]["callbacks_connected"]),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut t = Table::new(&["AGENT", "STATE", "SINCE", "PHONE", "CONTACT"]).right(&[2]);
    let now = now_ms();
    for a in &agents {
        t.row(vec![
            s(&a["user"]),
            s(&a["state"]).replace('_', " "),
            a["since_ms"]
                .as_i64()
                .map(|ms| duration((now - ms) / 1000))
                .unwrap_or_default(),
            if a["registered"] == Value::Bool(true) {
                "registered".into()
            } else {
                "-".into()
            },
            s(&a["contact"]),
        ]);
    }
    out.push_str(&t.render());
    Ok(out)
}

async fn callbacks(
    client: &Client,
    state: Option<String>,
    queue: Option<String>,
    limit: usize,
) -> Result<String, ClientError> {
    let mut path = format!("/api/callbacks?limit={limit}");
    if let Some(st) = state {
        path.push_str(&format!("&state={}", encode(&st)));
    }
    if let Some(q) = queue {
        path.push_str(&format!("&queue={}", encode(&q)));
    }
    let reply = client.get(&path).await?;
    let rows = reply.json()?;
    let now = now_ms();
    let mut t = Table::new(&[
        "ID",
        "NUMBER",
        "QUEUE",
        "STATE",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "WAITING",
        "LAST OUTCOME",
    ])
    .right(&[4, 6]);
    for c in rows.as_array().into_iter().flatten() {
        let pending = matches!(c["state"].as_str(), Some("scheduled" | "queued"));
        let next = c["not_before_ms"].as_i64().filter(|_| pending).map(|at| {
            if at <= now {
                "now".to_string()
            } else {
                format!("in {}", duration((at - now + 999) / 1000))
            }
        });
        t.row(vec![
            s(&c["id"]),
            s(&c["number"]),
            s(&c["queue"]),
            s(&c["state"]),
            format!(
                "{}/{}",
                s(&c["attempts"]),
                c["max_retries"].as_u64().map_or(0, |m| m + 1)
            ),
            next.unwrap_or_default(),
            c["initial_start_ms"]
                .as_i64()
                .map(|ms| duration((now - ms) / 1000))
                .unwrap_or_default(),
            s(&c["last_outcome"]),
        ]);
    }
    let mut out = if t.is_empty() {
        "no callbacks\n".to_string()
    } else {
        t.render()
    };
    if reply.next_cursor.is_some() {
        out.push_str(&format!("(more than {limit}: use --limit, up to 1000)\n"));
    }
    Ok(out)
}

/// `24h`, `30m`, `7d`, `90s` ago, or any form the API takes (epoch ms,
/// RFC 3339).
pub fn resolve_since(v: &str, now: i64) -> String {
    let v = v.trim();
    let unit = |c: char| match c {
        's' => Some(1_000),
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    if let Some(last) = v.chars().last()
        && let Some(ms) = unit(last)
        && let Ok(n) = v[..v.len() - 1].parse::<i64>()
    {
        return now.saturating_sub(n.saturating_mul(ms)).to_string();
    }
    v.to_string()
}

async fn export(
    client: &Client,
    since: String,
    until: Option<String>,
    queue: Option<String>,
    number: Option<String>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let now = now_ms();
    let mut path = format!(
        "/api/records?format=jsonl&order=asc&limit=10000&since={}",
        encode(&resolve_since(&since, now))
    );
    if let Some(u) = until {
        path.push_str(&format!("&until={}", encode(&resolve_since(&u, now))));
    }
    if let Some(q) = queue {
        path.push_str(&format!("&queue={}", encode(&q)));
    }
    if let Some(n) = number {
        path.push_str(&format!("&number={}", encode(&n)));
    }
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.clone(),
        };
        let reply = client.get(&url).await?;
        out.write_all(&reply.body)
            .map_err(|e| ClientError::Http(format!("writing: {e}")))?;
        match reply.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_and_listen_addresses() {
        assert_eq!(resolve_since("2h", 10_000_000), "2800000");
        assert_eq!(resolve_since("7d", 700_000_000), "95200000");
        assert_eq!(resolve_since("2026-11-20", 0), "2026-11-20");
        assert_eq!(resolve_since("1700000000000", 0), "1700000000000");
        // Saturates instead of overflowing.
        assert_eq!(
            resolve_since("-9223372036854775808h", 0),
            i64::MAX.to_string()
        );
        assert_eq!(connectable("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(connectable("[::]:80"), "[::1]:80");
        assert_eq!(connectable("10.0.0.1:80"), "10.0.0.1:80");
    }
}
