//! Behind a proxy, message by message, against the real binary: the test
//! plays the proxy (and the phone behind it) with plain sockets, so every
//! hop callgate picks is visible. Record-Route echoed in the answer and
//! followed by callgate's BYE; an agent's Path stored, shown by the API
//! and used as the offer's Route set; the 2xx's Record-Route followed by
//! the ACK and the BYE of a call callgate placed; a Contact's
//! `transport=tcp` honoured; forged Paths refused; session-timer
//! negotiation (RFC 4028).

mod common;

use callgate::sip::message::{
    HeaderName, MessageExt, Method, Request, Response, SipMessage, parse_datagram,
};
use common::agent::Agent;
use common::caller::Caller;
use common::rtp::RtpPeer;
use common::ua::{Registration, Ua, authorization};
use common::{Gateway, centre, http, repo_root};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

/// A UDP socket on loopback playing one hop.
struct Hop {
    sock: UdpSocket,
    addr: SocketAddr,
}

impl Hop {
    fn new() -> Hop {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = sock.local_addr().expect("addr");
        Hop { sock, addr }
    }

    fn send(&self, to: SocketAddr, text: &str) {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut raw = head.replace('\n', "\r\n").into_bytes();
        raw.extend_from_slice(b"\r\n\r\n");
        raw.extend_from_slice(body.as_bytes());
        self.sock.send_to(&raw, to).expect("send");
    }

    fn send_msg(&self, to: SocketAddr, bytes: &[u8]) {
        self.sock.send_to(bytes, to).expect("send");
    }

    /// The next SIP message and where it came from.
    fn recv(&self, timeout: Duration) -> Option<(SipMessage, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock.set_read_timeout(Some(left)).ok()?;
            let (n, from) = self.sock.recv_from(&mut buf).ok()?;
            if let Ok(m) = parse_datagram(&buf[..n]) {
                return Some((m, from));
            }
        }
    }

    /// The next request of `method` (other requests get 200).
    fn expect(&self, method: Method, timeout: Duration) -> Option<(Request, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.recv(left)? {
                (SipMessage::Request(r), from) if r.method == method => return Some((r, from)),
                (SipMessage::Request(r), from) if r.method != Method::Ack => {
                    let ok = Response::to_request(&r, 200, Some("hop"));
                    self.send_msg(from, &ok.encode());
                }
                _ => {}
            }
        }
    }

    /// The next final response.
    fn final_response(&self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if let (SipMessage::Response(r), _) = self.recv(left)?
                && r.status >= 200
            {
                return Some(r);
            }
        }
    }
}

fn routes(req: &Request) -> Vec<&str> {
    req.headers.get_all(&HeaderName::Route).collect()
}

fn test_number_gateway(extra: &str) -> Gateway {
    Gateway::start(&format!(
        "[prompts]\ndir = \"{}\"\n\n[[test_numbers]]\nnumber = \"7000\"\nprompt = \"test_tone_sweep\"\nmax_seconds = 1\n{extra}",
        repo_root().join("prompts").display()
    ))
}

/// Issue 13 item 2 and RFC 3261 §12.1.1, §16.12: an INVITE relayed by a
/// proxy carries two Record-Routes (double routing: the proxy's UDP side
/// towards callgate, its TCP side towards the phone). callgate's 200
/// carries both, in order, and its own BYE goes to the first route's port
/// (not to the port the INVITE came from, nor the phone's Contact) with
/// the route set in Route.
#[test]
fn record_route_is_echoed_and_callgates_bye_follows_it() {
    let gw = test_number_gateway("");
    let sender = Hop::new(); // where the proxy sent the INVITE from
    let listener = Hop::new(); // the proxy's listening port, in its RR
    let rtp = RtpPeer::new();
    let sdp = rtp.offer(&[(0, "PCMU")]);
    let rr1 = format!("<sip:{};r2=on;lr;ftag=ph1>", listener.addr);
    let rr2 = format!(
        "<sip:127.0.0.1:{};transport=tcp;r2=on;lr;ftag=ph1>",
        listener.addr.port()
    );
    let invite = format!(
        "INVITE sip:7000@{gw} SIP/2.0\nVia: SIP/2.0/UDP {proxy};branch=z9hG4bKprx1\nVia: SIP/2.0/TCP 127.0.0.2:5099;rport=5099;branch=z9hG4bKph1\nRecord-Route: {rr1}\nRecord-Route: {rr2}\nFrom: <sip:+12015550100@edge>;tag=ph1\nTo: <sip:7000@edge>\nCall-ID: rr-echo-1\nCSeq: 1 INVITE\nMax-Forwards: 69\nContact: <sip:phone@127.0.0.2:5099;transport=tcp>\nContent-Type: application/sdp\nContent-Length: {len}\n\n{sdp}",
        gw = gw.udp,
        proxy = sender.addr,
        len = sdp.len(),
    );
    sender.send(gw.udp, &invite);
    let ok = sender.final_response(Duration::from_secs(5)).expect("200");
    assert_eq!(ok.status, 200, "{ok}");
    let rr: Vec<&str> = ok.headers.get_all(&HeaderName::RecordRoute).collect();
    assert_eq!(rr, vec![rr1.as_str(), rr2.as_str()], "{ok}");
    let to = ok
        .headers
        .get(&HeaderName::To)
        .unwrap_or_default()
        .to_string();
    // The phone's ACK, through the proxy's listening port.
    let ack = format!(
        "ACK sip:callgate@{gw} SIP/2.0\nVia: SIP/2.0/UDP {proxy};branch=z9hG4bKprx2\nFrom: <sip:+12015550100@edge>;tag=ph1\nTo: {to}\nCall-ID: rr-echo-1\nCSeq: 1 ACK\nMax-Forwards: 69\nContent-Length: 0\n\n",
        gw = gw.udp,
        proxy = listener.addr,
    );
    listener.send(gw.udp, &ack);
    // The test number hangs up after a second: through the first route.
    let (bye, from) = listener
        .expect(Method::Bye, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("no BYE at the proxy's listening port\n{}", gw.logs()));
    assert_eq!(from, gw.udp);
    assert_eq!(routes(&bye), vec![rr1.as_str(), rr2.as_str()]);
    assert_eq!(bye.uri.as_str(), "sip:phone@127.0.0.2:5099;transport=tcp");
    let via = bye.top_via().expect("Via");
    assert_eq!(via.transport.to_ascii_uppercase(), "UDP", "{bye}");
    let ok = Response::to_request(&bye, 200, Some("ph1"));
    listener.send_msg(from, &ok.encode());
    assert!(
        sender.recv(Duration::from_millis(300)).is_none(),
        "nothing goes to the port the INVITE came from"
    );
}

/// Registers `user` through `proxy` (the test plays it) with `path`;
/// returns the final response.
fn register_via(
    gw: &Gateway,
    proxy: &Hop,
    user: &str,
    contact: &str,
    path: &str,
    supported: &str,
) -> Response {
    let mut n = 0;
    let mut send = |auth: Option<String>| {
        n += 1;
        let auth = auth
            .map(|a| format!("Authorization: {a}\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER sip:{gw} SIP/2.0\nVia: SIP/2.0/UDP {proxy};branch=z9hG4bKpr{user}{n}\nVia: SIP/2.0/TCP 127.0.0.2:5099;rport=41000;received=127.0.0.2;branch=z9hG4bKph{user}{n}\nFrom: <sip:{user}@edge>;tag=r{user}\nTo: <sip:{user}@edge>\nCall-ID: reg-{user}@test\nCSeq: {n} REGISTER\nMax-Forwards: 69\nContact: {contact}\n{path}{supported}{auth}Expires: 600\nContent-Length: 0\n\n",
            gw = gw.udp,
            proxy = proxy.addr,
        );
        proxy.send(gw.udp, &text);
        proxy
            .final_response(Duration::from_secs(5))
            .expect("answer")
    };
    let challenge = send(None);
    assert_eq!(challenge.status, 401);
    let auth = authorization(
        &challenge,
        None,
        user,
        &format!("{user}-secret"),
        "REGISTER",
        &format!("sip:{}", gw.udp),
        1,
    )
    .expect("challenge");
    send(Some(auth))
}

fn voice_centre(extra: &str) -> Gateway {
    let flow = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\n\
                mode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"end\"\n\
                [blocks.end]\ntype = \"disconnect\"\n";
    centre::start(
        Some(&[("to_support", flow)]),
        "127.0.0.1:5997",
        &format!("[[numbers]]\nnumber = \"3001\"\nflow = \"to_support\"\n{extra}"),
    )
}

/// Issue 13 item 4 (RFC 3327) and the route set of calls callgate places
/// (RFC 3261 §12.2.1.1): an agent registered through a proxy with a Path
/// is offered the caller through the Path's hop with the Path as Route;
/// its 200's Record-Route is the route set: the ACK and callgate's BYE go
/// to the proxy port it names. `/api/agents` shows the registration.
#[test]
fn offers_follow_the_path_and_the_answers_record_route() {
    let gw = voice_centre("");
    let reg_side = Hop::new(); // the proxy's socket towards callgate
    let path_port = Hop::new(); // what its Path names
    let rr_port = Hop::new(); // what it Record-Routes the offer with
    let path = format!(
        "<sip:{};lr;received=sip:127.0.0.2:41000%3Btransport%3Dtcp>",
        path_port.addr
    );
    let ok = register_via(
        &gw,
        &reg_side,
        "alice",
        "<sip:alice@127.0.0.2:5099;transport=tcp>",
        &format!("Path: {path}\n"),
        "Supported: path, outbound\n",
    );
    assert_eq!(ok.status, 200, "{ok}");
    assert_eq!(
        ok.headers.get_all(&HeaderName::Path).collect::<Vec<_>>(),
        vec![path.as_str()],
        "Path echoed to a UA that supports it"
    );
    assert!(
        ok.headers
            .get_all(&HeaderName::Supported)
            .any(|s| s.contains("path"))
    );
    let agents = http::get_json(gw.http.expect("http"), "/api/agents");
    let alice = agents
        .as_array()
        .and_then(|a| a.iter().find(|a| a["user"] == "alice"))
        .expect("alice")
        .clone();
    let reg = &alice["registrations"][0];
    assert_eq!(reg["contact"], "sip:alice@127.0.0.2:5099;transport=tcp");
    assert_eq!(reg["transport"], "udp");
    assert_eq!(reg["next_hop"], path_port.addr.to_string());
    assert_eq!(reg["path"][0], path.as_str());
    assert_eq!(reg["source"], format!("udp:{}", reg_side.addr));

    let mut caller = Caller::dial(&gw, "3001");
    caller.silence(100);
    let (invite, from) = path_port
        .expect(Method::Invite, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no offer at the Path's hop\n{}", gw.logs()));
    assert_eq!(from, gw.udp);
    assert_eq!(routes(&invite), vec![path.as_str()]);
    assert_eq!(
        invite.uri.as_str(),
        "sip:alice@127.0.0.2:5099;transport=tcp"
    );
    assert!(
        reg_side.recv(Duration::from_millis(100)).is_none(),
        "the offer went to the Path's port, not the REGISTER's source port"
    );
    // The proxy relays it, the phone answers; the proxy Record-Routes.
    let rr = format!("<sip:{};lr;ftag=x>", rr_port.addr);
    let agent_rtp = RtpPeer::new();
    let sdp = agent_rtp.offer(&[(0, "PCMU")]);
    let mut answer = Response::to_request(&invite, 200, Some("ag1"))
        .with_header(HeaderName::RecordRoute, rr.clone())
        .with_header(
            HeaderName::Contact,
            "<sip:alice@127.0.0.2:5099;transport=tcp>",
        )
        .with_body("application/sdp", bytes::Bytes::from(sdp));
    answer.headers.push(HeaderName::Allow, "INVITE, ACK, BYE");
    path_port.send_msg(gw.udp, &answer.encode());
    let (ack, _) = rr_port
        .expect(Method::Ack, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no ACK at the Record-Route's port\n{}", gw.logs()));
    assert_eq!(routes(&ack), vec![rr.as_str()]);
    assert_eq!(ack.uri.as_str(), "sip:alice@127.0.0.2:5099;transport=tcp");
    assert!(
        gw.wait_for_log(&["caller and agent bridged"], Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    // The caller hangs up: callgate's BYE to the agent follows the route.
    let mut call = caller.call.clone();
    let r = caller.ua.in_dialog(&mut call, "BYE", None).expect("200");
    assert_eq!(r.status, 200);
    let (bye, _) = rr_port
        .expect(Method::Bye, Duration::from_secs(5))
        .expect("BYE along the route set");
    assert_eq!(routes(&bye), vec![rr.as_str()]);
    rr_port.send_msg(gw.udp, &Response::to_request(&bye, 200, None).encode());
}

/// Issue 13 item 3: an agent registered over UDP with a `transport=tcp`
/// Contact is offered over TCP, to the address it registered from (issue
/// 9: not to the Contact's port).
#[test]
fn a_tcp_contact_is_offered_over_tcp() {
    let gw = voice_centre("");
    let mut ua = Ua::udp(gw.udp);
    // The phone listens for TCP on its UDP port, as phones do.
    let tcp = TcpListener::bind(ua.local).expect("tcp on the UA's port");
    let elsewhere = TcpListener::bind("127.0.0.1:0").expect("tcp");
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    let contact = format!(
        "Contact: <sip:alice@{};transport=tcp>\n",
        elsewhere.local_addr().expect("addr")
    );
    let r = reg
        .register_with(&mut ua, &contact, Some(600), None)
        .expect("answer");
    assert_eq!(r.status, 200);
    let _caller = Caller::dial(&gw, "3001");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = tcp.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&got).to_string());
        }
    });
    let text = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| {
            panic!(
                "no TCP connection to the registering address\n{}",
                gw.logs()
            )
        });
    assert!(text.starts_with("INVITE "), "{text}");
    assert!(text.contains("Via: SIP/2.0/TCP "), "{text}");
    assert!(
        ua.recv_raw(Duration::from_millis(200)).is_none(),
        "nothing over UDP"
    );
    elsewhere.set_nonblocking(true).expect("nonblocking");
    assert!(
        elsewhere.accept().is_err(),
        "nothing to the Contact's own port"
    );
}

/// RFC 3327 without the fraud of issue 9: a Path that does not begin at
/// the proxy that sent the REGISTER, or that runs through the trunk, is
/// refused (403) and nothing is bound.
#[test]
fn forged_paths_are_refused() {
    let gw = voice_centre("");
    let proxy = Hop::new();
    for path in [
        "Path: <sip:203.0.113.9:5060;lr>\n".to_string(),
        format!(
            "Path: <sip:{};lr>\nPath: <sip:127.0.0.1:5997;lr>\n",
            proxy.addr
        ),
    ] {
        let r = register_via(
            &gw,
            &proxy,
            "alice",
            "<sip:alice@127.0.0.2:5099>",
            &path,
            "",
        );
        assert_eq!(r.status, 403, "{path}: {r}");
    }
    assert!(gw.logs().contains("registration refused"));
    assert!(
        !gw.logs().contains("binding added"),
        "nothing bound:\n{}",
        gw.logs()
    );
}

/// RFC 4028 at the UAS: too short an interval gets 422 with Min-SE; a
/// caller supporting timers gets the interval and `refresher=uac` with
/// `Require: timer`; one that does not gets no timer.
#[test]
fn session_timer_negotiation() {
    let gw = test_number_gateway("");
    let rtp = RtpPeer::new();
    let sdp = rtp.offer(&[(0, "PCMU")]);
    let mut ua = Ua::udp(gw.udp);
    for (extra, status, se, require) in [
        ("Supported: timer\nSession-Expires: 60\n", 422, None, None),
        (
            "Supported: timer\nSession-Expires: 120\n",
            200,
            Some("120;refresher=uac"),
            Some("timer"),
        ),
        (
            "Session-Expires: 600;refresher=uac\n",
            200,
            Some("600;refresher=uas"),
            None,
        ),
        ("", 200, None, None),
    ] {
        let cid = ua.unique("se");
        let text = ua.invite_text("7000", &sdp, &cid, "sef").replacen(
            "Max-Forwards: 70\n",
            &format!("Max-Forwards: 70\n{extra}"),
            1,
        );
        let (head, body) = text.split_once("\n\n").expect("body");
        let mut raw = head.replace('\n', "\r\n").into_bytes();
        raw.extend_from_slice(b"\r\n\r\n");
        raw.extend_from_slice(body.as_bytes());
        ua.send_raw(&raw);
        let r = ua.final_response(Duration::from_secs(5)).expect("answer");
        assert_eq!(r.status, status, "{extra}: {r}");
        assert_eq!(
            r.headers.get(&HeaderName::SessionExpires),
            se,
            "{extra}: {r}"
        );
        assert_eq!(r.headers.get(&HeaderName::Require), require, "{extra}");
        if status == 422 {
            assert_eq!(r.headers.get(&HeaderName::MinSe), Some("90"));
        }
    }
}

/// An agent that registers directly still works as before, and its
/// offer carries no Route.
#[test]
fn direct_agents_get_offers_without_route() {
    let gw = voice_centre("");
    let mut agent = Agent::register(gw.udp, "alice", "alice-secret");
    let _caller = Caller::dial(&gw, "3001");
    let offered = agent
        .offer(Duration::from_secs(10), common::agent::Answer::Ring)
        .expect("offer");
    assert!(routes(&offered.invite).is_empty());
    assert_eq!(
        offered.invite.headers.get(&HeaderName::SessionExpires),
        Some("1800"),
        "session timer offered (RFC 4028)"
    );
}

/// A TCP agent whose connection closed: the flow is gone (RFC 5626
/// §5.3). callgate does not go looking for the phone at the port its
/// Contact names (issue 9), and the offer fails at once (a request that
/// cannot be sent ends its transaction, RFC 3261 §17.1.4), well before
/// the offer timeout; the agent counts as having missed it.
#[test]
fn an_offer_over_a_closed_tcp_flow_fails_at_once() {
    let gw = voice_centre("[routing]\noffer_timeout_s = 60\n");
    let contact_port = TcpListener::bind("127.0.0.1:0").expect("tcp");
    contact_port.set_nonblocking(true).expect("nonblocking");
    {
        let mut ua = Ua::tcp(gw.tcp);
        let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
        let contact = format!(
            "Contact: <sip:alice@{};transport=tcp>\n",
            contact_port.local_addr().expect("addr")
        );
        let r = reg
            .register_with(&mut ua, &contact, Some(600), None)
            .expect("answer");
        assert_eq!(r.status, 200);
        // The phone's connection drops here.
    }
    std::thread::sleep(Duration::from_millis(300));
    let _caller = Caller::dial(&gw, "3001");
    assert!(
        gw.wait_for_log(&["no connection to the next hop"], Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert!(
        gw.wait_for_log(&["agent did not take the offer"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    assert!(
        contact_port.accept().is_err(),
        "nothing to the Contact's port"
    );
}
