//! linphonec, a real softphone, against the real callgate: it registers as
//! an agent, calls the test number and keys digits by RFC 4733.

mod common;

use common::capture::{self, Capture};
use common::linphone::{self, Linphonec};
use common::rtp::read_wav;
use common::{Gateway, repo_root, wire};
use std::time::Duration;

fn gateway() -> Gateway {
    Gateway::start(&format!(
        "[prompts]\ndir = \"{}\"\n\n[[test_numbers]]\nnumber = \"7000\"\nprompt = \"test_tone_sweep\"\n\n\
         [[agents]]\nuser = \"carol\"\nsecret = \"carol-secret\"\ndigest_algorithms = [\"SHA-256\"]\n",
        repo_root().join("prompts").display()
    ))
}

/// Which phones need which digest (README): linphone 5.1 answers an
/// agent's SHA-256-only challenge (`agents[].digest_algorithms`).
#[test]
fn linphonec_registers_with_sha256_only() {
    if !linphone::available() {
        return;
    }
    let gw = gateway();
    let mut phone = Linphonec::start(linphone::Options::default());
    phone
        .register(
            &format!("sip:carol@{}", gw.udp),
            &format!("sip:{};transport=udp", gw.udp),
            "carol-secret",
        )
        .expect("linphonec registers with SHA-256");
    assert!(
        gw.wait_for_log(&["binding added", "agent=carol"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

/// With the shipped digest setting (one MD5 challenge).
#[test]
fn linphonec_registers_as_alice_calls_7000_and_its_rfc4733_digits_are_heard() {
    if !linphone::available() || !capture::available() {
        return;
    }
    let gw = gateway();
    let mut phone = Linphonec::start(linphone::Options {
        record: true,
        ..Default::default()
    });
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
    // Keys only after the 3 s prompt: linphonec plays each key's tone
    // into what it records.
    std::thread::sleep(Duration::from_millis(3500));
    phone.send_digits("95#");
    // linphonec sends one digit a second.
    let heard = gw.wait_for_log(&["digits so far", "digits=95#"], Duration::from_secs(15));
    let pcap = cap.stop_raw();
    assert!(heard, "callgate heard: {}", gw.logs());
    phone.terminate().expect("terminate");
    // linphonec recorded what it heard: the test number's prompt. Its
    // jitter buffer shifts the audio by a few ms now and then, so the
    // prompt is looked for in 50 ms pieces.
    let heard = phone.heard();
    let prompt = read_wav(&repo_root().join("prompts/test_tone_sweep.wav"));
    let found = pieces_found(&heard, &prompt);
    eprintln!(
        "linphonec heard {} samples; {found:.2} of the prompt's 50 ms pieces found",
        heard.len()
    );
    assert!(found > 0.9, "linphonec heard the prompt: {found:.2} of it");
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

/// The share of the prompt's 50 ms pieces that appear in `heard` (a
/// normalised cross-correlation above 0.9 within ±250 ms of where the
/// previous piece was found).
fn pieces_found(heard: &[i16], prompt: &[i16]) -> f64 {
    const PIECE: usize = 400;
    const SLACK: i64 = 2000;
    let ncc = |a: &[i16], b: &[i16]| {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let ea: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        let eb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum();
        dot / (ea * eb).sqrt().max(1.0)
    };
    let mut lag: Option<i64> = None;
    let (mut found, mut total) = (0, 0);
    for start in (0..prompt.len().saturating_sub(PIECE)).step_by(PIECE) {
        let piece = &prompt[start..start + PIECE];
        if piece.iter().all(|s| s.unsigned_abs() < 300) {
            continue; // silence matches anything
        }
        total += 1;
        let centre = start as i64 + lag.unwrap_or(0);
        let span = if lag.is_some() { SLACK } else { 4 * SLACK };
        let best = (centre - span..=centre + span)
            .filter(|&at| at >= 0 && at as usize + PIECE <= heard.len())
            .map(|at| (ncc(&heard[at as usize..at as usize + PIECE], piece), at))
            .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
        if best.0 > 0.9 {
            found += 1;
            lag = Some(best.1 - start as i64);
        }
    }
    if total == 0 {
        0.0
    } else {
        f64::from(found) / f64::from(total)
    }
}

/// The shipped example flow with a real phone (the SPEC's example): with
/// the shipped config verbatim, linphonec calls 1000, presses 1 for a
/// callback, keys 2015550123# and confirms with 1, all by RFC 4733; the
/// callback is stored for +12015550123 in the callbacks queue.
#[test]
fn linphonec_keys_a_callback_number_through_the_shipped_flow() {
    if !linphone::available() {
        return;
    }
    let gw = Gateway::start_shipped();
    let tone = gw.dir.path().join("tone.wav");
    linphone::tone_wav(&tone);
    let mut phone = Linphonec::start(linphone::Options {
        play_wav: Some(tone),
        ..Default::default()
    });
    phone
        .call(&format!("sip:1000@{}", gw.udp))
        .expect("1000 answers");
    let wait_block = |block: &str, secs: u64| {
        assert!(
            gw.wait_for_log(
                &["block", &format!("block={block}")],
                Duration::from_secs(secs)
            ),
            "never reached {block}:\n{}",
            gw.logs()
        );
    };
    wait_block("offer", 10);
    phone.send_digits("1");
    wait_block("ask_number", 10);
    phone.send_digits("2015550123#");
    wait_block("read_back", 20);
    phone.send_digits("1");
    assert!(
        gw.wait_for_log(&["callback created"], Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    let stored = common::centre::eventually(Duration::from_secs(5), || {
        common::centre::callbacks(&gw)
            .iter()
            .any(|c| c.0 == "+12015550123" && c.8 == "callbacks" && c.1 == "scheduled")
    });
    assert!(stored, "{:?}", common::centre::callbacks(&gw));
    // Keys came as RFC 4733 events, not SIP INFO.
    assert!(!gw.logs().contains("SIP INFO"));
    let _ = phone.expect(" ended", Duration::from_secs(15));
}
