//! Hold with real phones for 90 s (issue 13 items 5 and 6), in its own
//! test binary because it takes that long: linphonec calls the queue,
//! baresip (agent alice, auto-answer, the shipped digest settings) takes
//! the call and holds it for 90 s with `rtp.timeout_s = 15`. baresip
//! sends no RTP at all while holding; linphonec hangs up after 30 s
//! without RTP. The call survives, the caller hears the queue's hold
//! music meanwhile (callgate's RTP to linphonec, captured on the wire,
//! correlated with `prompts/hold_music.wav`), callgate pings the holding
//! phone with in-dialog OPTIONS, and the agent's audio reaches the caller
//! again after resume.

mod common;

use callgate::media::g711::Law;
use callgate::media::rtp_packet;
use common::baresip::{self, Baresip};
use common::capture::{self, Capture};
use common::linphone::{self, Linphonec};
use common::rtp::{Received, best_correlation, chirp, decode, read_wav, share_of_frames};
use common::{centre, repo_root, tools, wire};
use std::time::{Duration, Instant};

/// The RTP packets callgate sent to `port` in a pcap, in arrival order.
fn rtp_to(pcap: &[u8], port: u16) -> Vec<Received> {
    let mut out = Vec::new();
    for seg in wire::segments(pcap) {
        if seg.dst.port() != port || seg.transport != wire::Transport::Udp {
            continue;
        }
        let Some(p) = rtp_packet::parse(&seg.payload) else {
            continue;
        };
        out.push(Received {
            at: Instant::now(),
            marker: p.marker,
            pt: p.payload_type,
            seq: p.seq,
            ts: p.timestamp,
            ssrc: p.ssrc,
            payload: p.payload.to_vec(),
        });
    }
    out
}

/// The audio in `pkts` (PCMU or PCMA), decoded in order, and its law.
fn decoded(pkts: &[Received]) -> (Vec<i16>, Law) {
    let law = match pkts.iter().find(|p| p.pt == 0 || p.pt == 8).map(|p| p.pt) {
        Some(8) => Law::Alaw,
        _ => Law::Ulaw,
    };
    (decode(pkts, law.payload_type(), law), law)
}

fn chirps_wav(path: &std::path::Path, probe: &[i16], times: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for _ in 0..times {
        for s in probe.iter().copied().chain(std::iter::repeat_n(0, 2000)) {
            w.write_sample(s).expect("sample");
        }
    }
    w.finalize().expect("finalize");
}

#[test]
fn agent_holds_for_90_s_the_call_survives_with_hold_music_and_resumes() {
    if !baresip::available() || !linphone::available() || !capture::available() {
        return;
    }
    let flow = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\n\
                mode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"end\"\n\
                [blocks.end]\ntype = \"disconnect\"\n";
    let gw = centre::start_opts(
        Some(&[("to_support", flow)]),
        "127.0.0.1:5994",
        "[[numbers]]\nnumber = \"3001\"\nflow = \"to_support\"\n",
        &centre::Opts {
            rtp: "timeout_s = 15",
            ..Default::default()
        },
    );
    let agent_probe = chirp(8000, 2000.0, 400.0);
    let mic = gw.dir.path().join("agent_mic.wav");
    // Long enough for the whole call: baresip ends a call when its WAV
    // source runs out.
    chirps_wav(&mic, &agent_probe, 120);
    let mut agent = Baresip::start(baresip::Options {
        source_wav: Some(mic),
        source_secs: 200,
        max_secs: 240,
        ..Default::default()
    });
    agent
        .register(&baresip::account_line(
            "alice",
            "alice-secret",
            gw.udp,
            "udp",
        ))
        .expect("alice registers with the shipped digest settings");
    // linphonec sends RTP only with a file to play (see common::linphone).
    let tone = gw.dir.path().join("tone.wav");
    linphone::tone_wav(&tone);
    let mut caller = Linphonec::start(linphone::Options {
        play_wav: Some(tone),
        ..Default::default()
    });
    caller
        .call(&format!("sip:3001@{}", gw.udp))
        .expect("3001 answers");
    agent.wait_established().expect("alice answers the offer");
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    std::thread::sleep(Duration::from_secs(2));

    // Hold for 90 s.
    let dump = gw.dir.path().join("hold.pcap");
    let cap = Capture::start_filter(&dump, &format!("udp and dst port {}", caller.rtp_port));
    agent.hold().expect("hold");
    assert!(
        gw.wait_for_log(&["the other side holds the call"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let held = Instant::now();
    while held.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_secs(5));
        assert!(
            !gw.logs().contains("call ended"),
            "a call ended while held ({:?} in):\n{}",
            held.elapsed(),
            gw.logs()
        );
    }
    let on_hold = rtp_to(&cap.stop_raw(), caller.rtp_port);
    let (audio, law) = decoded(&on_hold);
    eprintln!(
        "the caller got {:.1} s of audio during 90 s of hold",
        audio.len() as f64 / 8000.0
    );
    assert!(
        audio.len() > 8000 * 80,
        "RTP to the caller all through the hold: {} samples",
        audio.len()
    );
    // The hold music (24 s, looping): every packet one of its frames.
    let music = read_wav(&repo_root().join("prompts/hold_music.wav"));
    let share = share_of_frames(&on_hold, law.payload_type(), law, &music);
    let (corr, at) = best_correlation(&audio[..8000 * 30], &music[..8000 * 5]);
    eprintln!(
        "{:.1}% of the packets are hold music frames; correlation with its start {corr:.3} at {at}",
        share * 100.0
    );
    assert!(
        share > 0.95,
        "the caller hears the hold music: {:.1}%",
        share * 100.0
    );
    let pings = gw.logs().matches("in-dialog OPTIONS while held").count();
    assert!(pings >= 2, "callgate pinged the holding phone: {pings}");
    assert!(
        !gw.logs().contains("RTP timeout") && !caller.output().contains(" ended"),
        "nobody hung up:\n{}",
        caller.output()
    );

    // Resume: the agent's microphone reaches the caller again.
    let dump = gw.dir.path().join("resume.pcap");
    let cap = Capture::start_filter(&dump, &format!("udp and dst port {}", caller.rtp_port));
    agent.resume().expect("resume");
    assert!(
        gw.wait_for_log(&["the other side resumed the call"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    std::thread::sleep(Duration::from_secs(4));
    let (resumed, _) = decoded(&rtp_to(&cap.stop_raw(), caller.rtp_port));
    let (corr, _) = best_correlation(&resumed, &agent_probe[800..7200]);
    eprintln!("agent → caller after resume: correlation {corr:.3}");
    assert!(corr > 0.9, "the agent is heard again after resume: {corr}");

    caller.terminate().expect("the caller hangs up");
    assert!(
        agent
            .wait_event("CALL_CLOSED", Duration::from_secs(10))
            .is_some(),
        "the agent's call ends with the caller's"
    );
    assert!(
        tools::poll(Duration::from_secs(5), || gw
            .logs()
            .contains("remote hung up")
            .then_some(()))
        .is_some()
    );
}

/// RFC 4028 with a real clock (here because it takes a minute, like the
/// hold above, and runs beside it): a caller that asks callgate to
/// refresh (`refresher=uas`, 90 s, UPDATE allowed) gets an UPDATE with
/// `Session-Expires` before half the interval is over; a caller that was
/// to refresh and does not is hung up (BYE) once the interval minus
/// 30 s has passed; one that does not allow UPDATE gets a re-INVITE with
/// callgate's SDP, and its 200 is ACKed.
#[test]
fn session_timers_refresh_and_expire() {
    use callgate::sip::message::{HeaderName, Method};
    use common::rtp::RtpPeer;
    use common::ua::Ua;
    let gw = common::Gateway::start(&format!(
        "[prompts]\ndir = \"{}\"\n\n[[test_numbers]]\nnumber = \"7000\"\nprompt = \"test_tone_sweep\"\nmax_seconds = 300\n",
        repo_root().join("prompts").display()
    ));
    let run = |refresher: &'static str, allow: &'static str| {
        let gw_udp = gw.udp;
        std::thread::spawn(move || {
            let mut ua = Ua::udp(gw_udp);
            let rtp = RtpPeer::new();
            let sdp = rtp.offer(&[(0, "PCMU")]);
            let cid = ua.unique(refresher);
            let text = ua.invite_text("7000", &sdp, &cid, "stf").replacen(
                "Max-Forwards: 70\n",
                &format!(
                    "Max-Forwards: 70\nSupported: timer\nSession-Expires: 90;refresher={refresher}\nAllow: {allow}\n"
                ),
                1,
            );
            let (head, body) = text.split_once("\n\n").expect("body");
            let mut raw = head.replace('\n', "\r\n").into_bytes();
            raw.extend_from_slice(b"\r\n\r\n");
            raw.extend_from_slice(body.as_bytes());
            ua.send_raw(&raw);
            let ok = ua.final_response(Duration::from_secs(5)).expect("200");
            assert_eq!(ok.status, 200);
            assert_eq!(
                ok.headers.get(&HeaderName::SessionExpires),
                Some(format!("90;refresher={refresher}").as_str())
            );
            let sd = callgate::media::sdp::SessionDescription::parse(&ok.body).expect("sdp");
            let to = std::net::SocketAddr::new(sd.connection.expect("c="), sd.media[0].port);
            // Keep RTP flowing so only the session timer can end the call.
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut tx = rtp.sender();
            let s2 = stop.clone();
            std::thread::spawn(move || {
                while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                    tx.send_silence(to, 1);
                }
            });
            let call = common::ua::UaCall {
                call_id: cid,
                from: format!(
                    "\"Test Caller\" <sip:+12015550100@{}>;tag=stf",
                    ua.local_hostport()
                ),
                to: ok
                    .headers
                    .get(&HeaderName::To)
                    .unwrap_or_default()
                    .to_string(),
                cseq: 1,
                remote_target: String::new(),
                answer: ok.clone(),
            };
            let mut call = call;
            call.remote_target = ok
                .headers
                .get(&HeaderName::Contact)
                .map(|c| {
                    c.trim_start_matches('<')
                        .split('>')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .unwrap_or_default();
            ua.ack(&call);
            let t0 = Instant::now();
            let got = ua.recv_request(Duration::from_secs(75));
            let at = t0.elapsed();
            let mut acked = None;
            if let Some(r) = &got {
                let mut ok = callgate::sip::message::Response::to_request(r, 200, None);
                if r.method == Method::Invite {
                    ok = ok.with_body("application/sdp", bytes::Bytes::from(sdp.clone()));
                }
                ua.send_raw(&ok.encode());
                if r.method == Method::Invite {
                    acked = ua.recv_request(Duration::from_secs(5)).map(|a| a.method);
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            (got, at, acked)
        })
    };
    let refresh = run("uas", "INVITE, ACK, BYE, UPDATE, OPTIONS");
    let reinvite = run("uas", "INVITE, ACK, BYE, OPTIONS");
    let expire = run("uac", "INVITE, ACK, BYE, UPDATE, OPTIONS");
    let (got, at, _) = refresh.join().expect("refresh");
    let update = got.expect("callgate refreshes the session");
    assert_eq!(update.method, Method::Update, "{update}");
    assert!(
        update
            .headers
            .get(&HeaderName::SessionExpires)
            .is_some_and(|v| v.starts_with("90;refresher=uac")),
        "{update}"
    );
    assert!(
        at < Duration::from_secs(60),
        "refreshed at half the interval: {at:?}"
    );
    let (got, _, acked) = reinvite.join().expect("re-INVITE refresh");
    let invite = got.expect("callgate refreshes with a re-INVITE");
    assert_eq!(invite.method, Method::Invite, "{invite}");
    assert!(!invite.body.is_empty(), "with callgate's SDP: {invite}");
    assert_eq!(acked, Some(Method::Ack), "the refresh's 200 is ACKed");
    let (got, at, _) = expire.join().expect("expire");
    let bye = got.expect("callgate ends an unrefreshed session");
    assert_eq!(bye.method, Method::Bye, "{bye}");
    assert!(
        at >= Duration::from_secs(55),
        "not before the interval ran out: {at:?}"
    );
    assert!(
        gw.logs().contains("did not refresh the session"),
        "{}",
        gw.logs()
    );
}
