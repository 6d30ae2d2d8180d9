//! Hold, against the real binary with the test UA as caller and agent
//! (issue 13 items 5 and 6; the 90 s version with real phones is in
//! `peers_hold.rs`): while the agent holds (re-INVITE `sendonly`, then no
//! RTP at all) the call outlives `rtp.timeout_s`, the caller hears the
//! queue's hold music instead of dead air, callgate pings the holding
//! agent with in-dialog OPTIONS, and the bridge resumes on unhold. An
//! agent that goes away while holding (no answer to the pings) ends the
//! call, and the caller gets a BYE.

mod common;

use callgate::media::g711::Law;
use callgate::sip::message::{HeaderName, MessageExt, Method, Request, Response};
use common::agent::{Agent, Answer, Offered};
use common::caller::Caller;
use common::rtp::{
    RtpPeer, best_correlation, chirp, decode, frames_found, read_wav, share_of_frames,
};
use common::{Gateway, centre, repo_root};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn gateway() -> Gateway {
    let flow = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\n\
                mode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"end\"\n\
                [blocks.end]\ntype = \"disconnect\"\n";
    centre::start_opts(
        Some(&[("to_support", flow)]),
        "127.0.0.1:5996",
        "[[numbers]]\nnumber = \"3001\"\nflow = \"to_support\"\n",
        &centre::Opts {
            // Fast clocks: RTP timeout 2 s, a ping a second while held,
            // Timer F = 64 × 50 ms = 3.2 s.
            rtp: "timeout_s = 2",
            sip: "hold_ping_s = 1\nt1_ms = 50",
            ..Default::default()
        },
    )
}

/// A clone of `rtp`'s socket with what arrived so far thrown away (the
/// kernel keeps hundreds of packets: the queue's music before the agent
/// answered must not pass for what is heard now).
fn drained(rtp: &RtpPeer) -> std::net::UdpSocket {
    let s = rtp.sock.try_clone().expect("clone");
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 2048];
    while s.recv_from(&mut buf).is_ok() {}
    s.set_nonblocking(false).expect("blocking");
    s
}

/// Sends silence from a clone of `rtp` to `to` every 20 ms until `stop`.
fn keep_sending(rtp: &RtpPeer, to: SocketAddr, stop: Arc<AtomicBool>) {
    let mut tx = rtp.sender();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            tx.send_silence(to, 1);
        }
    });
}

/// The agent's re-INVITE in the offer's dialog with `direction`; returns
/// callgate's final response (ACKed when 2xx). Requests arriving
/// meanwhile (pings) are answered 200.
fn reinvite(agent: &mut Agent, o: &Offered, cseq: u32, direction: &str) -> Response {
    let target = o
        .invite
        .headers
        .get(&HeaderName::Contact)
        .map(|c| {
            c.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .expect("callgate's Contact");
    let from = format!(
        "{};tag={}",
        o.invite.headers.get(&HeaderName::To).unwrap_or_default(),
        o.to_tag
    );
    let to = o
        .invite
        .headers
        .get(&HeaderName::From)
        .unwrap_or_default()
        .to_string();
    let sdp = agent
        .rtp
        .offer(&[(0, "PCMU")])
        .replace("a=sendrecv", &format!("a={direction}"));
    let local = agent.ua.local_hostport();
    let head = format!(
        "INVITE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKre{cseq}x{direction}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nMax-Forwards: 70\r\nContact: <sip:{user}@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n",
        cid = o.invite.call_id().unwrap_or_default(),
        user = agent.user,
        len = sdp.len(),
    );
    let mut raw = head.into_bytes();
    raw.extend_from_slice(sdp.as_bytes());
    agent.ua.send_raw(&raw);
    let deadline = Instant::now() + Duration::from_secs(5);
    let resp = loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("answer to re-INVITE");
        let raw = agent.ua.recv_raw(left).expect("answer to re-INVITE");
        match callgate::sip::message::parse_datagram(&raw) {
            Ok(callgate::sip::message::SipMessage::Response(r)) if r.status >= 200 => break r,
            Ok(callgate::sip::message::SipMessage::Request(r)) if r.method != Method::Ack => {
                agent.ua.respond_to(&r, 200)
            }
            _ => {}
        }
    };
    if resp.status == 200 {
        let ack = format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKack{cseq}x{direction}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            to = resp.headers.get(&HeaderName::To).unwrap_or_default(),
            cid = o.invite.call_id().unwrap_or_default(),
        );
        agent.ua.send_raw(ack.as_bytes());
    }
    resp
}

/// Serves the agent's SIP for `dur`: answers pings 200 when `answer`,
/// ignores them otherwise. Returns the in-dialog OPTIONS seen.
fn serve_agent(agent: &mut Agent, dur: Duration, answer: bool) -> Vec<Request> {
    let deadline = Instant::now() + dur;
    let mut pings = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(req) = agent.ua.recv_request(left) else {
            break;
        };
        if req.method == Method::Options {
            pings.push(req.clone());
        }
        if answer && req.method != Method::Ack {
            agent.ua.respond_to(&req, 200);
        }
    }
    pings
}

#[test]
fn a_held_call_survives_hears_hold_music_and_resumes() {
    let gw = gateway();
    let mut agent = Agent::register(gw.udp, "alice", "alice-secret");
    let mut caller = Caller::dial(&gw, "3001");
    let stop = Arc::new(AtomicBool::new(false));
    keep_sending(&caller.rtp, caller.to, stop.clone());
    let offered = agent
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("offer");
    let agent_stop = Arc::new(AtomicBool::new(false));
    keep_sending(&agent.rtp, offered.media, agent_stop.clone());
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(15)),
        "{}",
        gw.logs()
    );

    // The agent holds: sendonly, and from now on sends nothing.
    agent_stop.store(true, Ordering::Relaxed);
    let r = reinvite(&mut agent, &offered, 1, "sendonly");
    assert_eq!(r.status, 200, "{r}");
    assert!(
        String::from_utf8_lossy(&r.body).contains("a=recvonly"),
        "{r}"
    );

    // Twice the RTP timeout on hold: the caller hears the hold music, the
    // agent is pinged, nobody is hung up.
    let rx = drained(&caller.rtp);
    let listen =
        std::thread::spawn(move || RtpPeer::from_socket(rx).receive(Duration::from_millis(4500)));
    let pings = serve_agent(&mut agent, Duration::from_millis(4600), true);
    let heard = listen.join().expect("listener");
    assert!(
        !gw.logs().contains("RTP timeout") && !gw.logs().contains("no RTP from the other side"),
        "hold is not an RTP timeout:\n{}",
        gw.logs()
    );
    assert!(
        heard.len() > 150,
        "the caller got {} packets while held",
        heard.len()
    );
    let music = read_wav(&repo_root().join("prompts/hold_music.wav"));
    let share = share_of_frames(&heard, 0, Law::Ulaw, &music);
    let audio = decode(&heard, 0, Law::Ulaw);
    let (corr, at) = best_correlation(&audio, &music[..16000]);
    eprintln!(
        "hold music: {:.0}% of the packets are its frames; correlation {corr:.3} at {at}; {} pings",
        share * 100.0,
        pings.len()
    );
    assert!(
        share > 0.95,
        "the caller hears the queue's hold music: {:.0}% of the packets",
        share * 100.0
    );
    assert!(pings.len() >= 2, "pings while held: {}", pings.len());
    for p in &pings {
        assert_eq!(
            p.addr_from().ok().and_then(|f| f.tag().map(str::to_string)),
            offered
                .invite
                .addr_from()
                .ok()
                .and_then(|f| f.tag().map(str::to_string)),
            "in the offer's dialog"
        );
        assert_eq!(p.call_id(), offered.invite.call_id());
    }

    // Unhold: the agent's audio reaches the caller again.
    let r = reinvite(&mut agent, &offered, 2, "sendrecv");
    assert_eq!(r.status, 200, "{}", gw.logs());
    let probe = chirp(8000, 500.0, 3000.0);
    let rx = drained(&caller.rtp);
    let listen =
        std::thread::spawn(move || RtpPeer::from_socket(rx).receive(Duration::from_millis(1800)));
    let mut tx = agent.rtp.sender();
    tx.send_audio(offered.media, 0, Law::Ulaw, &probe);
    let heard = listen.join().expect("listener");
    let found = frames_found(&heard, 0, Law::Ulaw, &probe);
    assert!(
        found >= 45,
        "agent→caller after unhold: {found} of 50 frames"
    );
    let talking = Arc::new(AtomicBool::new(false));
    keep_sending(&agent.rtp, offered.media, talking.clone());
    let quiet_pings = serve_agent(&mut agent, Duration::from_millis(1500), true);
    assert!(quiet_pings.is_empty(), "no pings once resumed");

    // Holds again and goes away: no answer to the pings ends the call.
    talking.store(true, Ordering::Relaxed);
    let r = reinvite(&mut agent, &offered, 3, "inactive");
    assert_eq!(r.status, 200);
    let t0 = Instant::now();
    serve_agent(&mut agent, Duration::from_millis(500), false);
    assert!(
        caller.expect_bye(Duration::from_secs(15)),
        "the caller gets BYE once the holding agent is gone\n{}",
        gw.logs()
    );
    eprintln!("ended {:?} after the agent went silent", t0.elapsed());
    assert!(
        gw.wait_for_log(&["the other side is gone"], Duration::from_secs(2)),
        "{}",
        gw.logs()
    );
    stop.store(true, Ordering::Relaxed);
}

/// A 481 to a ping (the agent's phone forgot the call) ends it at once.
#[test]
fn a_481_to_a_ping_ends_the_held_call() {
    let gw = gateway();
    let mut agent = Agent::register(gw.udp, "alice", "alice-secret");
    let mut caller = Caller::dial(&gw, "3001");
    let stop = Arc::new(AtomicBool::new(false));
    keep_sending(&caller.rtp, caller.to, stop.clone());
    let offered = agent
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("offer");
    let agent_stop = Arc::new(AtomicBool::new(false));
    keep_sending(&agent.rtp, offered.media, agent_stop.clone());
    assert!(gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(15)));
    agent_stop.store(true, Ordering::Relaxed);
    let r = reinvite(&mut agent, &offered, 1, "sendonly");
    assert_eq!(r.status, 200);
    let ping = loop {
        let req = agent
            .ua
            .recv_request(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no ping\n{}", gw.logs()));
        if req.method == Method::Options {
            break req;
        }
    };
    agent.ua.respond_to(&ping, 481);
    assert!(caller.expect_bye(Duration::from_secs(5)), "{}", gw.logs());
    assert!(gw.wait_for_log(&["the other side is gone", "481"], Duration::from_secs(2)));
    stop.store(true, Ordering::Relaxed);
}
