//! The registrar through the real binary: SIPp and the test UA register
//! agents with digest auth over UDP and TCP.

mod common;

use callgate::sip::message::{HeaderName, MessageExt};
use common::ua::{Registration, Ua, authorization};
use common::{Gateway, sipp};
use std::time::Duration;

#[test]
fn sipp_agent_registers_with_digest_and_wrong_password_never_gets_200() {
    if !sipp::available() {
        return;
    }
    let gw = Gateway::start("");
    let good = gw.dir.path().join("good.csv");
    std::fs::write(
        &good,
        "SEQUENTIAL\nalice;[authentication username=alice password=alice-secret]\n",
    )
    .unwrap();
    let run = sipp::run(
        "agent_register.xml",
        gw.udp,
        &[
            "-m",
            "1",
            "-inf",
            good.to_str().unwrap(),
            "-set",
            "stay",
            "200",
        ],
    );
    assert!(run.ok(), "sipp failed: {}\n{}", run.errors, run.stdout);
    assert!(
        gw.wait_for_log(
            &["binding added", "agent=alice", "expires=300"],
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    assert!(gw.wait_for_log(&["binding removed", "agent=alice"], Duration::from_secs(5)));

    let bad = gw.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "SEQUENTIAL\nalice;[authentication username=alice password=guess]\n",
    )
    .unwrap();
    let run = sipp::run(
        "agent_register.xml",
        gw.udp,
        &[
            "-m",
            "1",
            "-inf",
            bad.to_str().unwrap(),
            "-set",
            "stay",
            "200",
            "-recv_timeout",
            "3000",
        ],
    );
    assert!(!run.ok(), "a wrong password must not register");
    assert!(
        !run.messages.contains("SIP/2.0 200"),
        "got a 200 for a wrong password:\n{}",
        run.messages
    );
    assert!(gw.wait_for_log(
        &[
            "auth failure",
            "src_ip=127.0.0.1",
            "user=\"alice\"",
            "wrong password"
        ],
        Duration::from_secs(5)
    ));
}

#[test]
fn sha256_and_md5_digest_both_register() {
    let gw = Gateway::start("[registrar]\ndigest_algorithms = [\"SHA-256\", \"MD5\"]\n");
    let mut ua = Ua::udp(gw.udp);
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    let contact = format!("Contact: {}\n", reg.contact);
    let first = reg.request(&mut ua, &contact, Some(600), None);
    let challenge = ua.request(&first).expect("401");
    assert_eq!(challenge.status, 401);
    let algs: Vec<String> = common::ua::challenges(&challenge)
        .iter()
        .filter_map(|c| c.get("algorithm").cloned())
        .collect();
    assert_eq!(algs, vec!["SHA-256", "MD5"], "preference order from config");

    let resp = reg
        .register_with(&mut ua, &contact, Some(600), Some("SHA-256"))
        .expect("response");
    assert_eq!(resp.status, 200, "{resp}");
    let contacts: Vec<_> = resp.headers.get_all(&HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 1);
    assert!(
        contacts[0].contains("expires=600") || contacts[0].contains("expires=599"),
        "{contacts:?}"
    );

    let mut bob_ua = Ua::udp(gw.udp);
    let mut bob = Registration::new(&mut bob_ua, "bob", "bob-secret");
    let resp = bob
        .register_with(
            &mut bob_ua,
            &format!("Contact: {}\n", bob.contact),
            Some(600),
            Some("MD5"),
        )
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[test]
fn replayed_credentials_are_refused() {
    let gw = Gateway::start("");
    let mut ua = Ua::udp(gw.udp);
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    let contact = format!("Contact: {}\n", reg.contact);
    let first = reg.request(&mut ua, &contact, Some(600), None);
    let challenge = ua.request(&first).unwrap();
    let uri = format!("sip:{}", gw.udp);
    let auth = authorization(
        &challenge,
        None,
        "alice",
        "alice-secret",
        "REGISTER",
        &uri,
        1,
    )
    .unwrap();
    let second = reg.request(&mut ua, &contact, Some(600), Some(&auth));
    assert_eq!(ua.request(&second).unwrap().status, 200);
    // Same nonce and nonce count in a new request: a captured REGISTER
    // being replayed.
    let third = reg.request(&mut ua, &contact, Some(600), Some(&auth));
    assert_eq!(ua.request(&third).unwrap().status, 401);
    assert!(gw.wait_for_log(&["auth failure", "replayed nonce"], Duration::from_secs(5)));
    // A higher nonce count with the same nonce is fine (RFC 7616 §3.4).
    let auth2 = authorization(
        &challenge,
        None,
        "alice",
        "alice-secret",
        "REGISTER",
        &uri,
        2,
    )
    .unwrap();
    let fourth = reg.request(&mut ua, &contact, Some(600), Some(&auth2));
    assert_eq!(ua.request(&fourth).unwrap().status, 200);
}

#[test]
fn repeated_failures_ban_the_source() {
    // (127.0.0.1 is the default trunk's address: never banned.)
    let gw = Gateway::start(
        "[security]\nauth_fail_limit = 3\nauth_fail_window_s = 60\nauth_ban_s = 60\n",
    );
    let mut ua = Ua::udp_from("127.0.0.3:0", gw.udp);
    let mut reg = Registration::new(&mut ua, "alice", "wrong-secret");
    for _ in 0..2 {
        let r = reg.register(&mut ua, 600).expect("answered before the ban");
        assert_eq!(r.status, 401);
    }
    // Third failure triggers the ban: no answer from now on.
    reg.register(&mut ua, 600);
    let opts = ua.options("");
    ua.send(&opts);
    assert!(
        ua.final_response(Duration::from_millis(1500)).is_none(),
        "banned source still answered"
    );
    assert!(gw.wait_for_log(
        &["source banned", "src_ip=127.0.0.3"],
        Duration::from_secs(5)
    ));
    let failures = gw
        .logs()
        .lines()
        .filter(|l| l.contains("auth failure src_ip") && l.contains("user=\"alice\""))
        .count();
    assert_eq!(failures, 3);
    // Another source is unaffected.
    let mut other = Ua::udp_from("127.0.0.2:0", gw.udp);
    let opts = other.options("");
    assert_eq!(other.request(&opts).unwrap().status, 200);
}

#[test]
fn unknown_user_and_foreign_aor_are_refused() {
    let gw = Gateway::start("");
    let mut ua = Ua::udp(gw.udp);
    let mut mallory = Registration::new(&mut ua, "mallory", "whatever");
    assert_eq!(mallory.register(&mut ua, 600).unwrap().status, 401);
    assert!(gw.wait_for_log(
        &["auth failure", "user=\"mallory\"", "unknown user"],
        Duration::from_secs(5)
    ));

    // alice's credentials for bob's AOR
    let mut reg = Registration::new(&mut ua, "bob", "bob-secret");
    let contact = format!("Contact: {}\n", reg.contact);
    let first = reg.request(&mut ua, &contact, Some(600), None);
    let challenge = ua.request(&first).unwrap();
    let auth = authorization(
        &challenge,
        None,
        "alice",
        "alice-secret",
        "REGISTER",
        &format!("sip:{}", gw.udp),
        1,
    )
    .unwrap();
    let second = reg.request(&mut ua, &contact, Some(600), Some(&auth));
    assert_eq!(ua.request(&second).unwrap().status, 403);
}

#[test]
fn expiry_limits_several_contacts_and_star_removal() {
    let gw = Gateway::start("[registrar]\nmin_expires_s = 60\nmax_expires_s = 3600\n");
    let mut ua = Ua::udp(gw.udp);
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    let c1 = format!("Contact: {}\n", reg.contact);

    let r = reg.register_with(&mut ua, &c1, Some(10), None).unwrap();
    assert_eq!(r.status, 423);
    assert_eq!(r.header(&HeaderName::MinExpires), Some("60"));

    let r = reg
        .register_with(&mut ua, &c1, Some(100_000), None)
        .unwrap();
    assert_eq!(r.status, 200);
    let c = r.header(&HeaderName::Contact).unwrap().to_string();
    assert!(
        c.contains("expires=3600") || c.contains("expires=3599"),
        "clamped to max: {c}"
    );

    // A second contact (another phone of the same agent), with a per-contact
    // expires parameter overriding the header.
    let c2 = "Contact: <sip:alice@127.0.0.1:5999>;expires=120\n".to_string();
    let r = reg.register_with(&mut ua, &c2, Some(600), None).unwrap();
    assert_eq!(r.status, 200);
    let contacts: Vec<_> = r
        .headers
        .get_all(&HeaderName::Contact)
        .map(str::to_string)
        .collect();
    assert_eq!(contacts.len(), 2, "{contacts:?}");
    assert!(
        contacts
            .iter()
            .any(|c| c.contains("sip:alice@127.0.0.1:5999")
                && (c.contains("expires=120") || c.contains("expires=119")))
    );

    // `*` with Expires: 0 removes every binding.
    let r = reg
        .register_with(&mut ua, "Contact: *\n", Some(0), None)
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.count(&HeaderName::Contact), 0);
    // `*` without Expires: 0 is refused.
    let r = reg
        .register_with(&mut ua, "Contact: *\n", Some(60), None)
        .unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn contact_is_kept_exactly_as_sent() {
    let gw = Gateway::start("");
    let mut ua = Ua::udp(gw.udp);
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    let uri = format!(
        "sip:alice-0x7f@{};transport=udp;ob;X-Custom=AbC",
        ua.local_hostport()
    );
    let contact = format!(
        "Contact: <{uri}>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"\n"
    );
    let r = reg
        .register_with(&mut ua, &contact, Some(600), None)
        .unwrap();
    assert_eq!(r.status, 200, "{r}");
    let back = r.header(&HeaderName::Contact).unwrap();
    assert!(back.contains(&format!("<{uri}>")), "URI changed: {back}");
    assert!(
        back.contains("+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""),
        "{back}"
    );
    assert!(gw.wait_for_log(&["binding added", &uri], Duration::from_secs(5)));
}

#[test]
fn bindings_expire() {
    let gw = Gateway::start("[registrar]\nmin_expires_s = 1\ndefault_expires_s = 60\n");
    let mut ua = Ua::udp(gw.udp);
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    assert_eq!(reg.register(&mut ua, 1).unwrap().status, 200);
    assert!(
        gw.wait_for_log(&["binding expired", "agent=alice"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

#[test]
fn register_over_tcp() {
    let gw = Gateway::start("");
    let mut ua = Ua::tcp(gw.tcp);
    let mut reg = Registration::new(&mut ua, "bob", "bob-secret");
    let r = reg.register(&mut ua, 300).unwrap();
    assert_eq!(r.status, 200);
    assert!(gw.wait_for_log(
        &["binding added", "agent=bob", "source=tcp:"],
        Duration::from_secs(5)
    ));
}
