//! The operator's interface through the real binary: every endpoint of the
//! OpenAPI document answers (and nothing else does), errors are JSON at
//! every level (auth, bad input, the framework's 404/405/413/415), every
//! list pages with a cursor, contact records chain a callback from the
//! inbound call to each agent leg and dial attempt, /metrics parses and
//! agrees with the API, the Grafana dashboard queries only what /metrics
//! exports, logs carry the call's and contact's span, and the operator
//! CLI works against a running gateway.

mod common;

use callgate::sip::message::{MessageExt, Method};
use common::Gateway;
use common::agent::{Agent, Answer};
use common::centre::{ani_flow, eventually, leave_callback, write_flows};
use common::http::{get_json, request};
use common::prom;
use common::trunk::Trunk;
use common::{base_config, repo_root};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[test]
fn the_metrics_parser_refuses_what_prometheus_would() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"2\"} 3\n\
              # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
    let e = prom::parse(ok).unwrap();
    assert_eq!(e.get("a_total", &[("x", "1\"2")]), Some(3.0));
    for bad in [
        "a 1\n",
        "# TYPE a gauge\na{x=1} 1\n",
        "# TYPE a gauge\na{x=\"1\"} one\n",
        "# TYPE a gauge\na 1\na 2\n",
        "# TYPE a counter\na -1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
        "# TYPE 1a gauge\n",
    ] {
        assert!(prom::parse(bad).is_err(), "{bad}");
    }
}

/// A contact centre: queue `callbacks` served by alice, `support` by bob;
/// 4000 leaves a callback routable now, 4001 one in 10 minutes.
fn start(trunk: &Trunk, args: &[&str]) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = write_flows(
        dir.path(),
        &[
            ("now", &ani_flow("callbacks", 0, 2, 600)),
            ("later", &ani_flow("callbacks", 600, 2, 600)),
        ],
    );
    let base = base_config(&dir.path().join("data"))
        .replace(
            "secret = \"alice-secret\"\n",
            "secret = \"alice-secret\"\nrouting_profile = \"callbacks\"\nafter_contact_work_s = 0\n",
        )
        .replace(
            "secret = \"bob-secret\"\n",
            "secret = \"bob-secret\"\nrouting_profile = \"voice\"\nafter_contact_work_s = 0\n",
        );
    let text = format!(
        r#"{base}
[prompts]
dir = "{prompts}"
[flows]
dir = "{flows}"
[[numbers]]
number = "4000"
flow = "now"
[[numbers]]
number = "4001"
flow = "later"
[[queues]]
name = "support"
max_contacts = 10
[[queues]]
name = "callbacks"
max_contacts = 50
caller_id_number = "+12015550001"
[[routing_profiles]]
name = "callbacks"
queues = [{{ queue = "callbacks", priority = 1 }}]
[[routing_profiles]]
name = "voice"
queues = [{{ queue = "support", priority = 1 }}]
[dialer]
country = "US"
target = "{trunk}"
uri_template = "sip:{{number}}@{trunk}"
ring_timeout_s = 10
"#,
        prompts = repo_root().join("prompts").display(),
        flows = flows.display(),
        trunk = trunk.addr,
    );
    Gateway::start_with_args(dir, &text, args)
}

/// A raw HTTP/1.1 exchange: (status, head, body).
fn raw(addr: SocketAddr, text: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(text.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// GET with the token; (status, lower-cased head, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    raw(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// An error answer: the status, and a JSON body `{"error": "..."}`.
fn assert_json_error(what: &str, (status, head, body): &(u16, String, String), want: u16) {
    assert_eq!(*status, want, "{what}: {head}\n{body}");
    assert!(
        header(head, "content-type").is_some_and(|c| c.starts_with("application/json")),
        "{what}: not JSON: {head}"
    );
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    assert!(
        v["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {body}"
    );
}

/// Every item of a list, following `X-Next-Cursor`, `limit` at a time.
fn all_pages(addr: SocketAddr, path: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut url = format!("{path}{sep}limit={limit}");
    for _ in 0..1000 {
        let (status, head, body) = get(addr, &url);
        assert_eq!(status, 200, "{url}: {body}");
        let page: Vec<Value> = serde_json::from_str(&body).expect("array");
        assert!(page.len() <= limit, "{url}: {} > {limit}", page.len());
        items.extend(page);
        match header(&head, "x-next-cursor") {
            Some(c) => {
                let link = header(&head, "link").expect("Link with the cursor");
                assert!(link.contains(c) && link.ends_with("rel=\"next\""), "{link}");
                url = format!("{path}{sep}limit={limit}&cursor={c}");
            }
            None => return items,
        }
    }
    panic!("{path}: pages never end");
}

fn ids(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|x| {
            x["id"]
                .as_str()
                .or(x["user"].as_str())
                .or(x["name"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn every_list_pages_every_error_is_json_and_the_openapi_document_is_the_router() {
    let trunk = Trunk::bind();
    let gw = start(&trunk, &[]);
    let http = gw.http.unwrap();
    for i in 0..7 {
        leave_callback(&gw, "4001", &format!("+1201555014{i}"));
    }
    // A call's inbound record is closed by its task after the BYE: wait
    // for all 14 (7 inbound calls, 7 callbacks) before comparing pages.
    assert!(eventually(Duration::from_secs(5), || {
        all_pages(http, "/api/records", 1000).len() == 14
    }));
    // Every list, a few rows at a time, gives what one page gives.
    for (path, total) in [
        ("/api/callbacks", 7),
        ("/api/callbacks?state=scheduled", 7),
        ("/api/callbacks?state=pending&queue=callbacks", 7),
        ("/api/contacts", 7),
        ("/api/agents", 2),
        ("/api/queues", 2),
        ("/api/records?order=asc", 14),
        ("/api/records?number=%2B12015550143", 2),
    ] {
        let whole = all_pages(http, path, 1000);
        assert_eq!(whole.len(), total, "{path}: {whole:?}");
        let paged = all_pages(http, path, 3);
        assert_eq!(ids(&paged), ids(&whole), "{path}");
        let unique: BTreeSet<String> = ids(&paged).into_iter().collect();
        assert_eq!(unique.len(), total, "{path}: a row twice");
    }
    // JSON lines page the same way.
    let (status, head, body) = get(http, "/api/records?format=jsonl&limit=5");
    assert_eq!(status, 200);
    assert!(header(&head, "content-type").is_some_and(|c| c == "application/x-ndjson"));
    assert_eq!(body.lines().count(), 5);
    for line in body.lines() {
        let _: Value = serde_json::from_str(line).expect("one JSON record per line");
    }
    assert!(header(&head, "x-next-cursor").is_some());

    // The list bigger than one page of the old limit's size is complete:
    // the cursor of one list is refused by another.
    let (_, head, _) = get(http, "/api/callbacks?limit=2");
    let cursor = header(&head, "x-next-cursor").unwrap().to_string();
    assert_json_error(
        "cursor of another list",
        &get(http, &format!("/api/records?cursor={cursor}")),
        400,
    );

    // Bad input, each a JSON 400.
    for path in [
        "/api/callbacks?limit=0",
        "/api/callbacks?limit=1001",
        "/api/callbacks?limit=x",
        "/api/callbacks?cursor=zz",
        "/api/callbacks?state=ringing",
        "/api/records?since=yesterday",
        "/api/records?until=2026-13-01",
        "/api/records?format=xml",
        "/api/records?order=up",
        "/api/records?format=jsonl&limit=10001",
        "/api/agents?limit=-1",
        "/api/agents?limit=99999999999999999999999",
        "/api/queues?limit=1&limit=2",
        "/api/contacts?cursor=",
        "/api/records?since=2026-02-30",
        "/api/records?since=2026-01-01T00:00:00%2B999999999999999999:00",
        "/api/records?until=2026-01-01T00:00:00.5xZ",
        "/api/records?since=-99999999999999999999",
    ] {
        assert_json_error(path, &get(http, path), 400);
    }
    // Odd but harmless queries answer normally.
    for path in [
        "/api/records?since=9223372036854775807&until=-9223372036854775808",
        "/api/records?contact_id=%27%3B%20DROP%20TABLE%20records",
        "/api/callbacks?number=%00&queue=%E2%82",
        "/api/queues?unknown=1",
    ] {
        let (status, _, body) = get(http, path);
        assert_eq!(status, 200, "{path}: {body}");
    }
    let put = |ct: &str, body: &str| {
        raw(
            http,
            &format!(
                "PUT /api/agents/alice/state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert_json_error("not JSON", &put("application/json", "{\"state\":"), 400);
    assert_json_error("wrong shape", &put("application/json", "{\"st\":1}"), 400);
    assert_json_error(
        "unknown state",
        &put("application/json", "{\"state\":\"away\"}"),
        400,
    );
    assert_json_error(
        "not JSON content",
        &put("text/plain", "{\"state\":\"available\"}"),
        415,
    );
    let big = format!("{{\"state\":\"{}\"}}", "a".repeat(64 * 1024));
    assert_json_error("too large", &put("application/json", &big), 413);
    let (status, _, body) = put("application/json", "{\"state\":\"offline\"}");
    assert_eq!(status, 200, "{body}");
    // Framework-level answers are JSON too.
    assert_json_error("no such path", &get(http, "/api/nope"), 404);
    assert_json_error("no such agent", &get(http, "/api/callbacks/nope"), 404);
    assert_json_error(
        "wrong method",
        &raw(
            http,
            "DELETE /api/queues HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        405,
    );
    assert_json_error(
        "no token",
        &raw(
            http,
            "GET /api/queues HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        401,
    );
    assert_json_error(
        "stop twice",
        &{
            let id = all_pages(http, "/api/callbacks", 1)[0]["id"]
                .as_str()
                .unwrap()
                .to_string();
            let post = format!(
                "POST /api/contacts/{id}/stop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\nConnection: close\r\n\r\n"
            );
            assert_eq!(raw(http, &post).0, 200);
            raw(http, &post)
        },
        409,
    );

    // The OpenAPI document is the router: every operation it lists
    // answers (not the router's 404 or 405), with the token where it
    // says so and without where it does not; a path it does not list is
    // the router's 404.
    let doc = get_json(http, "/api/openapi.json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    // Every operation callgate serves, pinned here so that a route
    // leaving the document (or a new one nobody tested) shows.
    let documented: BTreeSet<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let served: BTreeSet<String> = [
        "GET /",
        "GET /dashboard",
        "GET /assets/{file}",
        "GET /health",
        "GET /api/openapi.json",
        "GET /api/queues",
        "GET /api/agents",
        "PUT /api/agents/{user}/state",
        "GET /api/contacts",
        "GET /api/contacts/{id}",
        "POST /api/contacts/{id}/stop",
        "GET /api/callbacks",
        "POST /api/callbacks",
        "GET /api/callbacks/{id}",
        "GET /api/records",
        "GET /api/events",
        "GET /api/nodes",
        "GET /metrics",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(documented, served, "the OpenAPI document's operations");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let concrete = path
                .replace("{id}", "nope")
                .replace("{user}", "alice")
                .replace("{file}", "app.js");
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let body = (method == "put").then_some("{\"state\":\"available\"}");
            let m = method.to_uppercase();
            if path == "/api/events" {
                let (status, head, _) = raw(
                    http,
                    "GET /api/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                assert_eq!(status, 401, "{head}");
                continue;
            }
            let (status, text) = request(http, &m, &concrete, Some("test-token"), body);
            assert!(
                !text.contains("no such path") && status != 405,
                "{m} {path} is documented but not served: {status} {text}"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path}: no responses documented"
            );
            let (anon, _) = request(http, &m, &concrete, None, body);
            if secured {
                assert_eq!(anon, 401, "{m} {path} is documented as needing the token");
                assert!(
                    op["responses"]["401"].is_object(),
                    "{m} {path}: 401 undocumented"
                );
            } else {
                assert_ne!(anon, 401, "{m} {path} is documented as public");
            }
        }
    }
    assert_eq!(operations, served.len());
    for (m, path) in [
        ("GET", "/api/queue"),
        ("GET", "/api/callbacks/x/y"),
        ("POST", "/metrics"),
    ] {
        let (status, text) = request(http, m, path, Some("test-token"), None);
        assert!(
            status == 404 || status == 405,
            "{m} {path} is served but not documented: {status} {text}"
        );
    }
    // The public ones answer what they say.
    let health = get_json(http, "/health");
    assert_eq!(health["status"], "ok", "{health}");
    for (path, ct) in [
        ("/", "text/html"),
        ("/dashboard", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let (status, head, body) = raw(
            http,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{path}");
        assert!(
            header(&head, "content-type").is_some_and(|c| c.starts_with(ct)),
            "{path}: {head}"
        );
        assert!(
            !body.is_empty() && !body.contains("http://") && !body.contains("https://"),
            "{path}: no external resources (everything is embedded)"
        );
        assert!(
            header(&head, "content-security-policy")
                .is_some_and(|c| c.contains("default-src 'none'")),
            "{path}: {head}"
        );
    }
    assert_json_error(
        "no such asset",
        &raw(
            http,
            "GET /assets/..%2F..%2FCargo.toml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        404,
    );
    // Nothing above made a handler panic.
    assert!(!gw.logs().contains("panicked"), "{}", gw.logs());

    // And no code outside the one list the document is built from adds
    // a route (unit tests' own routers aside).
    let mut dirs = vec![repo_root().join("src")];
    while let Some(dir) = dirs.pop() {
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                assert!(
                    [".route(", ".route_service(", ".nest(", ".nest_service("]
                        .iter()
                        .all(|r| !code.contains(r)),
                    "{}: a route outside routes()",
                    p.display()
                );
            }
        }
    }
}

/// Reads the event stream until a `board` event; returns its JSON.
fn board_event(http: SocketAddr) -> Value {
    let mut s = TcpStream::connect(http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).expect("events");
        assert!(n > 0, "stream closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: text/event-stream")
        );
        if let Some(at) = text.find("event: board\ndata: ") {
            let rest = &text[at + "event: board\ndata: ".len()..];
            if let Some(end) = rest.find('\n') {
                return serde_json::from_str(&rest[..end]).expect("board JSON");
            }
        }
    }
}

#[test]
fn a_dialled_callback_is_chained_measured_exported_and_logged() {
    let mut trunk = Trunk::bind();
    let gw = start(&trunk, &["--log-format", "json"]);
    let http = gw.http.unwrap();
    let number = "+12015550151";
    // The first in line (routable now, no agent yet) is stopped through
    // the API: the one behind it is offered and dialled, never this one.
    let stopped_number = "+12015550150";
    leave_callback(&gw, "4000", stopped_number);
    leave_callback(&gw, "4000", number);
    leave_callback(&gw, "4001", "+12015550152");
    let stopped = all_pages(http, "/api/callbacks?number=%2B12015550150", 10)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = request(
        http,
        "POST",
        &format!("/api/contacts/{stopped}/stop"),
        Some("test-token"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let offer = alice
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("offered");
    assert_ne!(
        Agent::contact_of(&offer),
        stopped,
        "the stopped callback was offered"
    );
    let invite = trunk
        .next_invite(486, Duration::from_secs(20))
        .expect("dialled");
    assert!(invite.uri.to_string().contains("2015550151"));
    assert!(
        alice
            .expect(Method::Bye, Duration::from_secs(20), None)
            .is_some()
    );
    let cb = Agent::contact_of(&offer);

    // One callback and one contact, in detail.
    let one = get_json(http, &format!("/api/callbacks/{cb}"));
    assert_eq!(one["callback"]["number"], number, "{one}");
    assert_eq!(one["attempts"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["attempts"][0]["sip_status"], 486, "{one}");
    let states: Vec<&str> = one["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"dialing"), "{states:?}");
    let contact = get_json(http, &format!("/api/contacts/{cb}"));
    assert_eq!(contact["id"], Value::String(cb.clone()));
    assert_eq!(contact["callback"]["id"], Value::String(cb.clone()));
    assert_eq!(contact["record"]["initiation"], "callback", "{contact}");
    let gone = get_json(http, &format!("/api/contacts/{stopped}"));
    assert_eq!(gone["callback"]["state"], "stopped", "{gone}");
    assert!(
        gone["queued"].is_null(),
        "a stopped callback leaves its queue"
    );

    // The chain: inbound call → callback → agent leg → dial attempt.
    let chain = |want: usize| {
        let mut got = Vec::new();
        eventually(Duration::from_secs(5), || {
            got = all_pages(http, &format!("/api/records?contact_id={cb}&order=asc"), 10);
            got.len() == want && got.iter().all(|r| !r["disconnected_ms"].is_null())
        });
        got
    };
    let records = chain(4);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["initiation"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["inbound", "callback", "agent_leg", "dial_attempt"],
        "{records:#?}"
    );
    let (inbound, callback, leg, attempt) = (&records[0], &records[1], &records[2], &records[3]);
    for r in &records {
        assert_eq!(r["initial_contact_id"], inbound["id"], "{r}");
    }
    assert_eq!(callback["id"], Value::String(cb.clone()));
    assert_eq!(callback["previous_contact_id"], inbound["id"]);
    assert_eq!(leg["previous_contact_id"], callback["id"]);
    assert_eq!(attempt["previous_contact_id"], leg["id"]);
    assert_eq!(leg["agent"], "alice");
    assert_eq!(leg["outcome"], "answered");
    assert_eq!(leg["sip_status"], 200);
    assert!(leg["ring_ms"].as_i64().is_some() && !leg["call_id"].is_null());
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["outcome"], "busy");
    assert_eq!(attempt["sip_status"], 486);
    assert!(attempt["ring_ms"].as_i64().is_some());
    assert_eq!(attempt["call_id"].as_str(), invite.call_id());
    assert!(callback["offered_ms"].as_i64().is_some());
    assert!(
        callback["disconnect_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("failed")),
        "{callback}"
    );
    for r in &records {
        assert!(r["initiated_ms"].as_i64().unwrap() <= r["disconnected_ms"].as_i64().unwrap());
    }
    // By number, queue and time range too.
    let by_number = all_pages(http, "/api/records?number=%2B12015550151", 10);
    assert_eq!(by_number.len(), 4);
    let since = inbound["initiated_ms"].as_i64().unwrap();
    let in_queue = all_pages(
        http,
        &format!(
            "/api/records?queue=callbacks&since={since}&until={}",
            since + 3_600_000
        ),
        10,
    );
    assert!(in_queue.len() >= 4, "{in_queue:?}");
    // `until` is exclusive: nothing was initiated before the first record.
    let first = all_pages(http, "/api/records?order=asc", 1000)[0]["initiated_ms"]
        .as_i64()
        .unwrap();
    assert!(all_pages(http, &format!("/api/records?until={first}"), 10).is_empty());
    assert_eq!(
        all_pages(http, &format!("/api/records?until={}", first + 1), 10).len(),
        1
    );

    // /metrics parses and agrees with the API (once alice is free again).
    assert!(eventually(Duration::from_secs(5), || all_pages(
        http,
        "/api/agents",
        10
    )
    .iter()
    .any(|a| a["user"] == "alice" && a["state"] == "available")));
    let (status, head, text) = get(http, "/metrics");
    assert_eq!(status, 200);
    assert!(header(&head, "content-type").is_some_and(|c| c.starts_with("text/plain")));
    let m = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let queues = all_pages(http, "/api/queues", 100);
    for q in &queues {
        let name = q["name"].as_str().unwrap();
        for (metric, field) in [
            ("callgate_queue_contacts", "contacts_in_queue"),
            ("callgate_queue_calls_waiting", "calls_waiting"),
            ("callgate_queue_callbacks_waiting", "callbacks_waiting"),
            ("callgate_queue_callbacks_scheduled", "callbacks_scheduled"),
            ("callgate_queue_max_contacts", "max_contacts"),
            ("callgate_queue_offered", "offered"),
        ] {
            assert_eq!(
                m.get(metric, &[("queue", name)]),
                q[field].as_f64(),
                "{metric} {name}"
            );
        }
    }
    let agents = all_pages(http, "/api/agents", 100);
    // Every state /metrics reports, against the API's own lists; and the
    // API's states all reported.
    for sample in m.samples.iter().filter(|s| s.name == "callgate_agents") {
        let state = &sample.labels["state"];
        let n = agents.iter().filter(|a| a["state"] == *state).count() as f64;
        assert_eq!(sample.value, n, "agents {state}");
    }
    for a in &agents {
        let state = a["state"].as_str().unwrap();
        assert!(
            m.get("callgate_agents", &[("state", state)]).is_some(),
            "{state}"
        );
    }
    let callback_states: Vec<&String> = m
        .samples
        .iter()
        .filter(|s| s.name == "callgate_callbacks")
        .map(|s| &s.labels["state"])
        .collect();
    for state in ["failed", "scheduled", "stopped"] {
        assert!(callback_states.iter().any(|s| *s == state), "{state}");
    }
    for state in callback_states {
        let n = all_pages(http, &format!("/api/callbacks?state={state}"), 100).len() as f64;
        assert_eq!(
            m.get("callgate_callbacks", &[("state", state)]),
            Some(n),
            "callbacks {state}"
        );
    }
    // One dial, one offer: one ring time each, one queue wait.
    assert_eq!(
        m.get("callgate_ring_seconds_count", &[("leg", "customer")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("callgate_ring_seconds_count", &[("leg", "agent")]),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "callgate_queue_wait_seconds_count",
            &[("queue", "callbacks"), ("kind", "callback")]
        ),
        Some(1.0)
    );
    assert!(
        m.get("callgate_call_setup_seconds_count", &[])
            .is_some_and(|n| n >= 2.0)
    );
    assert_eq!(
        m.get(
            "callgate_sip_responses_total",
            &[("direction", "received"), ("code", "486")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "callgate_sip_transactions_total",
            &[("role", "client"), ("method", "INVITE"), ("outcome", "4xx")]
        ),
        Some(1.0)
    );
    assert!(
        m.get(
            "callgate_sip_transactions_total",
            &[
                ("role", "server"),
                ("method", "REGISTER"),
                ("outcome", "2xx")
            ]
        )
        .is_some_and(|n| n >= 1.0)
    );

    // The Grafana dashboard asks only for what /metrics exports.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("contrib/grafana/callgate.json")).unwrap(),
    )
    .expect("dashboard JSON");
    // Label names too: a panel summing `by (queue)` over a metric
    // without that label draws nothing.
    let labels_of = |name: &str| -> BTreeSet<String> {
        m.samples
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| s.labels.keys().cloned())
            .collect()
    };
    let ident = |t: &str| -> String {
        t.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut queried = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut names = Vec::new();
            let mut rest = expr;
            while let Some(i) = rest.find("callgate_") {
                let name = ident(&rest[i..]);
                rest = &rest[i + name.len()..];
                // Its selector's label names.
                if let Some(sel) = rest.strip_prefix('{') {
                    let sel = &sel[..sel.find('}').expect("closed selector")];
                    for matcher in sel.split(',') {
                        let label = ident(matcher.trim());
                        assert!(
                            labels_of(&name).contains(&label),
                            "{expr}: {name} has no label {label:?}"
                        );
                    }
                }
                names.push(name);
            }
            let mut rest = expr;
            while let Some(i) = rest.find("by (") {
                let list = &rest[i + 4..];
                let list = &list[..list.find(')').expect("closed by")];
                for label in list.split(',').map(str::trim) {
                    assert!(
                        names.iter().any(|n| labels_of(n).contains(label)),
                        "{expr}: no metric in it has the label {label:?}"
                    );
                }
                rest = &rest[i + 4..];
            }
            queried.extend(names);
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    let exported: BTreeSet<&str> = m.samples.iter().map(|s| s.name.as_str()).collect();
    for name in &queried {
        assert!(
            exported.contains(name.as_str()),
            "{name} is not in /metrics"
        );
    }

    // The live view agrees, numbers masked.
    let board = board_event(http);
    let line = board["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["state"] == "scheduled")
        .expect("the scheduled callback")
        .clone();
    assert_eq!(line["number"], "+•••••••0152");
    assert!(!board.to_string().contains("2015550152"));

    // The CLI, with the URL from the environment and the token from the
    // config file.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
            .args(["--config"])
            .arg(&gw.config_path)
            .args(args)
            .env("CALLGATE_URL", format!("http://{http}"))
            .env_remove("CALLGATE_TOKEN")
            .output()
            .expect("run the CLI");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = cli(&["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(": ok") && out.contains("callbacks") && out.contains("alice"),
        "{out}"
    );
    let (code, out, _) = cli(&["callbacks", "list", "--state", "failed"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&cb) && out.contains(number) && out.contains("busy"),
        "{out}"
    );
    let (code, out, _) = cli(&["records", "export", "--since", "1h"]);
    assert_eq!(code, Some(0));
    let exported: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let api = all_pages(http, "/api/records?order=asc", 1000);
    assert_eq!(exported, api, "the export is every record, oldest first");
    let scheduled = all_pages(http, "/api/callbacks?state=scheduled", 10)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, _) = cli(&["callbacks", "stop", &scheduled]);
    assert_eq!(code, Some(0), "{out}");
    let (code, _, err) = cli(&["callbacks", "stop", &scheduled]);
    assert_eq!(code, Some(1));
    assert!(err.contains("409") && err.contains("stopped"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["status", "--config", "/nonexistent.toml"])
        .env("CALLGATE_URL", format!("http://{http}"))
        .env("CALLGATE_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // Logs: JSON lines; the contact's lines carry the call's span
    // (Call-ID) and the contact's (id); the offer's its agent and Call-ID.
    let logs = gw.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let inbound_id = inbound["id"].as_str().unwrap();
    let inbound_call = inbound["call_id"].as_str().unwrap();
    let ended = lines
        .iter()
        .find(|l| l["fields"]["message"] == "contact ended" && l["span"]["contact"] == inbound_id)
        .unwrap_or_else(|| panic!("no 'contact ended' line in the contact's span:\n{logs}"));
    assert_eq!(ended["level"], "INFO");
    let spans = ended["spans"].as_array().unwrap();
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "call" && s["call_id"] == inbound_call),
        "{ended}"
    );
    let accepted = lines
        .iter()
        .find(|l| l["fields"]["message"] == "agent accepted")
        .expect("agent accepted");
    assert_eq!(accepted["span"]["agent"], "alice");
    assert_eq!(accepted["span"]["contact"].as_str(), Some(cb.as_str()));
    assert_eq!(accepted["span"]["call_id"], leg["call_id"]);
    let attempt_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "attempt finished")
        .expect("attempt finished");
    let dial = attempt_line["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "dial")
        .expect("dial span");
    assert_eq!(dial["call_id"], attempt["call_id"]);
    assert!(!logs.contains("INVITE sip:"), "SIP dumps only at TRACE");
    assert!(!logs.contains("panicked"), "{logs}");

    // The stopped callback was never dialled (nor anything else since).
    assert!(trunk.next_invite(486, Duration::from_secs(1)).is_none());
    assert!(
        trunk
            .invites
            .iter()
            .all(|u| !u.contains(&stopped_number[1..])),
        "the stopped callback was dialled: {:?}",
        trunk.invites
    );
}
