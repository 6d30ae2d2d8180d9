//! The API token through the real binary (issue 9): only the
//! `Authorization: Bearer` header opens the API; `?token=` opens nothing;
//! the dashboard signs in with a form and keeps the token in the tab's
//! session storage (checked in headless Chromium through chromedriver).

mod common;

use common::Gateway;
use common::http::request;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/queues"),
    ("GET", "/api/agents"),
    ("PUT", "/api/agents/alice/state"),
    ("GET", "/api/contacts"),
    ("GET", "/api/contacts/x"),
    ("POST", "/api/contacts/x/stop"),
    ("GET", "/api/callbacks"),
    ("GET", "/api/callbacks/x"),
    ("GET", "/api/records"),
    ("GET", "/metrics"),
];

#[test]
fn only_the_authorization_header_opens_the_api() {
    let gw = Gateway::start("");
    let http = gw.http.unwrap();
    for (method, path) in ROUTES {
        let body = (*method == "PUT").then_some("{\"state\":\"available\"}");
        for query in [
            format!("{path}?token=test-token"),
            format!("{path}?x=1&token=test-token"),
        ] {
            let (status, _) = request(http, method, &query, None, body);
            assert_eq!(
                status, 401,
                "{method} {query} must not accept a token in the URL"
            );
        }
        let (status, _) = request(http, method, path, Some("wrong"), body);
        assert_eq!(status, 401, "{method} {path} with a wrong token");
        let (status, text) = request(http, method, path, Some("test-token"), body);
        assert_ne!(status, 401, "{method} {path} with the header: {text}");
    }
    let (status, _) = request(http, "GET", "/health", None, None);
    assert_eq!(status, 200, "health needs no token");
}

/// chromedriver and Chromium, or a skip (a failure under CI=true).
fn chromedriver() -> Option<(Child, SocketAddr)> {
    let found = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok()
        && Command::new("chromium").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "chromedriver/chromium not installed but CI=true: install chromium and chromium-driver"
        );
        eprintln!("SKIPPED: chromedriver or chromium not installed");
        return None;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((child, addr))
}

/// One WebDriver request. chromedriver keeps connections open whatever
/// the request says, so the body is read by its Content-Length.
fn webdriver(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return (status, text);
            }
        }
        let n = s.read(&mut chunk).expect("read chromedriver");
        assert!(n > 0, "chromedriver closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = body.to_string();
        let (status, text) = webdriver(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            Some(&body),
        );
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].clone()
    }

    fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_string()
    }

    fn wait_for(&self, script: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.eval(script) == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = webdriver(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn dashboard_signs_in_with_a_form_and_keeps_the_token_out_of_urls() {
    let Some((driver, addr)) = chromedriver() else {
        return;
    };
    let caps = json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    } } } });
    let (status, text) = webdriver(addr, "POST", "/session", Some(&caps.to_string()));
    assert_eq!(status, 200, "new session: {text}");
    let session = serde_json::from_str::<Value>(&text).unwrap()["value"]["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let b = Browser {
        driver,
        addr,
        session,
    };
    let gw = Gateway::start("");
    let http = gw.http.unwrap();
    // An old bookmark with the token in the URL: not used, and gone from
    // the address bar.
    b.call(
        "POST",
        "/url",
        json!({ "url": format!("http://{http}/?token=test-token") }),
    );
    assert!(
        b.wait_for(
            "return !document.getElementById('login').hidden && location.search === '';",
            Duration::from_secs(5)
        ),
        "the sign-in form shows and the URL lost its token: {}",
        b.eval("return location.href + ' ' + document.body.innerHTML;")
    );
    assert_eq!(
        b.eval("return sessionStorage.getItem('callgate-token');"),
        Value::Null
    );
    // A wrong token is refused and the form comes back.
    let input = b.element("#token");
    b.call(
        "POST",
        &format!("/element/{input}/value"),
        json!({ "text": "nope" }),
    );
    let button = b.element("#login button");
    b.call("POST", &format!("/element/{button}/click"), json!({}));
    assert!(b.wait_for(
        "return !document.getElementById('login').hidden && document.getElementById('err').textContent.includes('refused');",
        Duration::from_secs(5)
    ));
    // The right one shows the queues and agents, from session storage.
    let input = b.element("#token");
    b.call(
        "POST",
        &format!("/element/{input}/value"),
        json!({ "text": "test-token" }),
    );
    let button = b.element("#login button");
    b.call("POST", &format!("/element/{button}/click"), json!({}));
    assert!(
        b.wait_for(
            "return document.querySelectorAll('#agents tbody tr').length === 2;",
            Duration::from_secs(5)
        ),
        "{}",
        b.eval("return document.body.innerHTML;")
    );
    assert_eq!(
        b.eval("return [sessionStorage.getItem('callgate-token'), localStorage.getItem('callgate-token'), location.href.includes('token')];"),
        json!(["test-token", null, false])
    );
    // A reload keeps the session; signing out forgets it.
    b.call("POST", "/refresh", json!({}));
    assert!(b.wait_for(
        "return document.querySelectorAll('#agents tbody tr').length === 2;",
        Duration::from_secs(5)
    ));
    let out = b.element("#logout");
    b.call("POST", &format!("/element/{out}/click"), json!({}));
    assert_eq!(
        b.eval("return [sessionStorage.getItem('callgate-token'), document.getElementById('login').hidden];"),
        json!([null, false])
    );
}
