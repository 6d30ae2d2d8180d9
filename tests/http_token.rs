//! The API token through the real binary (issue 9): only the
//! `Authorization: Bearer` header opens the API; `?token=` opens nothing;
//! the dashboard signs in with a form and keeps the token in the tab's
//! session storage (checked in headless Chromium through chromedriver).

mod common;

use common::Gateway;
use common::browser::Browser;
use common::http::request;
use serde_json::{Value, json};
use std::time::Duration;

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

#[test]
fn dashboard_signs_in_with_a_form_and_keeps_the_token_out_of_urls() {
    let Some(b) = Browser::start() else {
        return;
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
