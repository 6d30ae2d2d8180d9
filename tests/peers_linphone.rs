//! linphonec, a real softphone, against the real callgate: it registers as
//! an agent, calls the test number and keys digits by RFC 4733.

mod common;

use common::capture::{self, Capture};
use common::linphone::{self, Linphonec};
use common::{Gateway, repo_root, wire};
use std::time::Duration;

fn gateway() -> Gateway {
    Gateway::start(&format!(
        "[prompts]\ndir = \"{}\"\n\n[[test_numbers]]\nnumber = \"7000\"\nprompt = \"test_tone_sweep\"\n",
        repo_root().join("prompts").display()
    ))
}

/// linphone picks MD5 out of several challenges, so the shipped digest
/// setting (MD5 and SHA-256) is kept here.
#[test]
fn linphonec_registers_as_alice_calls_7000_and_its_rfc4733_digits_are_heard() {
    if !linphone::available() || !capture::available() {
        return;
    }
    let gw = gateway();
    let mut phone = Linphonec::start(linphone::Options::default());
    phone
        .register(
            &format!("sip:alice@{}", gw.udp),
            &format!("sip:{};transport=udp", gw.udp),
            "alice-secret",
        )
        .expect("linphonec registers");
    assert!(
        gw.wait_for_log(
            &[
                "binding added",
                "agent=alice",
                &format!(":{}", phone.sip.port())
            ],
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );

    let dump = gw.dir.path().join("dtmf.pcap");
    let cap = Capture::start_filter(&dump, &format!("udp and src port {}", phone.rtp_port));
    phone
        .call(&format!("sip:7000@{}", gw.udp))
        .expect("7000 answers");
    assert!(
        gw.wait_for_log(&["incoming call", "dialled=7000"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    phone.send_digits("95#");
    // linphonec sends one digit a second.
    let heard = gw.wait_for_log(&["digits so far", "digits=95#"], Duration::from_secs(15));
    let pcap = cap.stop_raw();
    assert!(heard, "callgate heard: {}", gw.logs());
    phone.terminate().expect("terminate");
    assert!(gw.wait_for_log(&["call ended", "remote hung up"], Duration::from_secs(5)));

    // On the wire: RFC 4733 events from linphonec's RTP port, at the one
    // telephone-event payload type it negotiated.
    let events: Vec<(u8, char)> = wire::rfc4733_events(&pcap, phone.rtp_port)
        .into_iter()
        .filter_map(|(pt, ev)| Some((pt, wire::event_digit(ev)?)))
        .collect();
    eprintln!("RFC 4733 events on the wire (PT, digit): {events:?}");
    let digits: String = events.iter().map(|(_, d)| d).collect();
    assert_eq!(digits, "95#", "events on the wire: {events:?}");
    assert!(
        events.windows(2).all(|w| w[0].0 == w[1].0) && !matches!(events[0].0, 0 | 8),
        "{events:?}"
    );
    assert!(
        !gw.logs().contains("SIP INFO"),
        "digits must come by RFC 4733"
    );

    phone.send("unregister");
    assert!(
        gw.wait_for_log(&["binding removed", "agent=alice"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}
