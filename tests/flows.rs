//! Inbound calls and contact flows over real SIP and RTP: every block's
//! branches, with the shipped example flow run by SIPp.

mod common;

use common::centre::{callbacks, contacts, eventually, start};
use common::rtp::RtpPeer;
use common::sipp;
use common::ua::Ua;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TRUNK: &str = "127.0.0.1:5999";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A flow that asks for a number and schedules a callback at once.
fn number_flow(format: &str, country: &str) -> String {
    format!(
        r#"
type = "inbound"
start = "ask"

[blocks.ask]
type = "store_input"
prompts = ["enter_number"]
attribute = "n"
mode = "phone_number"
format = "{format}"
{country}
timeout_s = 3
inter_digit_timeout_s = 2
next = "set"
on_invalid = "invalid"
on_timeout = "timeout"

[blocks.set]
type = "set_callback_number"
attribute = "n"
next = "schedule"
on_invalid = "not_allowed"

[blocks.schedule]
type = "transfer_to_queue"
mode = "callback"
queue = "callbacks"
initial_delay_s = 3600
max_retries = 2
retry_interval_s = 600
next = "bye"
on_at_capacity = "bye"
on_duplicate = "duplicate"

[blocks.invalid]
type = "set_contact_attributes"
attributes = {{ result = "invalid" }}
next = "bye"

[blocks.not_allowed]
type = "set_contact_attributes"
attributes = {{ result = "not_allowed" }}
next = "bye"

[blocks.timeout]
type = "set_contact_attributes"
attributes = {{ result = "timeout" }}
next = "bye"

[blocks.duplicate]
type = "play_prompt"
prompts = ["already_scheduled"]
next = "bye"

[blocks.bye]
type = "disconnect"
"#
    )
}

fn numbers(flow: &str) -> String {
    format!("[[numbers]]\nnumber = \"2000\"\nflow = \"{flow}\"\n")
}

#[test]
fn local_and_e164_numbers_are_normalised_and_scheduled() {
    let local = number_flow("local", "country = \"US\"");
    let e164 = number_flow("e164", "");
    let gw = start(
        Some(&[("local", &local), ("e164", &e164)]),
        TRUNK,
        "[[numbers]]\nnumber = \"2000\"\nflow = \"local\"\n[[numbers]]\nnumber = \"2001\"\nflow = \"e164\"\n",
    );
    let start_ms = now_ms();
    let mut c = common::caller::Caller::dial(&gw, "2000");
    c.silence(300);
    c.keys("2015550123#");
    assert!(c.expect_bye(Duration::from_secs(10)), "flow did not end");
    let mut c = common::caller::Caller::dial(&gw, "2001");
    c.silence(300);
    c.keys("442079460000#");
    assert!(c.expect_bye(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(3), || callbacks(&gw).len() == 2));
    let rows = callbacks(&gw);
    let numbers: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(numbers, vec!["+12015550123", "+442079460000"]);
    for r in &rows {
        assert_eq!(r.1, "scheduled");
        assert_eq!((r.6, r.7), (2, 600), "retry settings");
        assert!(
            r.3 >= start_ms - 1000 && r.3 <= r.4,
            "initial start is the call's start"
        );
        assert_eq!(r.5 - r.4, 3_600_000, "initial delay");
        assert_eq!(r.8, "callbacks");
    }
}

#[test]
fn invalid_timeout_not_allowed_and_duplicate_branches() {
    let local = number_flow("local", "country = \"US\"");
    let gw = start(Some(&[("local", &local)]), TRUNK, &numbers("local"));
    // Not a number: 7 digits.
    let mut c = common::caller::Caller::dial(&gw, "2000");
    c.silence(300);
    c.keys("5551234#");
    assert!(c.expect_bye(Duration::from_secs(10)));
    // Nothing typed.
    let mut c = common::caller::Caller::dial(&gw, "2000");
    assert!(c.expect_bye(Duration::from_secs(15)));
    // A valid number the dial rules block (premium rate).
    let mut c = common::caller::Caller::dial(&gw, "2000");
    c.silence(300);
    c.keys("9005550123#");
    assert!(c.expect_bye(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(3), || contacts(&gw).len() == 3));
    let logs = gw.logs();
    assert!(logs.contains("invalid phone number"), "invalid branch");
    assert!(logs.contains("block=timeout"), "timeout branch");
    // The dial rules apply as the number is keyed: store_input's invalid
    // branch, before the caller confirms anything.
    assert!(
        logs.contains("invalid phone number")
            && logs.contains("+19005550123 is a premium_rate number"),
        "dial rules"
    );
    assert!(callbacks(&gw).is_empty(), "nothing scheduled");
    // Dedupe: the same number twice → the duplicate branch.
    for _ in 0..2 {
        let mut c = common::caller::Caller::dial(&gw, "2000");
        c.silence(300);
        c.keys("2015550123#");
        assert!(c.expect_bye(Duration::from_secs(15)));
    }
    assert!(eventually(Duration::from_secs(3), || gw
        .logs()
        .contains("block=duplicate")));
    assert_eq!(callbacks(&gw).len(), 1);
}

#[test]
fn menu_reprompts_twice_then_ends_politely() {
    let flow = r#"
type = "inbound"
start = "tries"

[blocks.tries]
type = "loop"
count = 3
body = "menu"
done = "goodbye"

[blocks.menu]
type = "get_input"
prompts = ["goodbye"]
timeout_s = 1
conditions = { "1" = "one", "2" = "two" }
on_timeout = "tries"
on_no_match = "tries"

[blocks.one]
type = "set_contact_attributes"
attributes = { choice = "one" }
next = "goodbye"

[blocks.two]
type = "set_contact_attributes"
attributes = { choice = "two" }
next = "goodbye"

[blocks.goodbye]
type = "play_prompt"
prompts = ["goodbye"]
next = "end"

[blocks.end]
type = "disconnect"
"#;
    let gw = start(Some(&[("menu", flow)]), TRUNK, &numbers("menu"));
    let mut c = common::caller::Caller::dial(&gw, "2000");
    assert!(
        c.expect_bye(Duration::from_secs(15)),
        "ended after the re-prompts"
    );
    let tries = gw
        .logs()
        .lines()
        .filter(|l| l.contains("block=menu") && l.contains("kind=get_input"))
        .count();
    assert_eq!(tries, 3, "asked three times");
    // A wrong key is a no-match; a right one takes its branch.
    let mut c = common::caller::Caller::dial(&gw, "2000");
    c.silence(200);
    c.keys("9");
    c.silence(300);
    c.keys("2");
    assert!(c.expect_bye(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(3), || contacts(&gw).len() == 2));
    assert!(gw.logs().contains("block=two"));
}

#[test]
fn caller_hanging_up_mid_prompt_ends_the_flow_and_is_recorded() {
    let flow = r#"
type = "inbound"
start = "long"

[blocks.long]
type = "play_prompt"
prompts = ["hold_music"]
next = "end"

[blocks.end]
type = "disconnect"
"#;
    let gw = start(Some(&[("long", flow)]), TRUNK, &numbers("long"));
    let mut c = common::caller::Caller::dial(&gw, "2000");
    c.silence(500);
    assert_eq!(
        c.ua.in_dialog(&mut c.call, "BYE", None).map(|r| r.status),
        Some(200)
    );
    assert!(eventually(Duration::from_secs(3), || contacts(&gw)
        .iter()
        .any(|r| r.6.as_deref() == Some("remote hung up"))));
    assert!(
        !gw.logs().contains("block=end"),
        "flow stopped at the hang-up"
    );
}

#[test]
fn cancel_before_answer_gets_487() {
    let flow = "type = \"inbound\"\nstart = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n";
    let gw = start(
        Some(&[("f", flow)]),
        TRUNK,
        "[[numbers]]\nnumber = \"2000\"\nflow = \"f\"\nring_s = 5\n",
    );
    if sipp::available() {
        let run = sipp::run(
            "caller_hangup_early.xml",
            gw.udp,
            &[
                "-s",
                "2000",
                "-m",
                "1",
                "-recv_timeout",
                "10000",
                "-set",
                "ring",
                "300",
                "-set",
                "strict",
                "1",
            ],
        );
        assert!(run.ok(), "{}\n{}", run.errors, run.stdout);
        assert!(run.messages.contains("SIP/2.0 487"), "487 for the INVITE");
    }
    // And with the Rust UA.
    let mut ua = Ua::udp(gw.udp);
    let rtp = RtpPeer::new();
    let text = ua.invite_text("2000", &rtp.offer(&[(0, "PCMU")]), "cancel-test", "ct1");
    ua.send(&text);
    let inv =
        callgate::sip::message::parse_datagram(text.replace('\n', "\r\n").as_bytes()).unwrap();
    let callgate::sip::message::SipMessage::Request(inv) = inv else {
        panic!()
    };
    std::thread::sleep(Duration::from_millis(300));
    ua.send_raw(&inv.cancel().encode());
    // Every response on the wire, with its To tag.
    let mut seen = Vec::new();
    while let Some(r) = ua.recv_response(Duration::from_secs(2)) {
        let method = callgate::sip::message::MessageExt::cseq(&r)
            .unwrap()
            .method
            .to_string();
        let tag = r.to_tag();
        let done = r.status >= 200 && method == "INVITE";
        seen.push((r.status, method, tag));
        if done {
            break;
        }
    }
    let tag_of = |status: u16, method: &str| {
        seen.iter()
            .find(|(s, m, _)| *s == status && m == method)
            .unwrap_or_else(|| panic!("no {status} {method} in {seen:?}"))
            .2
            .clone()
            .expect("To tag")
    };
    assert_eq!(
        seen.iter()
            .find(|(s, m, _)| *s >= 200 && m == "INVITE")
            .map(|r| r.0),
        Some(487),
        "ringing when cancelled: {seen:?}"
    );
    let (ringing, cancelled, terminated) = (
        tag_of(180, "INVITE"),
        tag_of(200, "CANCEL"),
        tag_of(487, "INVITE"),
    );
    // RFC 3261 §9.2: the CANCEL's 200 and the INVITE's 487 carry the same
    // To tag; it is the tag of the 180 too (one UAS, one early dialog).
    assert_eq!(cancelled, terminated, "{seen:?}");
    assert_eq!(ringing, terminated, "{seen:?}");
    // §19.3: tags are random, not a counter a third party could guess.
    assert!(
        terminated.len() >= 8 && u64::from_str_radix(&terminated, 16).is_ok(),
        "{terminated}"
    );
}

#[test]
fn shipped_example_flow_run_by_sipp_schedules_the_callback() {
    if !sipp::available_with_pcap() {
        return;
    }
    let gw = start(
        None,
        TRUNK,
        "[[numbers]]\nnumber = \"1000\"\nflow = \"main\"\n",
    );
    let t0 = now_ms();
    let run = sipp::callback_caller(gw.udp, "1000");
    assert!(run.ok(), "sipp: {}\n{}", run.errors, run.stdout);
    assert!(
        eventually(Duration::from_secs(3), || !callbacks(&gw).is_empty()),
        "{}",
        gw.logs()
    );
    let rows = callbacks(&gw);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.0, "+12015550123", "normalised to E.164");
    assert_eq!(r.1, "scheduled");
    assert_eq!((r.6, r.7), (2, 600), "max retries 2, 10 minutes apart");
    assert_eq!(r.5 - r.4, 99_000, "initial delay 99 s");
    assert!(
        r.3 >= t0 - 500 && r.3 < r.4,
        "keeps the original call's start time"
    );
    // (The inbound record is written as the call ends, a moment after
    // SIPp has seen the BYE.)
    assert!(eventually(Duration::from_secs(3), || contacts(&gw)
        .iter()
        .any(|c| c.2 == "inbound")));
    let recs = contacts(&gw);
    let inbound = recs
        .iter()
        .find(|c| c.2 == "inbound")
        .expect("inbound record");
    let cb = recs
        .iter()
        .find(|c| c.2 == "callback")
        .expect("callback record");
    assert_eq!(cb.1, inbound.0, "callback linked to the inbound contact");
    assert_eq!(cb.5.as_deref(), Some("+12015550123"));
}

#[test]
fn check_queue_status_branches_on_metrics_and_hours() {
    let check = |queue: &str| {
        format!(
            r#"
type = "inbound"
start = "check"
[blocks.check]
type = "check_queue_status"
queue = "{queue}"
conditions = [
  {{ metric = "open", op = "=", value = 0, next = "closed" }},
  {{ metric = "contacts_in_queue", op = ">=", value = 1, next = "busy" }},
]
on_no_match = "quiet"
[blocks.closed]
type = "set_contact_attributes"
attributes = {{ status = "closed" }}
next = "end"
[blocks.busy]
type = "set_contact_attributes"
attributes = {{ status = "busy" }}
next = "end"
[blocks.quiet]
type = "set_contact_attributes"
attributes = {{ status = "quiet" }}
next = "end"
[blocks.end]
type = "disconnect"
"#
        )
    };
    let (support, sales) = (check("support"), check("sales"));
    let wait = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\nmode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"e\"\n[blocks.e]\ntype = \"disconnect\"\n";
    let gw = start(
        Some(&[("support", &support), ("sales", &sales), ("wait", wait)]),
        TRUNK,
        "[[numbers]]\nnumber = \"2000\"\nflow = \"support\"\n[[numbers]]\nnumber = \"2001\"\nflow = \"sales\"\n[[numbers]]\nnumber = \"2002\"\nflow = \"wait\"\n",
    );
    let mut c = common::caller::Caller::dial(&gw, "2000");
    assert!(c.expect_bye(Duration::from_secs(5)));
    let mut c = common::caller::Caller::dial(&gw, "2001");
    assert!(c.expect_bye(Duration::from_secs(5)));
    let mut waiting = common::caller::Caller::dial(&gw, "2002");
    waiting.silence(300);
    let mut c = common::caller::Caller::dial(&gw, "2000");
    assert!(c.expect_bye(Duration::from_secs(5)));
    let order: Vec<&str> = ["block=quiet", "block=closed", "block=busy"].to_vec();
    let logs = gw.logs();
    let positions: Vec<usize> = order
        .iter()
        .map(|b| logs.find(b).unwrap_or_else(|| panic!("{b} not taken")))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "branches in call order: {positions:?}"
    );
}
