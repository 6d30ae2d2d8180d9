//! Request handling that needs no call: OPTIONS, unknown methods, hop
//! limits, transactions seen from the wire, transports and IPv6.

mod common;

use callgate::sip::message::{HeaderName, MessageExt};
use common::ua::Ua;
use common::{Gateway, sipp};
use std::time::Duration;

#[test]
fn sipp_options_ping_gets_200_with_allow() {
    if !sipp::available() {
        return;
    }
    let gw = Gateway::start("");
    let run = sipp::run("options_ping.xml", gw.udp, &["-m", "5", "-r", "5"]);
    assert!(run.ok(), "{}\n{}", run.errors, run.stdout);
    let run = sipp::run("options_ping.xml", gw.tcp, &["-m", "3", "-t", "t1"]);
    assert!(run.ok(), "over TCP: {}\n{}", run.errors, run.stdout);
}

#[test]
fn options_answered_over_udp_tcp_and_ipv6() {
    let ipv6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let listen = if ipv6 {
        r#"["127.0.0.1:0", "[::1]:0"]"#
    } else {
        eprintln!("no IPv6 loopback here: IPv6 part skipped");
        r#"["127.0.0.1:0"]"#
    };
    let gw = Gateway::start_listening(listen, "");
    let mut targets = vec![(gw.udp, false), (gw.tcp, true)];
    if ipv6 {
        let v6u = *gw.udp_all.iter().find(|a| a.is_ipv6()).expect("v6 udp");
        let v6t = *gw.tcp_all.iter().find(|a| a.is_ipv6()).expect("v6 tcp");
        targets.push((v6u, false));
        targets.push((v6t, true));
    }
    for (target, tcp) in targets {
        let mut ua = if tcp {
            Ua::tcp(target)
        } else {
            Ua::udp(target)
        };
        let req = ua.options("");
        let r = ua
            .request(&req)
            .unwrap_or_else(|| panic!("no answer from {target}"));
        assert_eq!(r.status, 200);
        let allow: Vec<&str> = r.headers.get_all(&HeaderName::Allow).collect();
        for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"] {
            assert!(allow.contains(&m), "Allow lacks {m}: {allow:?}");
        }
        assert_eq!(r.header(&HeaderName::Accept), Some("application/sdp"));
        // RFC 3581: rport filled with our source port, received added
        // only if the sent-by host differs.
        let via = r.top_via().unwrap();
        assert_eq!(
            via.params.value("rport"),
            Some(ua.local.port().to_string().as_str())
        );
    }
}

#[test]
fn unknown_and_unsupported_methods() {
    let gw = Gateway::start("");
    let mut ua = Ua::udp(gw.udp);
    let target = gw.udp;
    let local = ua.local;
    let req = |method: &str, n: u32| {
        format!(
            "{method} sip:{target} SIP/2.0\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKm{n}\nFrom: <sip:t@{local}>;tag=a{n}\nTo: <sip:{target}>\nCall-ID: m{n}\nCSeq: 1 {method}\nMax-Forwards: 70\nContent-Length: 0\n\n"
        )
    };
    let r = ua.request(&req("FROBNICATE", 1)).unwrap();
    assert_eq!(r.status, 501);
    assert!(r.header(&HeaderName::Allow).is_some());
    let r = ua.request(&req("SUBSCRIBE", 2)).unwrap();
    assert_eq!(r.status, 405);
    assert!(r.headers.get_all(&HeaderName::Allow).any(|m| m == "INVITE"));
    let r = ua.request(&req("BYE", 3)).unwrap();
    assert_eq!(r.status, 481, "BYE outside any dialog");
    let r = ua.request(&req("CANCEL", 4)).unwrap();
    assert_eq!(r.status, 481, "CANCEL matching no INVITE");
}

#[test]
fn invite_hop_limit_and_retransmissions() {
    let gw = Gateway::start("");
    let mut ua = Ua::udp(gw.udp);
    let (target, local) = (gw.udp, ua.local);
    let invite = |branch: &str, mf: u32| {
        format!(
            "INVITE sip:999@{target} SIP/2.0\nVia: SIP/2.0/UDP {local};rport;branch={branch}\nFrom: <sip:caller@{local}>;tag=c1\nTo: <sip:999@{target}>\nCall-ID: {branch}\nCSeq: 1 INVITE\nMax-Forwards: {mf}\nContact: <sip:caller@{local}>\nContent-Length: 0\n\n"
        )
    };
    let r = ua.request(&invite("z9hG4bKhop", 0)).unwrap();
    assert_eq!(r.status, 483, "Max-Forwards: 0 on an INVITE");

    // A new UA: the 483 above is retransmitted to the first one until ACKed.
    let mut ua = Ua::udp(gw.udp);
    let local = ua.local;
    let invite = |branch: &str, mf: u32| {
        format!(
            "INVITE sip:999@{target} SIP/2.0\nVia: SIP/2.0/UDP {local};rport;branch={branch}\nFrom: <sip:caller@{local}>;tag=c1\nTo: <sip:999@{target}>\nCall-ID: {branch}\nCSeq: 1 INVITE\nMax-Forwards: {mf}\nContact: <sip:caller@{local}>\nContent-Length: 0\n\n"
        )
    };

    // The first answer is 100 Trying, then the final. A retransmitted
    // INVITE gets the same final again, not a second transaction.
    let req = invite("z9hG4bKre", 70);
    ua.send(&req);
    let first = ua.recv_response(Duration::from_secs(3)).unwrap();
    assert_eq!(first.status, 100);
    let fin = ua.final_response(Duration::from_secs(3)).unwrap();
    assert_eq!(fin.status, 404);
    ua.send(&req);
    let again = ua.final_response(Duration::from_secs(3)).unwrap();
    assert_eq!(again.status, 404);
    assert_eq!(again.to_tag(), fin.to_tag());
    // Without an ACK, the 404 is retransmitted (Timer G, 500 ms over UDP).
    let retrans = ua.final_response(Duration::from_secs(2)).unwrap();
    assert_eq!(retrans.status, 404);
    // ACK stops it.
    let ack = format!(
        "ACK sip:999@{target} SIP/2.0\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKre\nFrom: <sip:caller@{local}>;tag=c1\nTo: <sip:999@{target}>;tag={}\nCall-ID: z9hG4bKre\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
        fin.to_tag().unwrap()
    );
    ua.send(&ack);
    // drain anything in flight, then expect silence
    while ua.final_response(Duration::from_millis(300)).is_some() {}
    assert!(
        ua.final_response(Duration::from_secs(3)).is_none(),
        "404 still retransmitted after ACK"
    );
}
