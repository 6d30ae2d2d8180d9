//! SIPp callers against a test number: the audio SIPp receives (captured
//! on the wire) is the prompt, and the DTMF it sends, both as the Debian
//! pcaps (payload type 101, replayed SSRC and sequence numbers, repeated
//! digits byte-identical) and as SIPp's own events at payload type 96, is
//! heard once per key press, in order.

mod common;

use callgate::media::g711::Law;
use callgate::media::rtp_packet;
use common::rtp::{best_correlation, read_wav};
use common::{Gateway, capture, repo_root, sipp};
use std::time::Duration;

fn gateway() -> Gateway {
    Gateway::start(&format!(
        "[prompts]\ndir = \"{}\"\n[[test_numbers]]\nnumber = \"7000\"\nprompt = \"test_tone_sweep\"\n",
        repo_root().join("prompts").display()
    ))
}

fn digits_in_log(gw: &Gateway) -> String {
    gw.logs()
        .lines()
        .filter(|l| l.contains("dtmf received"))
        .filter_map(|l| l.split("digit=").nth(1).and_then(|d| d.chars().next()))
        .collect()
}

#[test]
fn sipp_hears_the_prompt_and_its_pcap_dtmf_is_heard_once_per_press() {
    if !sipp::available_with_pcap() || !capture::available() {
        return;
    }
    let gw = gateway();
    let media_port = common::even_udp_port();
    let pcap = gw.dir.path().join("sipp-rx.pcap");
    let cap = capture::Capture::start(&pcap, media_port);
    let run = sipp::run(
        "caller_dtmf.xml",
        gw.udp,
        &[
            "-s",
            "7000",
            "-m",
            "1",
            "-mp",
            &media_port.to_string(),
            "-recv_timeout",
            "10000",
            "-set",
            "before",
            "3600",
            "-set",
            "gap",
            "300",
            "-set",
            "after",
            "800",
        ],
    );
    let payloads = cap.stop();
    assert!(run.ok(), "sipp failed: {}\n{}", run.errors, run.stdout);

    // The gateway's RTP as SIPp received it.
    let mut pkts: Vec<_> = payloads
        .iter()
        .filter_map(|p| rtp_packet::parse(p).map(|r| (r.seq, r.payload_type, r.payload.to_vec())))
        .collect();
    assert!(pkts.len() > 150, "SIPp received {} RTP packets", pkts.len());
    assert!(pkts.iter().all(|p| p.1 == 0), "PCMU, as offered first");
    pkts.sort_by_key(|p| p.0);
    let audio: Vec<i16> = pkts
        .iter()
        .flat_map(|p| p.2.iter().map(|&c| Law::Ulaw.decode(c)))
        .collect();
    let reference = read_wav(&repo_root().join("prompts/test_tone_sweep.wav"));
    let (corr, _) = best_correlation(&audio, &reference);
    assert!(corr > 0.98, "decoded RTP vs prompt WAV: correlation {corr}");

    assert!(
        gw.wait_for_log(&["digits so far", "digits=5551234"], Duration::from_secs(5)),
        "heard {:?}",
        digits_in_log(&gw)
    );
    assert_eq!(digits_in_log(&gw), "5551234");
}

#[test]
fn sipp_dtmf_at_payload_type_96_is_heard() {
    if !sipp::available_with_pcap() {
        return;
    }
    let gw = gateway();
    let media_port = common::even_udp_port();
    let run = sipp::run(
        "caller_dtmf96.xml",
        gw.udp,
        &[
            "-s",
            "7000",
            "-m",
            "1",
            "-mp",
            &media_port.to_string(),
            "-recv_timeout",
            "10000",
            "-set",
            "before",
            "500",
            "-set",
            "after",
            "500",
        ],
    );
    assert!(run.ok(), "sipp failed: {}\n{}", run.errors, run.stdout);
    assert!(
        gw.wait_for_log(&["digits so far", "digits=5551234"], Duration::from_secs(5)),
        "heard {:?}",
        digits_in_log(&gw)
    );
    assert_eq!(digits_in_log(&gw), "5551234");
}
