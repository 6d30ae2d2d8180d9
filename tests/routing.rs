//! Queues, routing profiles and agents over real SIP/RTP: callers wait,
//! agents register and are offered contacts in the right order, hear the
//! whisper, and are bridged with the caller (audio checked both ways).

mod common;

use callgate::media::g711::Law;
use callgate::sip::message::{HeaderName, MessageExt, Method};
use common::agent::{Agent, Answer};
use common::caller::Caller;
use common::centre::{contacts, eventually, start};
use common::http::get_json;
use common::rtp::{best_correlation, chirp, decode, read_wav};
use common::{Gateway, repo_root};
use std::time::Duration;

const TRUNK: &str = "127.0.0.1:5998";

fn voice_flow(queue: &str) -> String {
    format!(
        "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\nmode = \"voice\"\nqueue = \"{queue}\"\non_at_capacity = \"full\"\n[blocks.full]\ntype = \"play_tone\"\ntone = \"reorder\"\nseconds = 2\nnext = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n"
    )
}

fn gateway(extra: &str) -> Gateway {
    let support = voice_flow("support");
    let sales = voice_flow("sales");
    start(
        Some(&[("to_support", &support), ("to_sales", &sales)]),
        TRUNK,
        &format!(
            "[[numbers]]\nnumber = \"3001\"\nflow = \"to_support\"\n[[numbers]]\nnumber = \"3002\"\nflow = \"to_sales\"\n{extra}"
        ),
    )
}

fn dial(gw: &Gateway, number: &str) -> Caller {
    Caller::dial(gw, number)
}

fn waiting(gw: &Gateway) -> Vec<(String, String)> {
    get_json(gw.http.expect("http"), "/api/contacts")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["queue"].as_str().unwrap_or_default().to_string(),
                c["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn agent_state(gw: &Gateway, user: &str) -> String {
    get_json(gw.http.expect("http"), "/api/agents")
        .as_array()
        .and_then(|a| a.iter().find(|x| x["user"] == user).cloned())
        .and_then(|a| a["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn older_caller_first_whisper_then_audio_both_ways() {
    let gw = gateway("");
    // The sales caller arrives first, then the support caller: equal
    // priority, so the older one is offered first whatever the queue.
    let mut a = dial(&gw, "3002");
    a.rtp.send_silence(a.to, 10);
    let mut b = dial(&gw, "3001");
    b.rtp.send_silence(b.to, 5);
    assert!(eventually(Duration::from_secs(3), || waiting(&gw).len() == 2));
    let queues = get_json(gw.http.unwrap(), "/api/queues");
    let sales = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "sales")
        .unwrap()
        .clone();
    assert_eq!(sales["calls_waiting"], 1);
    assert_eq!(waiting(&gw)[0].0, "sales", "line order: oldest first");

    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let offer = alice
        .offer(Duration::from_secs(5), Answer::Accept(8))
        .expect("offer");
    assert_eq!(
        offer
            .invite
            .headers
            .get(&HeaderName::Other("X-Callgate-Queue".into())),
        Some("sales")
    );
    // The agent hears the whisper first (PCMA as answered).
    let heard = alice.rtp.receive(Duration::from_millis(2600));
    let whisper = read_wav(&repo_root().join("prompts/agent_whisper_inbound.wav"));
    let audio = decode(&heard, 8, Law::Alaw);
    let (corr, _) = best_correlation(&audio, &whisper[..whisper.len().min(16000)]);
    assert!(corr > 0.9, "agent whisper correlation {corr}");
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(8)),
        "{}",
        gw.logs()
    );
    assert_eq!(agent_state(&gw, "alice"), "on_contact");

    // Caller → agent: a chirp sent as PCMU arrives as PCMA.
    let _ = alice.rtp.receive(Duration::from_millis(100));
    let probe = chirp(8000, 300.0, 2500.0);
    let sender = {
        let mut r = a.rtp.sender();
        let to = a.to;
        let probe = probe.clone();
        std::thread::spawn(move || r.send_audio(to, 0, Law::Ulaw, &probe))
    };
    let got = alice.rtp.receive(Duration::from_millis(1400));
    sender.join().unwrap();
    let (corr, _) = best_correlation(&decode(&got, 8, Law::Alaw), &probe[800..7200]);
    assert!(corr > 0.95, "caller→agent correlation {corr}");
    // Agent → caller: a chirp sent as PCMA arrives as PCMU.
    let _ = a.rtp.receive(Duration::from_millis(100));
    let probe2 = chirp(8000, 2000.0, 400.0);
    let sender = {
        let mut r = alice.rtp.sender();
        let to = offer.media;
        let probe2 = probe2.clone();
        std::thread::spawn(move || r.send_audio(to, 8, Law::Alaw, &probe2))
    };
    let got = a.rtp.receive(Duration::from_millis(1400));
    sender.join().unwrap();
    let (corr, _) = best_correlation(&decode(&got, 0, Law::Ulaw), &probe2[800..7200]);
    assert!(corr > 0.95, "agent→caller correlation {corr}");

    // The caller hangs up: the agent's leg ends too, and the agent is then
    // offered the support caller.
    assert_eq!(
        a.ua.in_dialog(&mut a.call, "BYE", None).map(|r| r.status),
        Some(200)
    );
    assert!(
        alice
            .expect(Method::Bye, Duration::from_secs(3), None)
            .is_some(),
        "agent gets BYE"
    );
    let next = alice
        .offer(Duration::from_secs(5), Answer::Accept(0))
        .expect("second offer");
    assert_eq!(
        next.invite
            .headers
            .get(&HeaderName::Other("X-Callgate-Queue".into())),
        Some("support")
    );
    assert!(gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(8)));
    // Agent hangs up this time: the caller gets BYE.
    alice.hang_up(&next);
    // (right behind the 200: the dialog must already be known)
    assert_eq!(
        alice
            .ua
            .recv_response(Duration::from_secs(2))
            .map(|r| r.status),
        Some(200)
    );
    let bye =
        b.ua.recv_request(Duration::from_secs(3))
            .expect("caller gets BYE");
    assert_eq!(bye.method, Method::Bye);
    b.ua.respond_to(&bye, 200);
    assert!(
        eventually(Duration::from_secs(3), || {
            // Two inbound contacts, each with its agent leg chained to it.
            let recs = contacts(&gw);
            let inbound: Vec<_> = recs.iter().filter(|r| r.2 == "inbound").collect();
            let legs: Vec<_> = recs.iter().filter(|r| r.2 == "agent_leg").collect();
            inbound.len() == 2
                && legs.len() == 2
                && legs.iter().all(|l| inbound.iter().any(|i| i.0 == l.1))
                && recs.iter().all(|r| r.4.as_deref() == Some("alice"))
        }),
        "contact records name the agent: {:?}",
        contacts(&gw)
    );
}

#[test]
fn full_queue_gives_reorder_tone_and_releases() {
    let gw = gateway("# support_max_1");
    let mut first = dial(&gw, "3001");
    first.rtp.send_silence(first.to, 5);
    assert!(eventually(Duration::from_secs(3), || waiting(&gw).len() == 1));
    let second = dial(&gw, "3001");
    let pkts = second.rtp.receive(Duration::from_millis(1500));
    let audio = decode(&pkts, 0, Law::Ulaw);
    // Reorder: 480+620 Hz, 250 ms on, 250 ms off.
    let loud = audio
        .chunks(400)
        .filter(|c| c.iter().map(|s| i64::from(*s).abs()).max().unwrap_or(0) > 3000)
        .count();
    let quiet = audio
        .chunks(400)
        .filter(|c| c.iter().all(|s| s.abs() < 100))
        .count();
    assert!(
        loud >= 4 && quiet >= 4,
        "reorder cadence: {loud} loud, {quiet} quiet 50 ms chunks"
    );
    let mut second = second;
    let bye = second
        .ua
        .recv_request(Duration::from_secs(4))
        .expect("released");
    assert_eq!(bye.method, Method::Bye);
    second.ua.respond_to(&bye, 200);
    assert!(gw.logs().contains("queue at capacity"));
    assert_eq!(waiting(&gw).len(), 1, "the first caller still waits");
}

#[test]
fn declined_offer_goes_to_the_next_agent() {
    let gw = gateway("");
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    std::thread::sleep(Duration::from_millis(300));
    let mut bob = Agent::register(gw.udp, "bob", "bob-secret");
    let mut c = dial(&gw, "3001");
    c.rtp.send_silence(c.to, 5);
    // alice has been idle longest: she is offered first, and declines.
    let declined = alice
        .offer(Duration::from_secs(5), Answer::Decline)
        .expect("alice is offered the contact first");
    let o = bob
        .offer(Duration::from_secs(5), Answer::Accept(0))
        .expect("bob is offered the contact");
    assert_eq!(
        Agent::contact_of(&o),
        Agent::contact_of(&declined),
        "the contact alice declined"
    );
    assert_eq!(
        o.invite
            .headers
            .get(&HeaderName::Other("X-Callgate-Queue".into())),
        Some("support")
    );
    assert_eq!(agent_state(&gw, "alice"), "missed");
    assert!(gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(8)));
    bob.hang_up(&o);
    let _ = c.ua.recv_request(Duration::from_secs(3));
}

#[test]
fn caller_hanging_up_while_agent_rings_cancels_the_offer() {
    let gw = gateway("");
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let mut c = dial(&gw, "3001");
    c.rtp.send_silence(c.to, 5);
    // alice's phone rings (180) but she doesn't answer…
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let invite = loop {
        let r = alice.ua.recv_request(Duration::from_millis(500));
        if let Some(r) = r.filter(|r| r.method == Method::Invite) {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "no offer");
    };
    let ringing = callgate::sip::message::Response::to_request(&invite, 180, Some("agr"));
    alice.ua.send_raw(&ringing.encode());
    std::thread::sleep(Duration::from_millis(300));
    // …and the caller gives up.
    assert_eq!(
        c.ua.in_dialog(&mut c.call, "BYE", None).map(|r| r.status),
        Some(200)
    );
    assert!(
        alice
            .expect(Method::Cancel, Duration::from_secs(3), Some(&invite))
            .is_some(),
        "offer cancelled"
    );
    assert!(eventually(Duration::from_secs(3), || agent_state(
        &gw, "alice"
    ) == "available"));
    assert!(waiting(&gw).is_empty());
}

#[test]
fn unanswered_offer_times_out_and_the_agent_is_missed() {
    let gw = gateway("[routing]\noffer_timeout_s = 2\nmissed_available_after_s = 60\n");
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let mut c = dial(&gw, "3002");
    c.rtp.send_silence(c.to, 5);
    let rang = alice
        .offer(Duration::from_secs(5), Answer::Ring)
        .expect("alice is offered the call");
    let cancel = alice.expect(Method::Cancel, Duration::from_secs(4), None);
    let cancel = cancel.expect("CANCEL after the offer timeout");
    assert_eq!(
        cancel.call_id(),
        rang.invite.call_id(),
        "CANCEL of the offer"
    );
    // This phone never sends its 487: callgate gives up waiting for it.
    assert!(eventually(Duration::from_secs(8), || agent_state(
        &gw, "alice"
    ) == "missed"));
    assert_eq!(
        waiting(&gw),
        vec![("sales".to_string(), "queued".to_string())],
        "contact back in the queue"
    );
    // The API can make her available again.
    let (status, _) = common::http::request(
        gw.http.unwrap(),
        "PUT",
        "/api/agents/alice/state",
        Some("test-token"),
        Some("{\"state\":\"available\"}"),
    );
    assert_eq!(status, 200);
    assert!(
        alice
            .offer(Duration::from_secs(5), Answer::Accept(0))
            .is_some(),
        "offered again"
    );
}

#[test]
fn api_requires_a_token_except_health() {
    let gw = gateway("");
    let http = gw.http.unwrap();
    assert_eq!(
        common::http::request(http, "GET", "/health", None, None).0,
        200
    );
    assert_eq!(
        common::http::request(http, "GET", "/api/queues", None, None).0,
        401
    );
    assert_eq!(
        common::http::request(http, "GET", "/api/queues", Some("wrong"), None).0,
        401
    );
    assert_eq!(
        common::http::request(http, "GET", "/metrics", None, None).0,
        401
    );
    let (s, body) = common::http::request(http, "GET", "/metrics", Some("test-token"), None);
    assert_eq!(s, 200);
    assert!(
        body.contains("callgate_queue_contacts{queue=\"support\"} 0"),
        "{body}"
    );
    // Valid exposition format: every family names a type Prometheus knows.
    let types: Vec<&str> = body.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    assert!(types.len() >= 10);
    for t in types {
        let kind = t.split_whitespace().nth(3).unwrap_or_default();
        assert!(
            ["counter", "gauge", "summary", "histogram"].contains(&kind),
            "bad TYPE line: {t}"
        );
    }
    // The dashboard's page itself is public (it asks for the token).
    let (s, page) = common::http::request(http, "GET", "/dashboard", None, None);
    assert_eq!(s, 200);
    assert!(page.to_ascii_lowercase().contains("<html"), "{page}");
}

/// The same with a SIPp agent (registered by one SIPp, answering with
/// another), checking what each side receives on the wire.
#[test]
fn sipp_agent_gets_the_older_caller_whisper_and_both_way_audio() {
    if !common::sipp::available_with_pcap() || !common::capture::available() {
        return;
    }
    let gw = gateway("");
    let mut a = dial(&gw, "3002");
    a.rtp.send_silence(a.to, 10);
    let mut b = dial(&gw, "3001");
    b.rtp.send_silence(b.to, 5);
    assert!(eventually(Duration::from_secs(3), || waiting(&gw).len() == 2));
    let agent_media = common::even_udp_port();
    let pcap = gw.dir.path().join("agent.pcap");
    let cap = common::capture::Capture::start_ports(&pcap, &[agent_media]);
    // The agent speaks (plays g711a.pcap) 5 s after answering: after the
    // whisper, once bridged.
    let mut agent = common::sipp::sipp_agent_on(&gw, 1, 9000, agent_media, 5000);
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    // Caller A talks (a chirp) while the agent is connected.
    let probe = chirp(8000, 300.0, 2500.0);
    let _ = a.rtp.receive(Duration::from_millis(50));
    let sender = {
        let mut r = a.rtp.sender();
        let to = a.to;
        let probe = probe.clone();
        std::thread::spawn(move || r.send_audio(to, 0, Law::Ulaw, &probe))
    };
    let heard_by_a = a.rtp.receive(Duration::from_millis(6000));
    sender.join().unwrap();
    assert_eq!(
        agent.answer.wait(Duration::from_secs(15)),
        Some(0),
        "agent scenario failed"
    );
    let wire = cap.stop();
    // (After the agent hangs up, the support caller may be offered next.)
    let invites = agent.answer.received("INVITE");
    assert!(!invites.is_empty());
    assert!(
        invites[0].1.contains("X-Callgate-Queue: sales"),
        "older caller offered first: {}",
        invites[0].1
    );
    // What the agent received: the whisper, then the caller's chirp.
    let mut pkts: Vec<(u16, Vec<u8>)> = wire
        .iter()
        .filter_map(|p| {
            callgate::media::rtp_packet::parse(p)
                .filter(|r| r.payload_type == 8)
                .map(|r| (r.seq, r.payload.to_vec()))
        })
        .collect();
    pkts.sort_by_key(|p| p.0);
    let agent_heard: Vec<i16> = pkts
        .iter()
        .flat_map(|p| p.1.iter().map(|&c| Law::Alaw.decode(c)))
        .collect();
    let whisper = read_wav(&repo_root().join("prompts/agent_whisper_inbound.wav"));
    let (cw, _) = best_correlation(&agent_heard, &whisper);
    assert!(cw > 0.9, "agent whisper: {cw}");
    let (cc, _) = best_correlation(&agent_heard, &probe[800..7200]);
    assert!(cc > 0.95, "caller → agent: {cc}");
    // What caller A received: the agent's recorded voice, transcoded.
    let pcap_audio: Vec<i16> = {
        let mut p: Vec<(u16, Vec<u8>)> = common::capture::udp_payloads(
            &std::fs::read("/usr/share/sip-tester/g711a.pcap").unwrap(),
        )
        .iter()
        .filter_map(|x| callgate::media::rtp_packet::parse(x).map(|r| (r.seq, r.payload.to_vec())))
        .collect();
        p.sort_by_key(|x| x.0);
        p.iter()
            .flat_map(|x| x.1.iter().map(|&c| Law::Alaw.decode(c)))
            .collect()
    };
    let (ca, _) = best_correlation(&decode(&heard_by_a, 0, Law::Ulaw), &pcap_audio[..16000]);
    assert!(ca > 0.8, "agent → caller: {ca}");
    let _ = b.ua.in_dialog(&mut b.call, "BYE", None);
}

/// The shipped flows with SIPp on both sides: a caller presses 2 and waits
/// (hearing the queue flow), a SIPp agent is offered the call, and the
/// caller hanging up ends the agent's leg.
#[test]
fn sipp_caller_stays_in_queue_and_is_answered_by_a_sipp_agent() {
    if !common::sipp::available_with_pcap() {
        return;
    }
    let gw = start(
        None,
        TRUNK,
        "[[numbers]]\nnumber = \"1000\"\nflow = \"main\"\n",
    );
    let mut caller = common::sipp::Background::start(
        "caller_stay.xml",
        Some(gw.udp),
        common::free_udp_port(),
        &[
            "-s",
            "1000",
            "-m",
            "1",
            "-mp",
            &common::even_udp_port().to_string(),
            "-recv_timeout",
            "15000",
            "-set",
            "greet",
            "4500",
            "-set",
            "hold",
            "16000",
        ],
    );
    assert!(
        eventually(Duration::from_secs(12), || waiting(&gw)
            == vec![("support".to_string(), "queued".to_string())]),
        "{}",
        gw.logs()
    );
    let mut agent = common::sipp::sipp_agent(&gw, 1, 30000);
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(12)),
        "{}",
        gw.logs()
    );
    assert_eq!(
        caller.wait(Duration::from_secs(30)),
        Some(0),
        "caller: {}",
        std::fs::read_to_string(&caller.errors).unwrap_or_default()
    );
    assert_eq!(
        agent.answer.wait(Duration::from_secs(10)),
        Some(0),
        "agent: {}",
        std::fs::read_to_string(&agent.answer.errors).unwrap_or_default()
    );
    assert!(eventually(Duration::from_secs(3), || contacts(&gw)
        .iter()
        .any(|c| c.2 == "inbound" && c.4.as_deref() == Some("alice"))));
}

/// An agent registered over TCP is offered contacts over that connection.
#[test]
fn agent_on_tcp_gets_offers_on_its_connection() {
    let gw = gateway("");
    let mut alice = Agent::register_tcp(gw.tcp, "alice", "alice-secret");
    let mut c = dial(&gw, "3001");
    c.rtp.send_silence(c.to, 5);
    let o = alice
        .offer(Duration::from_secs(5), Answer::Accept(0))
        .expect("offer over TCP");
    assert!(
        o.invite
            .headers
            .get(&HeaderName::Via)
            .unwrap_or_default()
            .starts_with("SIP/2.0/TCP")
    );
    assert!(gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(8)));
}
