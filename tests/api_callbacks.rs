//! `POST /api/callbacks` through the real binary: a callback made by a
//! website or a CRM is stored, offered, dialled and connected exactly like
//! one a caller's flow made, and the same rules refuse the same requests
//! with JSON errors.

mod common;

use callgate::media::g711::Law;
use common::agent::{Agent, Answer};
use common::centre::{contacts, eventually, start};
use common::http::{get_json, request};
use common::rtp::{best_correlation, decode, read_wav};
use common::sipp::{self, Background};
use common::{free_udp_port, repo_root};
use std::time::Duration;

fn post(gw: &common::Gateway, body: &str) -> (u16, serde_json::Value) {
    let (status, text) = request(
        gw.http.expect("http"),
        "POST",
        "/api/callbacks",
        Some("test-token"),
        Some(body),
    );
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, json)
}

#[test]
fn an_api_callback_is_dialled_and_connected_like_a_flow_one() {
    if !sipp::available() {
        return;
    }
    let trunk_port = free_udp_port();
    let trunk = format!("127.0.0.1:{trunk_port}");
    let gw = start(None, &trunk, "");
    let (status, created) = post(
        &gw,
        r#"{"number": "(201) 555-0144", "queue": "callbacks", "name": "Ann Example",
            "attributes": {"order": "A-1001"}}"#,
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["number"], "+12015550144", "national form → E.164");
    assert_eq!(created["state"], "queued", "no initial delay");
    let stored = get_json(gw.http.unwrap(), &format!("/api/callbacks/{id}"));
    assert_eq!(stored["callback"]["attributes"]["name"], "Ann Example");
    assert_eq!(stored["callback"]["attributes"]["order"], "A-1001");

    let mut customer = Background::start(
        "customer_answer.xml",
        None,
        trunk_port,
        &[
            "-m",
            "1",
            "-mp",
            &common::even_udp_port().to_string(),
            "-set",
            "ring",
            "300",
            "-set",
            "talk",
            "3000",
        ],
    );
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let offer = alice
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("the API callback is offered to an agent");
    assert_eq!(Agent::contact_of(&offer), id, "offer names the callback");
    // The agent hears the callback whisper, as for a flow-created one.
    let heard = decode(&alice.rtp.receive(Duration::from_secs(5)), 0, Law::Ulaw);
    let whisper = read_wav(&repo_root().join("prompts/agent_whisper_callback.wav"));
    let (c, _) = best_correlation(&heard, &whisper);
    assert!(c > 0.9, "agent whisper heard: {c:.2}");
    assert_eq!(
        customer.wait(Duration::from_secs(30)),
        Some(0),
        "customer answered and the call ended cleanly: {}",
        std::fs::read_to_string(&customer.errors).unwrap_or_default()
    );
    let invites = customer.received("INVITE");
    assert_eq!(invites.len(), 1, "dialled once");
    let inv = &invites[0].1;
    assert!(
        inv.starts_with(&format!("INVITE sip:+12015550144@{trunk} SIP/2.0")),
        "{inv}"
    );
    assert!(
        inv.contains("From: \"Acme Callbacks\" <sip:+12015550001@"),
        "the queue's caller ID: {inv}"
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            get_json(gw.http.unwrap(), &format!("/api/callbacks/{id}"))["callback"]["state"]
                == "connected"
        }),
        "connected"
    );
    let rec = contacts(&gw)
        .into_iter()
        .find(|c| c.0 == id)
        .expect("contact record of the callback");
    assert_eq!(rec.2, "api", "initiated through the API");
    assert_eq!(rec.5.as_deref(), Some("+12015550144"));
}

#[test]
fn the_same_rules_refuse_the_same_requests_with_json_errors() {
    let gw = start(None, "127.0.0.1:5998", "");
    let http = gw.http.unwrap();
    let refused = |body: &str, status: u16, code: &str| {
        let (s, json) = post(&gw, body);
        assert_eq!(s, status, "{body} → {json}");
        assert_eq!(json["code"], code, "{body} → {json}");
        assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
    };
    refused(
        r#"{"number": "12345", "queue": "callbacks"}"#,
        422,
        "invalid_number",
    );
    refused(
        r#"{"number": "+19005550123", "queue": "callbacks"}"#,
        422,
        "number_not_allowed",
    );
    refused(
        r#"{"number": "+18765550123", "queue": "callbacks"}"#,
        422,
        "number_not_allowed",
    );
    refused(
        r#"{"number": "+12015550150", "queue": "nowhere"}"#,
        422,
        "unknown_queue",
    );
    refused(
        r#"{"number": "+12015550150", "queue": "callbacks", "not_before": "tomorrow"}"#,
        422,
        "invalid_field",
    );
    refused(
        r#"{"number": "+12015550150", "queue": "callbacks", "not_before": "2099-01-01T00:00:00Z"}"#,
        422,
        "invalid_field",
    );
    refused(
        r#"{"number": "+12015550150", "queue": "callbacks", "attributes": {"bad key": "x"}}"#,
        422,
        "invalid_field",
    );
    refused(
        r#"{"number": "+12015550150", "queue": "callbacks", "max_retries": 99}"#,
        422,
        "invalid_field",
    );
    // Malformed: 400 with a JSON error, and nothing stored.
    for body in [
        "{",
        r#"{"queue": "callbacks"}"#,
        r#"{"number": 2015550150, "queue": "callbacks"}"#,
        r#"{"number": "+12015550150", "queue": "callbacks", "surprise": 1}"#,
    ] {
        let (s, text) = request(
            http,
            "POST",
            "/api/callbacks",
            Some("test-token"),
            Some(body),
        );
        assert_eq!(s, 400, "{body} → {text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON error");
        assert!(json["error"].is_string(), "{text}");
    }
    let (s, _) = request(
        http,
        "POST",
        "/api/callbacks",
        None,
        Some(r#"{"number": "+12015550150", "queue": "callbacks"}"#),
    );
    assert_eq!(s, 401, "the token is required");
    let all = get_json(http, "/api/callbacks");
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(0),
        "nothing stored: {all}"
    );

    // The callbacks queue dedupes: a second request for the number is 409.
    let (s, first) = post(&gw, r#"{"number": "+12015550150", "queue": "callbacks"}"#);
    assert_eq!(s, 201, "{first}");
    refused(
        r#"{"number": "+1 201 555 0150", "queue": "callbacks"}"#,
        409,
        "duplicate",
    );
    // The size limit counts API callbacks too (support holds 5).
    for i in 0..5 {
        let (s, j) = post(
            &gw,
            &format!(r#"{{"number": "+1201555016{i}", "queue": "support"}}"#),
        );
        assert_eq!(s, 201, "{j}");
    }
    refused(
        r#"{"number": "+12015550170", "queue": "support"}"#,
        409,
        "at_capacity",
    );
    // Described in the OpenAPI document.
    let doc = get_json(http, "/api/openapi.json");
    let post_op = &doc["paths"]["/api/callbacks"]["post"];
    assert!(post_op.is_object(), "POST /api/callbacks documented");
    for code in ["201", "400", "409", "422"] {
        assert!(post_op["responses"][code].is_object(), "{code} documented");
    }
}

#[test]
fn a_scheduled_api_callback_waits_for_its_time() {
    let gw = start(None, "127.0.0.1:5998", "");
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(30);
    let (s, created) = post(
        &gw,
        &format!(r#"{{"number": "+12015550177", "queue": "callbacks", "not_before": "{at}"}}"#),
    );
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["not_before_ms"], at.as_millisecond());
    assert_eq!(
        created["dial_at_ms"],
        at.as_millisecond(),
        "no callback hours"
    );
    let _alice = Agent::register(gw.udp, "alice", "alice-secret");
    std::thread::sleep(Duration::from_secs(2));
    let queues = get_json(gw.http.unwrap(), "/api/queues");
    let cbq = queues
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "callbacks"))
        .expect("callbacks queue");
    assert_eq!(cbq["callbacks_scheduled"], 1, "{cbq}");
    assert_eq!(cbq["offered"], 0, "not offered before its time: {cbq}");
}
