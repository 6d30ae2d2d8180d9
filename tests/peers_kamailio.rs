//! Kamailio as an edge proxy in front of the real callgate, running the
//! shipped `contrib/kamailio/callgate-edge.cfg`, with the shipped digest
//! settings: registrations carry a Path, answered (and echoed) through
//! the proxy; calls from phones behind it are Record-Routed and callgate
//! echoes the Record-Route, so ACK and BYE stay on the proxy; offers to a
//! TCP agent behind it go through the proxy by its Path. Checked on the
//! wire (issue 13 items 2, 3 and 4).

mod common;

use common::baresip::{self, Baresip};
use common::capture::{self, Capture};
use common::kamailio::{self, Kamailio};
use common::rtp::{best_correlation, chirp, read_wav};
use common::ua::{Registration, Ua};
use common::wire::{self, Transport, WireSip};
use common::{Gateway, repo_root};
use std::net::SocketAddr;
use std::time::Duration;

fn gateway() -> Gateway {
    Gateway::start(&format!(
        "[prompts]\ndir = \"{}\"\n\n\
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
    // A UA that understands Path (RFC 3327 §5.1) gets it back.
    let lines = format!("Contact: {}\nSupported: path\n", reg.contact);
    let resp = reg
        .register_with(&mut ua, &lines, Some(600), None)
        .expect("a final response");
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

    // Issue 13 item 4: the Path is kept (and echoed to a UA that
    // supports it), and offers will go back through the proxy.
    let path = at_callgate[1].header("Path").expect("Path").to_string();
    let ok = msgs
        .iter()
        .find(|m| m.status() == Some(200) && m.src == gw.udp)
        .expect("200 from callgate");
    assert_eq!(ok.headers("Path"), vec![path.as_str()], "{}", ok.text);
    assert!(
        ok.headers("Supported").iter().any(|s| s.contains("path")),
        "{}",
        ok.text
    );
    let agents = common::http::get_json(gw.http.expect("http"), "/api/agents");
    let reg = agents
        .as_array()
        .and_then(|a| a.iter().find(|a| a["user"] == "alice"))
        .map(|a| a["registrations"][0].clone())
        .expect("alice's registration");
    assert_eq!(reg["path"][0], path.as_str());
    assert_eq!(reg["next_hop"], proxy.to_string(), "{reg}");
    assert_eq!(reg["transport"], "udp");
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

    // Issue 13 item 2: callgate's 200 carries the proxy's Record-Route,
    // so the phone's ACK and BYE go through the proxy.
    let from_cg = of_call
        .iter()
        .find(|m| m.status() == Some(200) && m.cseq_method() == Some("INVITE") && m.src == gw.udp)
        .unwrap_or_else(|| panic!("no 200 from callgate:\n{}", describe(&msgs)));
    assert_eq!(from_cg.headers("Record-Route"), rr, "{}", from_cg.text);
    for method in ["ACK", "BYE"] {
        let hops: Vec<(SocketAddr, SocketAddr)> = of_call
            .iter()
            .filter(|m| m.method() == Some(method))
            .map(|m| (m.src, m.dst))
            .collect();
        assert!(
            hops.contains(&(phone.sip, kam.udp)) && hops.contains(&(kam.udp, gw.udp)),
            "{method} phone → proxy → callgate: {hops:?}\n{}",
            describe(&msgs)
        );
        assert!(
            !hops.contains(&(phone.sip, gw.udp)),
            "{method} went around the proxy: {hops:?}"
        );
    }
}

/// Two chirps a second, as a WAV, for a phone's microphone.
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

/// Issue 13 items 2, 3 and 4 together, the way a site behind an edge
/// proxy runs: agent alice (baresip) registers over TCP through Kamailio,
/// a caller (baresip, TCP, through Kamailio) waits in the queue; callgate
/// offers alice the call through the proxy (her Path), she answers, the
/// two are bridged and hear each other, the caller hangs up. REGISTER,
/// the offer, both ACKs and both BYEs traverse the proxy, the phones'
/// legs over TCP, and nothing goes between a phone and callgate directly.
#[test]
fn tcp_agent_and_tcp_caller_through_kamailio() {
    if !kamailio::available() || !baresip::available() || !capture::available() {
        return;
    }
    let flow = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\n\
                mode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"end\"\n\
                [blocks.end]\ntype = \"disconnect\"\n";
    let gw = common::centre::start(
        Some(&[("to_support", flow)]),
        "127.0.0.1:5995",
        "[[numbers]]\nnumber = \"3001\"\nflow = \"to_support\"\n",
    );
    let kam = Kamailio::edge(gw.udp);
    let agent_probe = chirp(8000, 2000.0, 400.0);
    let mic = gw.dir.path().join("agent_mic.wav");
    chirps_wav(&mic, &agent_probe, 40);
    let mut agent = Baresip::start(baresip::Options {
        source_wav: Some(mic),
        ..Default::default()
    });
    let mut caller = Baresip::start(baresip::Options {
        record: true,
        ..Default::default()
    });
    let dump = gw.dir.path().join("tcp.pcap");
    let cap = Capture::start_filter(
        &dump,
        &ports_filter(&[
            kam.udp.port(),
            gw.udp.port(),
            agent.sip.port(),
            caller.sip.port(),
        ]),
    );
    agent
        .register(&baresip::account_line(
            "alice",
            "alice-secret",
            kam.tcp,
            "tcp",
        ))
        .expect("alice registers over TCP through the proxy");
    assert!(
        gw.wait_for_log(&["binding added", "agent=alice"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // The caller does not register (regint=0): it only calls, over TCP.
    caller
        .command(
            "uanew",
            &format!(
                "<sip:caller@{};transport=tcp>;regint=0;audio_codecs=PCMU,PCMA",
                kam.tcp
            ),
        )
        .expect("caller account");
    let caller_call = caller
        .dial(&format!("sip:3001@{}", kam.tcp))
        .expect("3001 answers through the proxy");
    let offer_call = agent.wait_established().expect("alice answers the offer");
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    std::thread::sleep(Duration::from_millis(3000));
    caller.hangup().expect("hangup");
    assert!(
        agent
            .wait_event("CALL_CLOSED", Duration::from_secs(10))
            .is_some(),
        "alice's call ends with the caller's\n{}",
        gw.logs()
    );
    std::thread::sleep(Duration::from_millis(300));
    let msgs = wire::sip_messages(&cap.stop_raw());
    let (_, heard) = caller.recordings();
    let heard = read_wav(&heard.expect("the caller's recording"));
    let (corr, _) = best_correlation(&heard, &agent_probe[800..7200]);
    eprintln!("agent → caller through the bridge: correlation {corr:.3}");
    assert!(corr > 0.9, "the caller hears alice: {corr}");

    let hops = |call_id: &str,
                what: &dyn Fn(&WireSip) -> bool|
     -> Vec<(SocketAddr, SocketAddr, Transport)> {
        msgs.iter()
            .filter(|m| m.call_id() == Some(call_id) && what(m))
            .map(|m| (m.src, m.dst, m.transport))
            .collect()
    };
    let req = |method: &'static str| move |m: &WireSip| m.method() == Some(method);
    let k = kam.udp;
    // REGISTER: agent → proxy over TCP, proxy → callgate.
    let reg: Vec<_> = msgs
        .iter()
        .filter(|m| m.method() == Some("REGISTER"))
        .map(|m| (m.src, m.dst, m.transport))
        .collect();
    assert!(
        reg.iter().any(|h| h.1 == k && h.2 == Transport::Tcp),
        "REGISTER to the proxy over TCP: {reg:?}"
    );
    assert!(
        reg.iter().any(|h| h.0 == k && h.1 == gw.udp),
        "REGISTER via the proxy: {reg:?}"
    );
    // The offer (alice's call): callgate → proxy → alice over TCP, and
    // callgate's ACK and BYE the same way.
    for method in ["INVITE", "ACK", "BYE"] {
        let h = hops(&offer_call, &req(method));
        assert!(
            h.iter().any(|x| x.0 == gw.udp && x.1 == k),
            "{method} of the offer from callgate to the proxy: {h:?}\n{}",
            describe(&msgs)
        );
        assert!(
            h.iter().any(|x| x.0 == k && x.2 == Transport::Tcp),
            "{method} of the offer relayed to alice over TCP: {h:?}"
        );
        assert!(
            !h.iter().any(|x| x.0 == gw.udp && x.1 != k),
            "{method} of the offer went around the proxy: {h:?}"
        );
    }
    // The caller's call: caller → proxy over TCP → callgate, both ways.
    for method in ["INVITE", "ACK", "BYE"] {
        let h = hops(&caller_call, &req(method));
        assert!(
            h.iter().any(|x| x.1 == k && x.2 == Transport::Tcp)
                && h.iter().any(|x| x.0 == k && x.1 == gw.udp),
            "{method} of the caller through the proxy: {h:?}\n{}",
            describe(&msgs)
        );
    }
    // Nothing between a phone and callgate directly: callgate talks to
    // the proxy only.
    eprintln!("{}", describe(&msgs));
    for m in &msgs {
        let direct = (m.src == gw.udp && m.dst != k) || (m.dst == gw.udp && m.src != k);
        assert!(
            !direct,
            "around the proxy: {:?} {} -> {}: {}",
            m.transport,
            m.src,
            m.dst,
            m.first_line()
        );
    }
}

/// Kamailio talking to callgate over TCP too (`CALLGATE_TCP_URI`): the
/// Path it adds names its TCP side, so callgate sends the offer, its ACK
/// and its BYE over TCP to the proxy (on the connection the proxy opened,
/// RFC 5626 flow reuse), never to the phone.
#[test]
fn offers_to_a_tcp_proxy_go_over_tcp() {
    if !kamailio::available() || !baresip::available() || !capture::available() {
        return;
    }
    let flow = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\n\
                mode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"end\"\n\
                [blocks.end]\ntype = \"disconnect\"\n";
    let gw = common::centre::start(
        Some(&[("to_support", flow)]),
        "127.0.0.1:5993",
        "[[numbers]]\nnumber = \"3001\"\nflow = \"to_support\"\n",
    );
    let kam = Kamailio::edge_tcp(gw.udp, gw.tcp);
    let mut agent = Baresip::start(baresip::Options::default());
    let dump = gw.dir.path().join("tcp2.pcap");
    let cap = Capture::start_filter(
        &dump,
        &ports_filter(&[kam.udp.port(), gw.udp.port(), agent.sip.port()]),
    );
    agent
        .register(&baresip::account_line(
            "alice",
            "alice-secret",
            kam.tcp,
            "tcp",
        ))
        .expect("alice registers over TCP through the proxy");
    assert!(
        gw.wait_for_log(&["binding added", "agent=alice"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let mut caller = common::caller::Caller::dial(&gw, "3001");
    caller.silence(200);
    let offer_call = agent.wait_established().expect("alice answers");
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    let mut call = caller.call.clone();
    assert_eq!(
        caller
            .ua
            .in_dialog(&mut call, "BYE", None)
            .map(|r| r.status),
        Some(200)
    );
    assert!(
        agent
            .wait_event("CALL_CLOSED", Duration::from_secs(10))
            .is_some()
    );
    std::thread::sleep(Duration::from_millis(300));
    let msgs = wire::sip_messages(&cap.stop_raw());
    let register = msgs
        .iter()
        .find(|m| m.method() == Some("REGISTER") && m.dst == gw.tcp)
        .unwrap_or_else(|| panic!("no REGISTER over TCP at callgate\n{}", describe(&msgs)));
    assert_eq!(register.transport, Transport::Tcp);
    let proxy_conn = register.src;
    let path = register.header("Path").expect("Path");
    assert!(path.contains("transport=tcp"), "{path}");
    for method in ["INVITE", "ACK", "BYE"] {
        let from_cg: Vec<&WireSip> = msgs
            .iter()
            .filter(|m| {
                m.call_id() == Some(&offer_call) && m.method() == Some(method) && m.src == gw.tcp
            })
            .collect();
        assert!(
            !from_cg.is_empty()
                && from_cg
                    .iter()
                    .all(|m| m.transport == Transport::Tcp && m.dst == proxy_conn),
            "{method} of the offer over the proxy's TCP connection:\n{}",
            describe(&msgs)
        );
    }
    for m in &msgs {
        let ours = m.src.port() == gw.udp.port() || m.dst.port() == gw.udp.port();
        let other = if m.src.port() == gw.udp.port() {
            m.dst
        } else {
            m.src
        };
        assert!(
            !ours || other == proxy_conn || other == kam.udp || other == caller.ua.local,
            "callgate talked to {other} directly: {}",
            m.first_line()
        );
    }
}

/// The shipped proxy is no open relay: a phone's request for another
/// domain, and a forged "in-dialog" request that carries the proxy's
/// Route but goes neither to nor from callgate (a BYE or re-INVITE aimed
/// at a trunk), are refused with 403.
#[test]
fn the_shipped_proxy_is_not_an_open_relay() {
    if !kamailio::available() {
        return;
    }
    let gw = gateway();
    let kam = Kamailio::edge(gw.udp);
    // From another loopback address than callgate's.
    let mut ua = Ua::udp_from("127.0.0.2:0", kam.udp);
    let local = ua.local_hostport();
    let k = kam.udp;
    for (what, text) in [
        (
            "INVITE to another domain",
            format!(
                "INVITE sip:+19005550100@127.0.0.3:5080 SIP/2.0\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKor1\nFrom: <sip:x@{local}>;tag=o1\nTo: <sip:+19005550100@127.0.0.3>\nCall-ID: relay1@test\nCSeq: 1 INVITE\nMax-Forwards: 70\nContact: <sip:x@{local}>\nContent-Length: 0\n\n"
            ),
        ),
        (
            "forged in-dialog INVITE with the proxy's Route",
            format!(
                "INVITE sip:+19005550100@127.0.0.3:5080 SIP/2.0\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKor2\nRoute: <sip:{k};lr>\nFrom: <sip:x@{local}>;tag=o2\nTo: <sip:+19005550100@127.0.0.3>;tag=forged\nCall-ID: relay2@test\nCSeq: 2 INVITE\nMax-Forwards: 70\nContact: <sip:x@{local}>\nContent-Length: 0\n\n"
            ),
        ),
        (
            "forged in-dialog BYE with the proxy's Route",
            format!(
                "BYE sip:+19005550100@127.0.0.3:5080 SIP/2.0\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKor3\nRoute: <sip:{k};lr>\nFrom: <sip:x@{local}>;tag=o3\nTo: <sip:+19005550100@127.0.0.3>;tag=forged\nCall-ID: relay3@test\nCSeq: 3 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n"
            ),
        ),
    ] {
        let r = ua
            .request(&text)
            .unwrap_or_else(|| panic!("{what}: no answer\n{}", kam.logs()));
        assert_eq!(r.status, 403, "{what}: {r}");
    }
}
