//! Torture and fuzz messages from `tests/corpus` sent to the real
//! binary. Each RFC 4475 / RFC 5118 message must get the handling its
//! README names; every PROTOS case must leave the gateway alive and
//! answering.

mod common;

use callgate::sip::message::{MessageExt, SipMessage, parse_datagram};
use common::ua::Ua;
use common::{Gateway, corpus_dir};
use std::time::Duration;

/// Final status expected for each message over UDP (`None`: no answer is
/// possible or wanted: responses, or requests whose top Via is unusable).
/// Where the RFC allows a choice, the comment says which we made.
const EXPECTED: &[(&str, Option<u16>)] = &[
    ("rfc4475/badaspec.dat", Some(400)), // spaces inside <>: 400 is "reasonable"
    ("rfc4475/badbranch.dat", Some(200)), // branch=z9hG4bK alone: RFC 2543 matching
    ("rfc4475/baddate.dat", Some(404)),  // Date irrelevant to us; no flow for the number
    ("rfc4475/baddn.dat", Some(400)),
    ("rfc4475/badinv01.dat", Some(400)),
    ("rfc4475/badvers.dat", Some(505)),
    ("rfc4475/bcast.dat", None), // a response: discarded
    ("rfc4475/bext01.dat", Some(420)),
    ("rfc4475/bigcode.dat", None),
    ("rfc4475/clerr.dat", Some(400)),
    ("rfc4475/cparam01.dat", Some(401)), // REGISTER needs auth (contact forms: tests/registrar.rs)
    ("rfc4475/cparam02.dat", Some(401)),
    ("rfc4475/dblreq.dat", Some(401)), // the REGISTER; trailing INVITE ignored
    ("rfc4475/esc01.dat", Some(404)),
    ("rfc4475/esc02.dat", Some(501)),
    ("rfc4475/escnull.dat", Some(401)),
    ("rfc4475/escruri.dat", Some(400)),
    ("rfc4475/insuf.dat", Some(400)),
    ("rfc4475/intmeth.dat", Some(501)),
    ("rfc4475/inv2543.dat", Some(404)), // accepted: RFC 2543 compatibility
    ("rfc4475/invut.dat", Some(415)),
    ("rfc4475/longreq.dat", Some(404)),
    ("rfc4475/ltgtruri.dat", Some(400)),
    ("rfc4475/lwsdisp.dat", Some(200)),
    ("rfc4475/lwsruri.dat", Some(400)),
    ("rfc4475/lwsstart.dat", Some(400)), // strict Request-Line
    ("rfc4475/mcl01.dat", Some(400)),
    ("rfc4475/mismatch01.dat", Some(400)),
    ("rfc4475/mismatch02.dat", Some(501)),
    ("rfc4475/mpart01.dat", Some(405)), // MESSAGE is not something we do
    ("rfc4475/multi01.dat", Some(400)),
    ("rfc4475/ncl.dat", Some(400)),
    ("rfc4475/noreason.dat", None),
    ("rfc4475/novelsc.dat", Some(416)),
    ("rfc4475/quotbal.dat", Some(400)),
    ("rfc4475/regaut01.dat", Some(401)), // challenged with a scheme we know
    ("rfc4475/regbadct.dat", Some(400)),
    ("rfc4475/regescrt.dat", Some(401)),
    ("rfc4475/scalar02.dat", Some(400)),
    ("rfc4475/scalarlg.dat", None),
    ("rfc4475/sdp01.dat", Some(406)),
    ("rfc4475/semiuri.dat", Some(200)),
    ("rfc4475/transports.dat", Some(200)),
    ("rfc4475/trws.dat", Some(400)), // strict Request-Line
    ("rfc4475/unkscm.dat", Some(416)),
    ("rfc4475/unksm2.dat", Some(400)),
    ("rfc4475/unreason.dat", None),
    ("rfc4475/wsinv.dat", Some(481)), // well formed; its To tag makes it a re-INVITE for no dialog (§12.2.2)
    ("rfc4475/zeromf.dat", Some(200)), // OPTIONS with Max-Forwards 0: answered (RFC 3261 §16.3)
    ("rfc5118/ipv4-mapped-ipv6", Some(404)),
    ("rfc5118/ipv6-bad", Some(400)),
    ("rfc5118/ipv6-bug-abnf-3-colons", Some(400)), // we follow ersip: invalid address
    ("rfc5118/ipv6-correct-abnf-2-colons", Some(200)),
    ("rfc5118/ipv6-good", Some(401)),
    ("rfc5118/ipv6-in-sdp", Some(404)),
    ("rfc5118/mult-ip-in-header", Some(481)),
    ("rfc5118/mult-ip-in-sdp", Some(404)),
    ("rfc5118/port-ambiguous", Some(401)),
    ("rfc5118/port-unambiguous", Some(401)),
    ("rfc5118/via-received-param-no-delim", Some(200)),
    ("rfc5118/via-received-param-with-delim", Some(481)),
];

/// Responses go to the top Via's port at the source address (RFC 3261
/// §18.2.2), so the test UA listens on that port of a loopback address of
/// its own.
fn via_port(data: &[u8]) -> u16 {
    let req = match parse_datagram(data) {
        Ok(SipMessage::Request(r)) => r,
        _ => return 5060,
    };
    match req.top_via() {
        Ok(v) if v.params.has("rport") => 0,
        Ok(v) => v.port.unwrap_or(5060),
        Err(_) => 0,
    }
}

#[test]
fn every_rfc4475_and_rfc5118_message_gets_its_expected_handling() {
    let mut failures = Vec::new();
    let mut listed = 0;
    for dir in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(corpus_dir().join(dir)).expect("corpus") {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with(".sha256") || name.ends_with(".txt") {
                continue;
            }
            let key = format!("{dir}/{name}");
            assert!(
                EXPECTED.iter().any(|(k, _)| *k == key),
                "no expectation for {key}"
            );
            listed += 1;
        }
    }
    assert_eq!(listed, EXPECTED.len());
    for (i, (file, expected)) in EXPECTED.iter().enumerate() {
        let data = std::fs::read(corpus_dir().join(file)).expect("read corpus file");
        let port = via_port(&data);
        // A gateway per message: several corpus messages share a branch and
        // sent-by, which makes them retransmissions of one another for any
        // correct transaction layer (RFC 3261 §17.2.3).
        let gw = Gateway::start("");
        // One loopback address per message, so that retransmissions of an
        // earlier final response (waiting for an ACK) can't be mistaken for
        // the answer to this one.
        let mut ua = Ua::udp_from(&format!("127.0.3.{}:{port}", i + 1), gw.udp);
        ua.send_raw(&data);
        let wait = if expected.is_some() {
            Duration::from_secs(3)
        } else {
            Duration::from_millis(400)
        };
        let got = ua.final_response(wait).map(|r| r.status);
        if got != *expected {
            failures.push(format!("{file}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_gateway_survives_the_whole_rfc_corpus() {
    let mut gw = Gateway::start("");
    for (i, (file, _)) in EXPECTED.iter().enumerate() {
        let data = std::fs::read(corpus_dir().join(file)).expect("read corpus file");
        let mut ua = Ua::udp_from(&format!("127.0.4.{}:0", i + 1), gw.udp);
        ua.send_raw(&data);
        let mut tcp = Ua::tcp(gw.tcp);
        tcp.try_send_raw(&data);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(gw.is_running());
    let mut ua = Ua::udp(gw.udp);
    let opts = ua.options("");
    assert_eq!(ua.request(&opts).map(|r| r.status), Some(200));
}

#[test]
fn broken_framing_over_tcp_closes_the_connection() {
    let gw = Gateway::start("");
    for file in ["rfc4475/ncl.dat", "rfc4475/mcl01.dat"] {
        let data = std::fs::read(corpus_dir().join(file)).unwrap();
        let mut ua = Ua::tcp(gw.tcp);
        ua.send_raw(&data);
        assert!(
            ua.tcp_closed(Duration::from_secs(3)),
            "{file}: connection left open"
        );
    }
    // A valid message in pieces, then two in one segment, then a keep-alive.
    let mut ua = Ua::tcp(gw.tcp);
    let opts = ua.options("").replace('\n', "\r\n");
    let (a, b) = opts.split_at(opts.len() / 2);
    ua.send_raw(a.as_bytes());
    std::thread::sleep(Duration::from_millis(100));
    ua.send_raw(b.as_bytes());
    assert_eq!(
        ua.final_response(Duration::from_secs(3)).map(|r| r.status),
        Some(200)
    );
    let two = format!(
        "{}{}",
        ua.options("").replace('\n', "\r\n"),
        ua.options("").replace('\n', "\r\n")
    );
    ua.send_raw(two.as_bytes());
    assert_eq!(
        ua.final_response(Duration::from_secs(3)).map(|r| r.status),
        Some(200)
    );
    assert_eq!(
        ua.final_response(Duration::from_secs(3)).map(|r| r.status),
        Some(200)
    );
    ua.send_raw(b"\r\n\r\n");
    let pong = ua.recv_raw_bytes(Duration::from_secs(2));
    assert_eq!(
        pong.as_deref(),
        Some(&b"\r\n"[..]),
        "CRLFCRLF ping gets a CRLF pong (RFC 5626)"
    );
}

/// PROTOS c07-sip test cases are `<len> <INVITE template><len> <teardown>`
/// with placeholders the original Java driver filled in.
fn protos_messages(raw: &[u8], port: u16, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            break;
        };
        let start = sp + 1;
        let end = (start + len).min(rest.len());
        out.push(rest[start..end].to_vec());
        rest = &rest[end..];
    }
    out.into_iter()
        .map(|t| {
            let subst = |s: Vec<u8>, from: &str, to: &str| -> Vec<u8> {
                let f = from.as_bytes();
                let mut o = Vec::with_capacity(s.len());
                let mut i = 0;
                while i < s.len() {
                    if s[i..].starts_with(f) {
                        o.extend_from_slice(to.as_bytes());
                        i += f.len();
                    } else {
                        o.push(s[i]);
                        i += 1;
                    }
                }
                o
            };
            let mut m = t;
            for (k, v) in [
                ("<To>", "200@127.0.0.1".to_string()),
                ("<From>", "protos@127.0.0.4".to_string()),
                ("<From-Address>", "127.0.0.4".to_string()),
                ("<From-IP>", "127.0.0.4".to_string()),
                ("<Local-Port>", port.to_string()),
                ("<Call-ID>", format!("protos{n}")),
                ("<CSeq>", "1".to_string()),
                ("<Branch-ID>", format!("{n}")),
                ("<Teardown-Method>", "CANCEL".to_string()),
            ] {
                m = subst(m, k, &v);
            }
            let body_len = m
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| m.len() - p - 4)
                .unwrap_or(0);
            subst(m, "<Content-Length>", &body_len.to_string())
        })
        .collect()
}

#[test]
fn gateway_survives_the_protos_sample_and_keeps_answering() {
    let gw = Gateway::start("");
    let dir = corpus_dir().join("fuzz/protos-c07-sip-sample");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("protos dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 200, "PROTOS sample missing");
    let mut ua = Ua::udp_from("127.0.0.4:0", gw.udp);
    let port = ua.local.port();
    let mut answered_valid = false;
    for (n, case) in cases.iter().enumerate() {
        let raw = std::fs::read(case).unwrap();
        for m in protos_messages(&raw, port, n) {
            if m.len() > 65_000 {
                // Too big for a datagram: the same bytes over TCP, where the
                // size limit must close the connection.
                let mut tcp = Ua::tcp(gw.tcp);
                tcp.try_send_raw(&m);
                assert!(
                    tcp.tcp_closed(Duration::from_secs(3)),
                    "oversized message left connection open"
                );
            } else {
                ua.send_raw(&m);
            }
        }
        if n == 0 {
            // Case 0 is the valid reference INVITE: it must be answered.
            answered_valid = ua.final_response(Duration::from_secs(3)).is_some();
        }
        if n % 20 == 19 {
            let mut probe = Ua::udp(gw.udp);
            let opts = probe.options("");
            assert_eq!(
                probe.request(&opts).map(|r| r.status),
                Some(200),
                "not answering OPTIONS after PROTOS case {}",
                case.display()
            );
        }
    }
    assert!(answered_valid, "the valid PROTOS INVITE got no answer");
    let mut probe = Ua::udp(gw.udp);
    let opts = probe.options("");
    assert_eq!(probe.request(&opts).map(|r| r.status), Some(200));
    let mut tcp = Ua::tcp(gw.tcp);
    let opts = tcp.options("");
    assert_eq!(tcp.request(&opts).map(|r| r.status), Some(200));
    let mut gw = gw;
    assert!(gw.is_running());
}
