//! Answering-machine detection on callbacks through the real binary: the
//! trunk is a Rust test peer that answers and plays an espeak-ng greeting
//! as RTP. With `on_machine = "retry"`, a voicemail greeting ends the
//! attempt (the agent is told, never bridged) and the callback is queued
//! again; a person's "Hello?" is greeted and bridged as usual.

mod common;

use callgate::media::g711::Law;
use callgate::sip::message::{HeaderName, Method, Request, Response};
use common::agent::{Agent, Answer};
use common::centre::{Opts, ani_flow, eventually, leave_callback, start_opts};
use common::greetings::{HUMAN, MACHINE, available, render};
use common::http::get_json;
use common::rtp::{RtpPeer, best_correlation, decode, read_wav};
use common::ua::Ua;
use common::{Gateway, repo_root};
use std::net::SocketAddr;
use std::time::Duration;

fn prompt(name: &str) -> Vec<i16> {
    read_wav(&repo_root().join(format!("prompts/{name}.wav")))
}

/// Answers the INVITE with PCMU and plays `pcm` to callgate's media
/// address, in real time, from a thread of its own (the test listens to
/// the agent meanwhile); the thread gives the customer's RTP peer back.
fn answer_and_play(
    trunk: &mut Ua,
    mut rtp: RtpPeer,
    invite: &Request,
    pcm: Vec<i16>,
) -> std::thread::JoinHandle<RtpPeer> {
    let offer = callgate::media::sdp::SessionDescription::parse(&invite.body).expect("offer");
    let m = &offer.media[0];
    let to = SocketAddr::new(m.connection.or(offer.connection).expect("c="), m.port);
    let sdp = rtp.offer(&[(0, "PCMU")]);
    let ok = Response::to_request(invite, 200, Some("cust"))
        .with_header(
            HeaderName::Contact,
            format!("<sip:customer@{}>", trunk.local_hostport()),
        )
        .with_body("application/sdp", bytes::Bytes::from(sdp));
    trunk.send_raw(&ok.encode());
    std::thread::spawn(move || {
        rtp.send_audio(to, 0, Law::Ulaw, &pcm);
        rtp
    })
}

fn next_invite(trunk: &mut Ua) -> Request {
    loop {
        let r = trunk
            .recv_request(Duration::from_secs(20))
            .expect("a request from callgate");
        if r.method == Method::Invite {
            return r;
        }
        trunk.respond_to(&r, 200);
    }
}

fn state(gw: &Gateway) -> (String, u64, String) {
    let cb = &get_json(gw.http.unwrap(), "/api/callbacks")[0];
    (
        cb["state"].as_str().unwrap_or_default().to_string(),
        cb["attempts"].as_u64().unwrap_or(0),
        cb["last_outcome"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_machine_is_retried_and_a_person_is_bridged() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let voicemail = render(dir.path(), 0, MACHINE[0], 400, 500).expect("render");
    let hello = render(dir.path(), 1, HUMAN[0], 500, 2000).expect("render");
    let trunk_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let trunk_addr = trunk_sock.local_addr().unwrap();
    drop(trunk_sock);
    let gw = start_opts(
        Some(&[("ani", &ani_flow("callbacks", 0, 2, 1))]),
        &trunk_addr.to_string(),
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            callbacks: "on_machine = \"retry\"",
            ..Opts::default()
        },
    );
    let mut trunk = Ua::udp_from(&trunk_addr.to_string(), gw.udp);
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    leave_callback(&gw, "4000", "+12015550191");

    // Attempt 1: voicemail. The agent hears ringback, then is told; the
    // customer's line is hung up; the callback is queued again.
    let _offer = alice
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("offer 1");
    let invite = next_invite(&mut trunk);
    let playing = answer_and_play(&mut trunk, RtpPeer::new(), &invite, voicemail);
    let heard = decode(&alice.rtp.receive(Duration::from_secs(10)), 0, Law::Ulaw);
    let mut bye = None;
    while let Some(r) = trunk.recv_request(Duration::from_secs(10)) {
        if r.method != Method::Ack {
            trunk.respond_to(&r, 200);
        }
        if r.method == Method::Bye {
            bye = Some(r);
            break;
        }
    }
    assert!(bye.is_some(), "the machine's line is hung up");
    let customer = playing.join().expect("played");
    let (c, _) = best_correlation(&heard, &prompt("machine_retry_agent"));
    assert!(c > 0.9, "the agent is told a machine answered: {c:.2}");
    let (w, _) = best_correlation(&customer_audio_of(&customer), &prompt("customer_whisper"));
    assert!(w < 0.5, "no whisper to a machine: {w:.2}");
    assert!(
        alice
            .expect(Method::Bye, Duration::from_secs(5), None)
            .is_some()
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            let (s, attempts, outcome) = state(&gw);
            // Queued again, and (1 s retry interval, alice free) soon
            // offered again: not failed, not connected.
            (s == "queued" || s == "offered") && attempts == 1 && outcome == "answering machine"
        }),
        "re-queued after a machine: {:?}",
        state(&gw)
    );
    assert!(gw.wait_for_log(
        &["answering-machine detection", "machine=true"],
        Duration::from_secs(1)
    ));

    // Attempt 2 (after the 1 s retry interval): a person says "Hello?".
    let _offer = alice
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("offer 2");
    let invite = next_invite(&mut trunk);
    let customer = RtpPeer::new();
    let listener = customer.sender();
    let playing = answer_and_play(&mut trunk, customer, &invite, hello);
    let heard = decode(&listener.receive(Duration::from_secs(10)), 0, Law::Ulaw);
    let _ = playing.join();
    let (w, _) = best_correlation(&heard, &prompt("customer_whisper"));
    assert!(w > 0.9, "a person hears the whisper: {w:.2}");
    assert!(
        eventually(Duration::from_secs(5), || state(&gw).0 == "connected"),
        "{:?}",
        state(&gw)
    );
    assert_eq!(state(&gw).1, 2);
}

/// What the customer's side received so far (drained).
fn customer_audio_of(customer: &RtpPeer) -> Vec<i16> {
    decode(&customer.receive(Duration::from_millis(300)), 0, Law::Ulaw)
}

/// `on_machine = "message"`: callgate waits for the greeting (and its
/// beep) to end, leaves its message on the machine, hangs up and closes
/// the callback as attempted; the agent is told, never bridged.
#[test]
fn a_message_is_left_on_a_machine() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A greeting, a beep, then the machine records (line noise).
    let mut voicemail = render(dir.path(), 2, MACHINE[2], 300, 0).expect("render");
    voicemail.extend(
        (0..4000)
            .map(|i| ((i as f64 * 1000.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16),
    );
    voicemail.extend(render(dir.path(), 3, ".", 0, 9000).expect("render"));
    let trunk_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let trunk_addr = trunk_sock.local_addr().unwrap();
    drop(trunk_sock);
    let gw = start_opts(
        Some(&[("ani", &ani_flow("callbacks", 0, 2, 1))]),
        &trunk_addr.to_string(),
        "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n",
        &Opts {
            callbacks: "on_machine = \"message\"",
            ..Opts::default()
        },
    );
    let mut trunk = Ua::udp_from(&trunk_addr.to_string(), gw.udp);
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    leave_callback(&gw, "4000", "+12015550192");
    let _offer = alice
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("offer");
    let invite = next_invite(&mut trunk);
    let customer = RtpPeer::new();
    let listener = customer.sender();
    let playing = answer_and_play(&mut trunk, customer, &invite, voicemail);
    let heard = decode(&listener.receive(Duration::from_secs(15)), 0, Law::Ulaw);
    let _ = playing.join();
    let message = prompt("machine_message");
    let (c, at) = best_correlation(&heard, &message);
    assert!(c > 0.9, "the message is left on the machine: {c:.2}");
    let (w, _) = best_correlation(&heard, &prompt("customer_whisper"));
    assert!(w < 0.5, "no whisper to a machine: {w:.2}");
    // Started after the greeting and beep, not over them: the caller's
    // side sent ~7.5 s of greeting and beep before going quiet.
    assert!(
        at > 8000 * 6,
        "after the greeting: {} s",
        at as f64 / 8000.0
    );
    let mut bye = false;
    while let Some(r) = trunk.recv_request(Duration::from_secs(5)) {
        if r.method != Method::Ack {
            trunk.respond_to(&r, 200);
        }
        if r.method == Method::Bye {
            bye = true;
            break;
        }
    }
    assert!(bye, "hung up after the message");
    assert!(
        eventually(Duration::from_secs(5), || {
            let (s, attempts, outcome) = state(&gw);
            s == "failed" && attempts == 1 && outcome == "answering machine: message left"
        }),
        "closed as attempted: {:?}",
        state(&gw)
    );
}
