//! Calls to a test number over real SIP and RTP: the prompt arrives intact
//! and paced, DTMF in every form is heard once per press, hold and
//! hang-up work both ways.

mod common;

use callgate::media::g711::Law;
use callgate::sip::message::{HeaderName, MessageExt, Method};
use common::rtp::{RtpPeer, best_correlation, decode, read_wav};
use common::ua::Ua;
use common::{Gateway, repo_root};
use std::time::Duration;

const TEST_NUMBERS: &str = r#"
[[test_numbers]]
number = "7000"
prompt = "test_tone_sweep"

[[test_numbers]]
number = "7001"
prompt = "goodbye"
hangup_after_prompt = true
"#;

fn gateway() -> Gateway {
    Gateway::start(&format!(
        "[prompts]\ndir = \"{}\"\n{TEST_NUMBERS}",
        repo_root().join("prompts").display()
    ))
}

fn rtp_target(answer_body: &[u8]) -> std::net::SocketAddr {
    let sd = callgate::media::sdp::SessionDescription::parse(answer_body).expect("SDP answer");
    let m = &sd.media[0];
    std::net::SocketAddr::new(m.connection.or(sd.connection).expect("c="), m.port)
}

fn digits_in_log(gw: &Gateway) -> String {
    gw.logs()
        .lines()
        .filter(|l| l.contains("dtmf received"))
        .filter_map(|l| l.split("digit=").nth(1).and_then(|d| d.chars().next()))
        .collect()
}

#[test]
fn prompt_arrives_intact_over_pcmu_and_pcma() {
    let gw = gateway();
    let reference = read_wav(&repo_root().join("prompts/test_tone_sweep.wav"));
    for (pt, name, law) in [(0u8, "PCMU", Law::Ulaw), (8, "PCMA", Law::Alaw)] {
        let mut ua = Ua::udp(gw.udp);
        let rtp = RtpPeer::new();
        let mut call = ua
            .call("7000", &rtp.offer(&[(pt, name), (101, "telephone-event")]))
            .expect("answered");
        assert_eq!(call.answer.status, 200);
        assert_eq!(
            call.answer.content_type().as_deref(),
            Some("application/sdp")
        );
        let pkts = rtp.receive(Duration::from_millis(3800));
        assert!(pkts.len() > 150, "{name}: only {} packets", pkts.len());
        assert!(pkts.iter().all(|p| p.pt == pt), "{name}: payload type");
        assert!(pkts[0].marker, "first packet marked");
        for w in pkts.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "{name}: seq");
            assert_eq!(w[1].ts, w[0].ts.wrapping_add(160), "{name}: ts");
            assert_eq!(w[1].ssrc, w[0].ssrc);
        }
        let span = pkts.last().unwrap().at - pkts[0].at;
        let per = span.as_secs_f64() / (pkts.len() - 1) as f64;
        assert!((0.018..0.022).contains(&per), "{name}: {per} s per packet");
        let audio = decode(&pkts, pt, law);
        let (corr, _) = best_correlation(&audio, &reference);
        assert!(
            corr > 0.98,
            "{name}: correlation with the prompt WAV {corr}"
        );
        assert_eq!(
            ua.in_dialog(&mut call, "BYE", None).map(|r| r.status),
            Some(200)
        );
    }
    assert!(gw.wait_for_log(&["call ended", "remote hung up"], Duration::from_secs(3)));
}

#[test]
fn rfc4733_at_payload_type_96_with_loss_and_reordering() {
    let gw = gateway();
    let mut ua = Ua::udp(gw.udp);
    let mut rtp = RtpPeer::new();
    let call = ua
        .call("7000", &rtp.offer(&[(0, "PCMU"), (96, "telephone-event")]))
        .expect("answered");
    let body = String::from_utf8_lossy(&call.answer.body).to_string();
    assert!(body.contains("a=rtpmap:96 telephone-event/8000"), "{body}");
    let to = rtp_target(&call.answer.body);
    rtp.send_silence(to, 5);
    // 5551234#: the second 5 loses its first packet, the 3 is reordered.
    for (i, ev) in [5u8, 5, 5, 1, 2, 3, 4, 11].iter().enumerate() {
        rtp.press(to, 96, *ev, i == 1, i == 5);
        rtp.send_silence(to, 5);
    }
    // A press at a payload type that was not negotiated is ignored.
    rtp.press(to, 101, 9, false, false);
    rtp.send_silence(to, 10);
    assert!(
        gw.wait_for_log(
            &["digits so far", "digits=5551234#"],
            Duration::from_secs(3)
        ),
        "heard {:?}",
        digits_in_log(&gw)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(digits_in_log(&gw), "5551234#");
}

/// Packets that panicked the `rtp` crate's parser, sent from the latched
/// source in the middle of a call: the leg keeps receiving (the digits
/// after them are heard) and keeps sending.
#[test]
fn hostile_rtp_from_the_latched_source_does_not_kill_the_leg() {
    let gw = gateway();
    let mut ua = Ua::udp(gw.udp);
    let mut rtp = RtpPeer::new();
    let call = ua
        .call("7000", &rtp.offer(&[(0, "PCMU"), (101, "telephone-event")]))
        .expect("answered");
    let to = rtp_target(&call.answer.body);
    rtp.send_silence(to, 5);
    rtp.press(to, 101, 4, false, false);
    let hostile: [&[u8]; 4] = [
        &[
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0,
        ],
        &[
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x10, 0, 0, 1, 1, 0xC8, 0, 0,
        ],
        &[0x9F, 0x65, 0, 1, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78],
        &[0xA0, 0x65, 0, 1, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0xFF],
    ];
    for pkt in hostile {
        rtp.send_raw(to, pkt);
    }
    rtp.send_silence(to, 5);
    rtp.press(to, 101, 2, false, false);
    rtp.send_silence(to, 10);
    assert!(
        gw.wait_for_log(&["digits so far", "digits=42"], Duration::from_secs(3)),
        "heard {:?}",
        digits_in_log(&gw)
    );
    let late = rtp.receive(Duration::from_millis(500));
    assert!(late.len() > 15, "still sending: {} packets", late.len());
    assert!(!gw.logs().contains("panicked"), "{}", gw.logs());
}

#[test]
fn sip_info_dtmf_is_heard_too() {
    let gw = gateway();
    let mut ua = Ua::udp(gw.udp);
    let rtp = RtpPeer::new();
    let mut call = ua
        .call("7000", &rtp.offer(&[(0, "PCMU")]))
        .expect("answered");
    call.cseq += 1;
    let info = format!(
        "INFO {rt} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKinfo1\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} INFO\r\nMax-Forwards: 70\r\nContent-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=7\r\nDuration=160\r\n",
        rt = call.remote_target,
        local = ua.local_hostport(),
        from = call.from,
        to = call.to,
        cid = call.call_id,
        cseq = call.cseq
    );
    ua.send_raw(info.as_bytes());
    assert_eq!(
        ua.final_response(Duration::from_secs(3)).map(|r| r.status),
        Some(200)
    );
    assert!(gw.wait_for_log(
        &["dtmf received (SIP INFO)", "digit=7"],
        Duration::from_secs(3)
    ));
}

#[test]
fn hold_and_unhold_reinvite_get_mirrored_answers() {
    let gw = gateway();
    let mut ua = Ua::udp(gw.udp);
    let rtp = RtpPeer::new();
    let offer = rtp.offer(&[(0, "PCMU"), (101, "telephone-event")]);
    let mut call = ua.call("7000", &offer).expect("answered");
    assert!(
        rtp.receive(Duration::from_millis(300)).len() > 5,
        "audio before hold"
    );
    let hold = offer
        .replace("a=sendrecv", "a=sendonly")
        .replace("o=test 1 1", "o=test 1 2");
    let r = ua
        .in_dialog(&mut call, "INVITE", Some(&hold))
        .expect("answer to hold");
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("a=recvonly"));
    ua.ack(&call);
    std::thread::sleep(Duration::from_millis(100));
    let _ = rtp.receive(Duration::from_millis(50));
    assert!(
        rtp.receive(Duration::from_millis(400)).is_empty(),
        "gateway still sends while held"
    );
    let unhold = offer.replace("o=test 1 1", "o=test 1 3");
    let r = ua
        .in_dialog(&mut call, "INVITE", Some(&unhold))
        .expect("answer to unhold");
    assert!(String::from_utf8_lossy(&r.body).contains("a=sendrecv"));
    ua.ack(&call);
    let resumed = rtp.receive(Duration::from_millis(400));
    assert!(resumed.len() > 10, "audio resumes after unhold");
    assert!(
        resumed[0].marker,
        "marker on the first packet after the pause"
    );
    // A re-INVITE with no codec in common is refused and the call goes on.
    let bad = offer
        .replace("RTP/AVP 0 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000\r\n", "");
    assert_eq!(
        ua.in_dialog(&mut call, "INVITE", Some(&bad))
            .map(|r| r.status),
        Some(488)
    );
    assert_eq!(
        ua.in_dialog(&mut call, "BYE", None).map(|r| r.status),
        Some(200)
    );
}

#[test]
fn gateway_hangs_up_with_bye_and_no_codec_gets_488() {
    let gw = gateway();
    let mut ua = Ua::udp(gw.udp);
    let rtp = RtpPeer::new();
    let call = ua
        .call("7001", &rtp.offer(&[(8, "PCMA")]))
        .expect("answered");
    let bye = ua
        .recv_request(Duration::from_secs(5))
        .expect("BYE from the gateway");
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.call_id(), Some(call.call_id.as_str()));
    ua.respond_to(&bye, 200);
    assert!(gw.wait_for_log(&["call ended", "gateway hung up"], Duration::from_secs(3)));

    let mut ua = Ua::udp(gw.udp);
    let r = ua
        .call("7000", &rtp.offer(&[(18, "G729"), (9, "G722")]))
        .unwrap_err()
        .expect("a response");
    assert_eq!(r.status, 488);
    assert!(r.header(&HeaderName::Warning).is_some());
    let r = ua
        .call("9999", &rtp.offer(&[(0, "PCMU")]))
        .unwrap_err()
        .expect("a response");
    assert_eq!(r.status, 404);
}

#[test]
fn silent_caller_is_hung_up_after_the_rtp_timeout() {
    let gw = Gateway::start_patched(
        "[rtp]\n",
        "[rtp]\ntimeout_s = 1\n",
        &format!(
            "[prompts]\ndir = \"{}\"\n{TEST_NUMBERS}",
            repo_root().join("prompts").display()
        ),
    );
    let mut ua = Ua::udp(gw.udp);
    let rtp = RtpPeer::new();
    let _call = ua
        .call("7000", &rtp.offer(&[(0, "PCMU")]))
        .expect("answered");
    let bye = ua
        .recv_request(Duration::from_secs(5))
        .expect("BYE after the RTP timeout");
    assert_eq!(bye.method, Method::Bye);
    ua.respond_to(&bye, 200);
    assert!(
        gw.wait_for_log(&["call ended", "RTP timeout"], Duration::from_secs(3)),
        "{}",
        gw.logs()
    );
}

/// Comfort noise (not negotiated, so ignored) keeps arriving but no audio
/// does: the call is still timed out, stray packets don't keep it alive.
#[test]
fn ignored_packets_do_not_hold_off_the_rtp_timeout() {
    let gw = Gateway::start_patched(
        "[rtp]\n",
        "[rtp]\ntimeout_s = 1\n",
        &format!(
            "[prompts]\ndir = \"{}\"\n{TEST_NUMBERS}",
            repo_root().join("prompts").display()
        ),
    );
    let mut ua = Ua::udp(gw.udp);
    let rtp = RtpPeer::new();
    let call = ua
        .call("7000", &rtp.offer(&[(0, "PCMU")]))
        .expect("answered");
    let to = rtp_target(&call.answer.body);
    let mut noise = rtp.sender();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let sender = std::thread::spawn(move || {
        let mut ts = 0u32;
        for _ in 0..250 {
            if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            noise.send(to, false, 13, ts, &[40]);
            ts = ts.wrapping_add(160);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let bye = ua.recv_request(Duration::from_secs(4));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sender.join();
    let bye = bye.expect("BYE after the RTP timeout despite comfort noise");
    assert_eq!(bye.method, Method::Bye);
    ua.respond_to(&bye, 200);
    assert!(gw.wait_for_log(&["call ended", "RTP timeout"], Duration::from_secs(3)));
}

#[test]
fn over_capacity_gets_503_with_retry_after() {
    let gw = Gateway::start_patched(
        "[sip]\n",
        "[sip]\nmax_calls = 1\n",
        &format!(
            "[prompts]\ndir = \"{}\"\n{TEST_NUMBERS}",
            repo_root().join("prompts").display()
        ),
    );
    let mut ua = Ua::udp(gw.udp);
    let rtp = RtpPeer::new();
    let mut call = ua
        .call("7000", &rtp.offer(&[(0, "PCMU")]))
        .expect("first call answered");
    let mut ua2 = Ua::udp(gw.udp);
    let r = ua2
        .call("7000", &rtp.offer(&[(0, "PCMU")]))
        .unwrap_err()
        .expect("a response");
    assert_eq!(r.status, 503);
    assert!(r.header(&HeaderName::RetryAfter).is_some());
    assert_eq!(
        ua.in_dialog(&mut call, "BYE", None).map(|r| r.status),
        Some(200)
    );
    // Capacity comes back.
    std::thread::sleep(Duration::from_millis(1500));
    let mut ua3 = Ua::udp(gw.udp);
    assert!(ua3.call("7000", &rtp.offer(&[(0, "PCMU")])).is_ok());
}
