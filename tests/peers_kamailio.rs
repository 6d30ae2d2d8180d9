//! Kamailio as an edge proxy in front of the real callgate, running the
//! shipped `contrib/kamailio/callgate-edge.cfg`: registrations carry a
//! Path and are answered through the proxy; a softphone's call to the test
//! number through the proxy is answered. Checked on the wire.
//!
//! What issue 13 lists as broken today (no Record-Route in callgate's
//! responses, so ACK and BYE go around the proxy; Path neither echoed nor
//! used) is printed as `OBSERVED:` lines, not asserted, until it is fixed.

mod common;

use common::baresip::{self, Baresip};
use common::capture::{self, Capture};
use common::kamailio::{self, Kamailio};
use common::ua::{Registration, Ua};
use common::wire::{self, Transport, WireSip};
use common::{Gateway, repo_root};
use std::net::SocketAddr;
use std::time::Duration;

fn gateway() -> Gateway {
    // baresip needs a single MD5 challenge until issue 13 item 1 is fixed.
    Gateway::start(&format!(
        "[registrar]\ndigest_algorithms = [\"MD5\"]\n\n[prompts]\ndir = \"{}\"\n\n\
         [[test_numbers]]\nnumber = \"7000\"\nprompt = \"test_tone_sweep\"\n",
        repo_root().join("prompts").display()
    ))
}

fn ports_filter(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("port {p}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn describe(msgs: &[WireSip]) -> String {
    msgs.iter()
        .map(|m| {
            format!(
                "{:?} {} -> {}: {}",
                m.transport,
                m.src,
                m.dst,
                m.first_line()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// REGISTER over `transport` from the test UA through Kamailio: callgate
/// receives it from the proxy with a Path naming the proxy and the UA's
/// address, and the 200 goes back through the proxy.
fn register_through_proxy(tcp: bool) {
    if !kamailio::available() || !capture::available() {
        return;
    }
    let gw = gateway();
    let kam = Kamailio::edge(gw.udp);
    let dump = gw.dir.path().join("register.pcap");
    let cap = Capture::start_filter(&dump, &ports_filter(&[kam.udp.port(), gw.udp.port()]));
    let mut ua = if tcp {
        Ua::tcp(kam.tcp)
    } else {
        Ua::udp(kam.udp)
    };
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    let resp = reg.register(&mut ua, 600).expect("a final response");
    assert_eq!(resp.status, 200, "{resp:?}\n{}", kam.logs());
    assert!(
        gw.wait_for_log(&["binding added", "agent=alice"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let msgs = wire::sip_messages(&cap.stop_raw());
    let proxy: SocketAddr = kam.udp;
    let want_transport = if tcp { Transport::Tcp } else { Transport::Udp };

    // Proxy → callgate: the authenticated REGISTER with its Path.
    let at_callgate: Vec<&WireSip> = msgs
        .iter()
        .filter(|m| m.method() == Some("REGISTER") && m.dst == gw.udp)
        .collect();
    assert_eq!(
        at_callgate.len(),
        2,
        "challenge and retry:\n{}",
        describe(&msgs)
    );
    for m in &at_callgate {
        assert_eq!(m.src, proxy, "REGISTER reached callgate around the proxy");
        let path = m
            .header("Path")
            .unwrap_or_else(|| panic!("no Path:\n{}", m.text));
        assert!(
            path.contains(&format!("sip:{proxy}")) && path.contains(";lr"),
            "Path names the proxy: {path}"
        );
        assert!(
            path.contains(&format!("received=sip:{}", ua.local)),
            "Path carries the UA's source address: {path}"
        );
    }
    // callgate → proxy → UA: the 200 (and the 401 before it).
    for status in [401, 200] {
        let to_ua = msgs
            .iter()
            .find(|m| m.status() == Some(status) && m.dst == ua.local)
            .unwrap_or_else(|| panic!("no {status} to the UA:\n{}", describe(&msgs)));
        assert_eq!(to_ua.src, proxy, "{status} reached the UA around the proxy");
        assert_eq!(to_ua.transport, want_transport);
        // The UA only accepts a response whose top Via is its own.
        let vias = to_ua.headers("Via");
        assert!(
            vias.len() == 1 && vias[0].contains(&ua.local.to_string()),
            "{status} to the UA has the UA's Via only: {vias:?}"
        );
        let from_cg = msgs
            .iter()
            .find(|m| m.status() == Some(status) && m.src == gw.udp && m.dst == proxy)
            .unwrap_or_else(|| {
                panic!(
                    "no {status} from callgate to the proxy:\n{}",
                    describe(&msgs)
                )
            });
        // §8.2.6.2: every Via of the request, in order.
        assert_eq!(from_cg.headers("Via").len(), 2, "{}", from_cg.text);
    }
    assert!(
        !msgs.iter().any(|m| m.src == ua.local && m.dst == gw.udp),
        "nothing goes from the UA straight to callgate"
    );

    let ok = msgs
        .iter()
        .find(|m| m.status() == Some(200) && m.src == gw.udp)
        .expect("200 from callgate");
    eprintln!(
        "OBSERVED (issue 13 item 4): callgate's 200 to a REGISTER with Path {} the Path; Supported: {:?}",
        if ok.header("Path").is_some() {
            "echoes"
        } else {
            "does not echo"
        },
        ok.header("Supported")
    );
}

#[test]
fn udp_register_through_kamailio_carries_path_and_is_answered_through_it() {
    register_through_proxy(false);
}

#[test]
fn tcp_register_through_kamailio_carries_path_and_is_answered_through_it() {
    register_through_proxy(true);
}

/// baresip registered through Kamailio calls 7000 through it: the INVITE
/// reaches callgate from the proxy with the proxy's Record-Route, callgate
/// answers through the proxy, and the digits keyed are heard.
#[test]
fn baresip_through_kamailio_registers_and_calls_7000() {
    if !kamailio::available() || !baresip::available() || !capture::available() {
        return;
    }
    let gw = gateway();
    let kam = Kamailio::edge(gw.udp);
    let mut phone = Baresip::start(baresip::Options::default());
    let dump = gw.dir.path().join("call.pcap");
    let cap = Capture::start_filter(
        &dump,
        &ports_filter(&[kam.udp.port(), gw.udp.port(), phone.sip.port()]),
    );
    let aor = phone
        .register(&baresip::account_line(
            "alice",
            "alice-secret",
            kam.udp,
            "udp",
        ))
        .expect("baresip registers through the proxy");
    assert!(
        gw.wait_for_log(&["binding added", "agent=alice"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let call_id = phone
        .dial(&format!("sip:7000@{}", kam.udp))
        .expect("7000 answers through the proxy");
    std::thread::sleep(Duration::from_millis(500));
    phone.send_digits("73").expect("sndcode");
    assert!(
        gw.wait_for_log(
            &["digits so far", "digits=73", &call_id],
            Duration::from_secs(10)
        ),
        "{}",
        gw.logs()
    );
    phone.hangup().expect("hangup");
    assert!(gw.wait_for_log(&["call ended", &call_id], Duration::from_secs(10)));
    let _ = phone.unregister(&aor);
    std::thread::sleep(Duration::from_millis(300));
    let msgs = wire::sip_messages(&cap.stop_raw());
    let of_call: Vec<&WireSip> = msgs
        .iter()
        .filter(|m| m.call_id() == Some(&call_id))
        .collect();

    let invite = of_call
        .iter()
        .find(|m| m.method() == Some("INVITE") && m.dst == gw.udp)
        .unwrap_or_else(|| panic!("no INVITE at callgate:\n{}", describe(&msgs)));
    assert_eq!(invite.src, kam.udp, "INVITE came through the proxy");
    let rr = invite.headers("Record-Route");
    assert!(
        rr.iter()
            .any(|r| r.contains(&format!("sip:{}", kam.udp)) && r.contains(";lr")),
        "the proxy record-routes: {rr:?}"
    );
    let ok = of_call
        .iter()
        .find(|m| {
            m.status() == Some(200) && m.cseq_method() == Some("INVITE") && m.dst == phone.sip
        })
        .unwrap_or_else(|| panic!("no 200 to baresip:\n{}", describe(&msgs)));
    assert_eq!(ok.src, kam.udp, "200 came back through the proxy");

    // Known broken (issue 13 item 2): report what happened on the wire.
    let from_cg = of_call
        .iter()
        .find(|m| m.status() == Some(200) && m.cseq_method() == Some("INVITE") && m.src == gw.udp);
    eprintln!(
        "OBSERVED (issue 13 item 2): callgate's 200 to the INVITE carries Record-Route {:?}",
        from_cg.map(|m| m.headers("Record-Route"))
    );
    for method in ["ACK", "BYE"] {
        let hops: Vec<String> = of_call
            .iter()
            .filter(|m| m.method() == Some(method))
            .map(|m| format!("{} -> {}", m.src, m.dst))
            .collect();
        eprintln!(
            "OBSERVED: {method} hops {hops:?} (phone {}, proxy {}, callgate {})",
            phone.sip, kam.udp, gw.udp
        );
    }
}
