//! The callback dialer through the real binary: SIPp callers, agents and
//! customers; caller ID; whispers; ring-no-answer retries; crash safety;
//! expiry, stop and dedupe.

mod common;

use callgate::media::g711::Law;
use callgate::media::rtp_packet;
use common::centre::{Opts, callbacks, eventually, start, start_opts};
use common::http::{get_json, request};
use common::rtp::{best_correlation, read_wav};
use common::sipp::{self, Background, sipp_agent, sipp_agent_on};
use common::ua::Ua;
use common::{Gateway, capture, free_udp_port, repo_root};
use std::time::Duration;

/// Callback from the caller's own number, straight into the callbacks
/// queue.
fn ani_flow(delay: u64, retries: u32, interval: u64) -> String {
    common::centre::ani_flow("callbacks", delay, retries, interval)
}

/// Places one call from `from` to 4000 (the ANI flow) and waits for the
/// gateway to hang up.
fn request_callback(gw: &Gateway, from: &str) {
    common::centre::leave_callback(gw, "4000", from);
}

/// Like `request_callback`, from a UA of the caller's choosing (another
/// source address, say).
fn request_callback_via(ua: Ua, from: &str) {
    common::centre::leave_callback_via(ua, "4000", from);
}

fn decode_rtp(payloads: &[Vec<u8>], pt: u8, law: Law) -> Vec<i16> {
    let mut pkts: Vec<(u16, Vec<u8>)> = payloads
        .iter()
        .filter_map(|p| {
            rtp_packet::parse(p)
                .filter(|r| r.payload_type == pt)
                .map(|r| (r.seq, r.payload.to_vec()))
        })
        .collect();
    pkts.sort_by_key(|p| p.0);
    pkts.iter()
        .flat_map(|p| p.1.iter().map(|&c| law.decode(c)))
        .collect()
}

#[test]
fn callback_end_to_end_with_caller_id_whispers_and_bridge() {
    if !sipp::available_with_pcap() || !capture::available() {
        return;
    }
    let trunk_port = free_udp_port();
    let trunk = format!("127.0.0.1:{trunk_port}");
    // The shipped flows, with the initial delay shortened for the test.
    let read = |f: &str| std::fs::read_to_string(repo_root().join("config/flows").join(f)).unwrap();
    let callback_request =
        read("callback_request.toml").replace("initial_delay_s = 99", "initial_delay_s = 1");
    let (main, queue_wait) = (read("main.toml"), read("queue_wait.toml"));
    let gw = start(
        Some(&[
            ("main", &main),
            ("callback_request", &callback_request),
            ("queue_wait", &queue_wait),
        ]),
        &trunk,
        "[[numbers]]\nnumber = \"1000\"\nflow = \"main\"\n",
    );
    // SIPp caller: presses 1, keys 2015550123#, confirms.
    let run = sipp::callback_caller(gw.udp, "1000");
    assert!(run.ok(), "caller: {}\n{}", run.errors, run.stdout);
    assert_eq!(callbacks(&gw).len(), 1);

    let customer_media = common::even_udp_port();
    let pcap = gw.dir.path().join("media.pcap");
    let mut customer = Background::start(
        "customer_answer.xml",
        None,
        trunk_port,
        &[
            "-m",
            "1",
            "-mp",
            &customer_media.to_string(),
            "-set",
            "ring",
            "500",
            "-set",
            "talk",
            "17000",
        ],
    );
    // The agent's media port is chosen before it registers, so the capture
    // can start before the offer does. The agent speaks 11 s after
    // answering: after its whisper (~3 s), the ring (0.5 s) and the
    // customer's whisper (~5.5 s), with room for a loaded machine.
    let agent_media = common::even_udp_port();
    let cap = capture::Capture::start_ports(&pcap, &[customer_media, agent_media]);
    let mut agent = sipp_agent_on(&gw, 1, 24000, agent_media, 11000);
    assert_eq!(
        customer.wait(Duration::from_secs(60)),
        Some(0),
        "customer scenario: {}",
        std::fs::read_to_string(&customer.errors).unwrap_or_default()
    );
    assert!(agent.answer.wait(Duration::from_secs(20)).is_some());
    let by_port = cap.stop_by_port();

    // The customer's INVITE: dialled number and the queue's caller ID.
    let invites = customer.received("INVITE");
    assert_eq!(invites.len(), 1, "one dial");
    let inv = &invites[0].1;
    assert!(
        inv.starts_with(&format!("INVITE sip:+12015550123@{trunk} SIP/2.0")),
        "{inv}"
    );
    assert!(
        inv.contains("From: \"Acme Callbacks\" <sip:+12015550001@"),
        "{inv}"
    );
    assert!(
        inv.contains("P-Asserted-Identity: \"Acme Callbacks\" <sip:+12015550001@"),
        "{inv}"
    );

    let customer_audio = decode_rtp(
        &by_port
            .iter()
            .filter(|p| p.0 == customer_media)
            .map(|p| p.1.clone())
            .collect::<Vec<_>>(),
        0,
        Law::Ulaw,
    );
    let agent_audio = decode_rtp(
        &by_port
            .iter()
            .filter(|p| p.0 == agent.media_port)
            .map(|p| p.1.clone())
            .collect::<Vec<_>>(),
        8,
        Law::Alaw,
    );
    let prompt = |n: &str| read_wav(&repo_root().join(format!("prompts/{n}.wav")));
    let (c1, _) = best_correlation(&customer_audio, &prompt("customer_whisper"));
    assert!(c1 > 0.9, "customer hears the outbound whisper: {c1}");
    let (c2, _) = best_correlation(&agent_audio, &prompt("agent_whisper_callback"));
    assert!(c2 > 0.9, "agent hears the agent whisper: {c2}");
    // The agent's audio (SIPp plays g711a.pcap) reaches the customer.
    let pcap_audio = decode_rtp(
        &capture::udp_payloads(&std::fs::read("/usr/share/sip-tester/g711a.pcap").unwrap()),
        8,
        Law::Alaw,
    );
    let probe = &pcap_audio[..pcap_audio.len().min(16000)];
    let (c3, _) = best_correlation(&customer_audio, probe);
    assert!(c3 > 0.8, "agent's voice reaches the customer: {c3}");
    assert!(
        eventually(Duration::from_secs(5), || callbacks(&gw)
            .first()
            .is_some_and(|c| c.1 == "connected")),
        "{:?}",
        callbacks(&gw)
    );
    assert_eq!(callbacks(&gw)[0].2, 1, "one attempt");
}

#[test]
fn ring_no_answer_twice_then_answered_and_retry_limit() {
    if !sipp::available_with_pcap() {
        return;
    }
    let trunk_port = free_udp_port();
    let trunk = format!("127.0.0.1:{trunk_port}");
    let flow = ani_flow(0, 2, 3);
    let gw = start_opts(
        Some(&[("ani", &flow)]),
        &trunk,
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            ring_timeout_s: Some(2),
            ..Opts::default()
        },
    );
    let mut customer = Background::start(
        "customer_ring_twice_then_answer.xml",
        None,
        trunk_port,
        &[
            "-m",
            "3",
            "-set",
            "answer_from",
            "3",
            "-set",
            "ring",
            "300",
            "-set",
            "talk",
            "1000",
            "-timeout",
            "90s",
        ],
    );
    let _agent = sipp_agent(&gw, 3, 30000);
    request_callback(&gw, "+12015550177");
    assert!(
        eventually(Duration::from_secs(90), || callbacks(&gw)
            .first()
            .is_some_and(|c| c.1 == "connected")),
        "{:?}\n{}",
        callbacks(&gw),
        gw.logs()
    );
    assert_eq!(
        customer.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        std::fs::read_to_string(&customer.errors).unwrap_or_default()
    );
    let invites = customer.received("INVITE");
    assert_eq!(invites.len(), 3, "exactly three dials");
    for w in invites.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= 3.0, "dials {gap:.2} s apart, minimum is 3 s");
    }
    assert_eq!(callbacks(&gw)[0].2, 3);
}

#[test]
fn max_retries_one_ends_failed_after_two_dials() {
    if !sipp::available_with_pcap() {
        return;
    }
    let trunk_port = free_udp_port();
    let trunk = format!("127.0.0.1:{trunk_port}");
    let flow = ani_flow(0, 1, 2);
    let gw = start_opts(
        Some(&[("ani", &flow)]),
        &trunk,
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            ring_timeout_s: Some(2),
            ..Opts::default()
        },
    );
    let mut customer = Background::start(
        "customer_no_answer.xml",
        None,
        trunk_port,
        &["-m", "2", "-timeout", "90s"],
    );
    let _agent = sipp_agent(&gw, 2, 30000);
    request_callback(&gw, "+12015550178");
    assert!(
        eventually(Duration::from_secs(90), || callbacks(&gw)
            .first()
            .is_some_and(|c| c.1 == "failed")),
        "{:?}",
        callbacks(&gw)
    );
    let _ = customer.wait(Duration::from_secs(10));
    assert_eq!(customer.received("INVITE").len(), 2);
    assert_eq!(callbacks(&gw)[0].2, 2);
}

/// "The callback will be retried later" only when it will be: after the
/// last attempt the agent hears that the callback is closed.
#[test]
fn the_agent_hears_whether_the_callback_will_be_retried() {
    if !sipp::available() {
        return;
    }
    let trunk_port = free_udp_port();
    let trunk = format!("127.0.0.1:{trunk_port}");
    let gw = start_opts(
        Some(&[("ani", &ani_flow(0, 1, 1))]),
        &trunk,
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            ring_timeout_s: Some(2),
            ..Opts::default()
        },
    );
    let mut customer = Background::start(
        "customer_no_answer.xml",
        None,
        trunk_port,
        &["-m", "2", "-timeout", "90s"],
    );
    let mut alice = common::agent::Agent::register(gw.udp, "alice", "alice-secret");
    request_callback(&gw, "+12015550177");
    let prompt = |name: &str| read_wav(&repo_root().join(format!("prompts/{name}.wav")));
    let (retried, closed) = (
        prompt("callback_no_answer_agent"),
        prompt("callback_failed_agent"),
    );
    for (attempt, will_retry) in [(1, true), (2, false)] {
        let offer = alice
            .offer(Duration::from_secs(30), common::agent::Answer::Accept(0))
            .unwrap_or_else(|| panic!("offer {attempt}"));
        // Whisper, ringback for the 2 s ring timeout, then the verdict.
        let heard = common::rtp::decode(&alice.rtp.receive(Duration::from_secs(13)), 0, Law::Ulaw);
        let bye = alice.expect(
            callgate::sip::message::Method::Bye,
            Duration::from_secs(5),
            None,
        );
        assert!(bye.is_some(), "attempt {attempt}: the agent is released");
        let (r, _) = best_correlation(&heard, &retried);
        let (c, _) = best_correlation(&heard, &closed);
        if will_retry {
            assert!(
                r > 0.9 && c < r,
                "attempt {attempt}: retried {r:.2}, closed {c:.2}"
            );
        } else {
            assert!(
                c > 0.9 && r < c,
                "attempt {attempt}: retried {r:.2}, closed {c:.2}"
            );
        }
        let _ = offer;
    }
    assert!(
        eventually(Duration::from_secs(5), || callbacks(&gw)
            .first()
            .is_some_and(|c| c.1 == "failed" && c.2 == 2)),
        "{:?}",
        callbacks(&gw)
    );
    let _ = customer.wait(Duration::from_secs(10));
    assert_eq!(customer.received("INVITE").len(), 2);
}

/// `dedupe_callbacks`: one number calling 50 times at once (from 50
/// addresses, as through a carrier's many gateways) gets one callback.
#[test]
fn simultaneous_callers_from_one_number_get_one_callback() {
    let gw = start(
        Some(&[("ani", &ani_flow(60, 2, 600))]),
        "127.0.0.1:5995",
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
    );
    let target = gw.udp;
    let callers: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let ua = Ua::udp_from(&format!("127.0.1.{}:0", i + 1), target);
                request_callback_via(ua, "+12015550170");
            })
        })
        .collect();
    for c in callers {
        c.join().expect("caller");
    }
    let rows = callbacks(&gw);
    let pending: Vec<_> = rows.iter().filter(|c| c.0 == "+12015550170").collect();
    assert_eq!(pending.len(), 1, "{rows:?}");
    assert!(
        eventually(Duration::from_secs(3), || gw
            .logs()
            .matches("callback already pending for this number")
            .count()
            == 49),
        "the other 49 took the duplicate branch"
    );
}

#[test]
fn stopped_callbacks_are_never_offered() {
    let flow = ani_flow(1, 2, 600);
    let gw = start(
        Some(&[("ani", &flow)]),
        "127.0.0.1:5997",
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
    );
    // No agent yet: nothing is offered. (Expiry: `callbacks_expire`.)
    request_callback(&gw, "+12015550179");
    request_callback(&gw, "+12015550180");
    assert!(eventually(Duration::from_secs(3), || callbacks(&gw).len() == 2));
    let http = gw.http.unwrap();
    let list = get_json(http, "/api/callbacks");
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["number"] == "+12015550179")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, body) = request(
        http,
        "POST",
        &format!("/api/contacts/{id}/stop"),
        Some("test-token"),
        None,
    );
    assert_eq!(s, 200, "{body}");
    let (s, _) = request(
        http,
        "POST",
        &format!("/api/contacts/{id}/stop"),
        Some("test-token"),
        None,
    );
    assert_eq!(s, 409, "already stopped");
    let (s, _) = request(
        http,
        "POST",
        "/api/contacts/nope/stop",
        Some("test-token"),
        None,
    );
    assert_eq!(s, 404);
    let one = get_json(http, &format!("/api/callbacks/{id}"));
    assert_eq!(one["callback"]["state"], "stopped");
    let history: Vec<String> = one["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(history.first().map(String::as_str), Some("scheduled"));
    assert_eq!(history.last().map(String::as_str), Some("stopped"));
    // Now an agent registers: only the remaining callback is offered.
    let mut alice = common::agent::Agent::register(gw.udp, "alice", "alice-secret");
    let offer = alice
        .offer(Duration::from_secs(6), common::agent::Answer::Decline)
        .expect("the remaining callback is offered");
    assert_ne!(
        common::agent::Agent::contact_of(&offer),
        id,
        "the stopped callback was offered"
    );
    let queued = get_json(http, "/api/contacts");
    assert_eq!(
        queued.as_array().unwrap().len(),
        1,
        "the stopped callback is gone from the queue"
    );
    assert!(
        !gw.logs()
            .contains(&format!("contact={id} queue=callbacks kind=Callback")),
        "stopped callback was offered"
    );
}

#[test]
fn callbacks_expire() {
    let flow = ani_flow(0, 2, 600);
    let gw = start_opts(
        Some(&[("ani", &flow)]),
        "127.0.0.1:5996",
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            dialer: "expiry_s = 2",
            ..Opts::default()
        },
    );
    // No agent: the callback waits, then expires.
    request_callback(&gw, "+12015550181");
    assert!(
        eventually(Duration::from_secs(12), || callbacks(&gw)
            .first()
            .is_some_and(|c| c.1 == "expired")),
        "{:?}",
        callbacks(&gw)
    );
    assert!(gw.logs().contains("callback expired"));
    assert!(
        get_json(gw.http.unwrap(), "/api/contacts")
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn thousand_callbacks_survive_kill_9_and_the_one_in_flight_is_not_redialled() {
    if !sipp::available_with_pcap() {
        return;
    }
    let trunk_port = free_udp_port();
    let trunk = format!("127.0.0.1:{trunk_port}");
    let flow = ani_flow(0, 2, 600);
    let mut gw = start_opts(
        Some(&[("ani", &flow)]),
        &trunk,
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            callbacks_max: Some(2000),
            ..Opts::default()
        },
    );
    let csv = gw.dir.path().join("numbers.csv");
    let mut text = String::from("SEQUENTIAL\n");
    for i in 0..1000 {
        text.push_str(&format!("+1201555{:04}\n", 1000 + i));
    }
    std::fs::write(&csv, text).unwrap();
    let run = sipp::run(
        "caller_ani.xml",
        gw.udp,
        &[
            "-s",
            "4000",
            "-inf",
            csv.to_str().unwrap(),
            "-m",
            "1000",
            "-r",
            "100",
            "-l",
            "200",
            "-recv_timeout",
            "20000",
        ],
    );
    assert!(run.ok(), "{}\n{}", run.errors, run.stdout);
    assert!(
        eventually(Duration::from_secs(20), || callbacks(&gw).len() == 1000),
        "{} callbacks",
        callbacks(&gw).len()
    );
    let before = callbacks(&gw);
    // An agent takes the first; the customer's phone rings when we kill.
    let _customer = Background::start(
        "customer_no_answer.xml",
        None,
        trunk_port,
        &["-m", "1", "-timeout", "60s"],
    );
    let _agent = sipp_agent(&gw, 1, 30000);
    assert!(
        gw.wait_for_log(&["callback attempt"], Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert!(eventually(Duration::from_secs(5), || callbacks(&gw)
        .iter()
        .any(|c| c.1 == "dialing")));
    gw.kill9();
    // Restart on the same database.
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    // Same config, same database (its path is absolute); `gw` stays alive
    // so its directory is not deleted.
    let gw2 = Gateway::start_with_config(tempfile::tempdir().unwrap(), &config);
    assert!(
        gw2.wait_for_log(
            &["callbacks restored", "restored=1000"],
            Duration::from_secs(10)
        ),
        "{}",
        gw2.logs()
    );
    // (the database is in the first gateway's directory)
    let after = callbacks(&gw);
    assert_eq!(after.len(), 1000);
    let order_before: Vec<&str> = before.iter().map(|c| c.0.as_str()).collect();
    let order_after: Vec<&str> = after.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(order_before, order_after, "same line order");
    let in_flight: Vec<_> = after.iter().filter(|c| c.2 > 0).collect();
    assert_eq!(in_flight.len(), 1, "exactly one attempt was made");
    let f = in_flight[0];
    assert_eq!(
        (f.1.as_str(), f.2),
        ("queued", 1),
        "resumed as queued with its attempt counted"
    );
    assert!(
        f.5 > f.4 + 500_000,
        "and not before the retry interval: not dialled twice at once"
    );
    let queued = get_json(gw2.http.unwrap(), "/api/contacts?limit=1000");
    assert_eq!(queued.as_array().unwrap().len(), 1000, "all routable again");
}

/// A trunk played by the test UA: challenges the INVITE with digest, then
/// answers; and a 200 that crosses callgate's CANCEL.
#[test]
fn trunk_digest_challenge_and_ok_crossing_cancel() {
    let trunk_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let trunk_addr = trunk_sock.local_addr().unwrap();
    drop(trunk_sock);
    let flow = ani_flow(0, 2, 1);
    let gw = start_opts(
        Some(&[("ani", &flow)]),
        &trunk_addr.to_string(),
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            dialer: "auth_user = \"gw\"\nauth_password = \"trunk-pass\"",
            ring_timeout_s: Some(2),
            ..Opts::default()
        },
    );
    let mut trunk = Ua::udp_from(&trunk_addr.to_string(), gw.udp);
    let mut alice = common::agent::Agent::register(gw.udp, "alice", "alice-secret");
    request_callback(&gw, "+12015550182");
    // The agent answers the offer; callgate then dials the trunk.
    let _offer = alice
        .offer(Duration::from_secs(5), common::agent::Answer::Accept(0))
        .expect("offer");
    let first = trunk
        .recv_request(Duration::from_secs(10))
        .expect("INVITE to the trunk");
    assert_eq!(first.method, callgate::sip::message::Method::Invite);
    let challenge = callgate::sip::message::Response::to_request(&first, 407, Some("tr1"))
        .with_header(
            callgate::sip::message::HeaderName::ProxyAuthenticate,
            "Digest realm=\"trunk\", nonce=\"abc123\", qop=\"auth\", algorithm=MD5",
        );
    trunk.send_raw(&challenge.encode());
    // ACK for the 407, then the INVITE again with credentials.
    let mut second = None;
    for _ in 0..3 {
        let r = trunk.recv_request(Duration::from_secs(5)).expect("request");
        if r.method == callgate::sip::message::Method::Invite {
            second = Some(r);
            break;
        }
    }
    let second = second.expect("authenticated INVITE");
    let auth = second
        .headers
        .get(&callgate::sip::message::HeaderName::ProxyAuthorization)
        .expect("Proxy-Authorization")
        .to_string();
    let field = |k: &str| {
        auth.split(&format!("{k}="))
            .nth(1)
            .map(|v| {
                v.trim_start_matches('"')
                    .split(['"', ','])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    };
    let uri = field("uri");
    let (nc, cnonce) = (field("nc"), field("cnonce"));
    let ha1 = common::ua::hash("MD5", "gw:trunk:trunk-pass");
    let ha2 = common::ua::hash("MD5", &format!("INVITE:{uri}"));
    let expect = common::ua::hash("MD5", &format!("{ha1}:abc123:{nc}:{cnonce}:auth:{ha2}"));
    assert_eq!(
        field("response"),
        expect,
        "digest response computed right: {auth}"
    );
    assert_eq!(field("username"), "gw");
    assert!(
        callgate::sip::message::MessageExt::cseq(&second)
            .unwrap()
            .seq
            > 1
    );
    // Ringing, and a 200 sent only after callgate's CANCEL (ring timeout 2 s).
    let ringing = callgate::sip::message::Response::to_request(&second, 180, Some("tr2"));
    trunk.send_raw(&ringing.encode());
    let cancel = trunk
        .recv_request(Duration::from_secs(5))
        .expect("CANCEL after the ring timeout");
    assert_eq!(cancel.method, callgate::sip::message::Method::Cancel);
    let sdp = common::rtp::RtpPeer::new().offer(&[(0, "PCMU")]);
    let ok = callgate::sip::message::Response::to_request(&second, 200, Some("tr2"))
        .with_header(
            callgate::sip::message::HeaderName::Contact,
            format!("<sip:trunk@{trunk_addr}>"),
        )
        .with_body("application/sdp", bytes::Bytes::from(sdp));
    trunk.send_raw(&ok.encode());
    let cancel_ok = callgate::sip::message::Response::to_request(&cancel, 200, Some("tr2"));
    trunk.send_raw(&cancel_ok.encode());
    // callgate ACKs the 200 and hangs up at once.
    let mut seen = Vec::new();
    while let Some(r) = trunk.recv_request(Duration::from_secs(3)) {
        seen.push(r.method.to_string());
        if r.method == callgate::sip::message::Method::Bye {
            trunk.respond_to(&r, 200);
            break;
        }
    }
    assert_eq!(
        seen,
        vec!["ACK", "BYE"],
        "ACK then BYE for the crossing 200"
    );
    assert!(
        eventually(Duration::from_secs(5), || callbacks(&gw)
            .first()
            .is_some_and(|c| c.1 == "queued" && c.2 == 1)),
        "counted as a ring-no-answer: {:?}",
        callbacks(&gw)
    );
}
