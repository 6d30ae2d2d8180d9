//! Toll fraud through the real binary (issue 9): callers keying numbers
//! callgate must never dial, agents pointing offers at the trunk, and
//! callbacks stored under looser rules. The trunk is a UDP socket that
//! records everything it receives.

mod common;

use callgate::media::g711::Law;
use callgate::sip::message::{Method, Request, SipMessage, parse_datagram};
use common::agent::{Agent, Answer};
use common::caller::Caller;
use common::centre::{Opts, callbacks, eventually, start_opts};
use common::rtp::{best_correlation, decode, read_wav};
use common::ua::{Registration, Ua};
use common::{Gateway, repo_root};
use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The number rules of the shipped `config/callgate.toml` (no
/// `allowed_regions`: the dialer's country, US).
const SHIPPED_RULES: &str =
    "allowed_prefixes = [\"+1\"]\nblocked_prefixes = [\"+1900\", \"+1976\"]";

/// Records every SIP request a fake trunk receives.
struct Trunk {
    addr: std::net::SocketAddr,
    sock: UdpSocket,
    got: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Trunk {
    fn listen(ip: &str) -> Trunk {
        let sock = UdpSocket::bind((ip, 0)).expect("trunk bind");
        let addr = sock.local_addr().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let reader = sock.try_clone().unwrap();
        std::thread::spawn(move || {
            let sock = reader;
            let mut buf = [0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, _)) = sock.recv_from(&mut buf)
                    && let Ok(SipMessage::Request(r)) = parse_datagram(&buf[..n])
                {
                    g.lock().unwrap().push(r);
                }
            }
        });
        Trunk {
            addr,
            sock,
            got,
            stop,
        }
    }

    /// The Request-URI user of each distinct INVITE (retransmissions
    /// counted once).
    fn dialled(&self) -> BTreeSet<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == Method::Invite)
            .map(|r| r.uri.user.clone().unwrap_or_default())
            .collect()
    }

    fn requests(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

impl Drop for Trunk {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An agent that accepts every offer until dropped.
fn accepting_agent(gw: &Gateway) -> Arc<AtomicBool> {
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let _ = alice.offer(Duration::from_millis(300), Answer::Accept(0));
        }
    });
    stop
}

/// The shipped callback flow on number 1000 (first attempt after 1 s
/// instead of 99), with the dialer's number rules `rules`.
fn shipped_flow_gateway(trunk: &Trunk, rules: &str) -> Gateway {
    let flow = std::fs::read_to_string(repo_root().join("config/flows/callback_request.toml"))
        .unwrap()
        .replace("initial_delay_s = 99", "initial_delay_s = 1");
    start_opts(
        Some(&[("callback_request", &flow)]),
        &trunk.addr.to_string(),
        "[[numbers]]\nnumber = \"1000\"\nflow = \"callback_request\"\n",
        &Opts {
            rules: Some(rules),
            ring_timeout_s: Some(3),
            ..Opts::default()
        },
    )
}

#[derive(Clone, Copy)]
enum Input {
    /// RFC 4733 key presses ('A'..'D' are events 12..15).
    Dtmf(&'static str),
    /// SIP INFO application/dtmf-relay, one request per key.
    Info(&'static str),
}

fn event(k: char) -> u8 {
    match k {
        '*' => 10,
        '#' => 11,
        'A'..='D' => k as u8 - b'A' + 12,
        d => d.to_digit(10).expect("key") as u8,
    }
}

fn info(c: &mut Caller, key: char) {
    let body = format!("Signal={key}\r\nDuration=160\r\n");
    c.call.cseq += 1;
    let branch = c.ua.unique("z9hG4bKinfo");
    let text = format!(
        "INFO {rt} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch={branch}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} INFO\r\nMax-Forwards: 70\r\nContent-Type: application/dtmf-relay\r\nContent-Length: {len}\r\n\r\n{body}",
        rt = c.call.remote_target,
        local = c.ua.local_hostport(),
        from = c.call.from,
        to = c.call.to,
        cid = c.call.call_id,
        cseq = c.call.cseq,
        len = body.len(),
    );
    c.ua.send_raw(text.as_bytes());
    let r =
        c.ua.final_response(Duration::from_secs(5))
            .expect("INFO answered");
    assert_eq!(r.status, 200);
    c.rtp.send_silence(c.to, 3);
}

/// One caller: keys `input` into the shipped flow, records what it hears
/// meanwhile and for 5 s after, then presses 1 (which confirms whatever
/// was read back) and hangs up. True if it heard the invalid-number
/// prompt.
fn caller_hears_invalid(gw: &Gateway, input: Input) -> bool {
    let mut c = Caller::dial(gw, "1000");
    // Received on another thread: a long input would overflow the socket
    // buffer and lose exactly the prompt we listen for.
    let listener = c.rtp.sender();
    let keys = match input {
        Input::Dtmf(k) | Input::Info(k) => k.len(),
    };
    let listen = Duration::from_millis(600 + 260 * keys as u64) + Duration::from_secs(5);
    let heard = std::thread::spawn(move || listener.receive(listen));
    c.rtp.send_silence(c.to, 20);
    match input {
        Input::Dtmf(k) => {
            for key in k.chars() {
                c.rtp.press(c.to, 101, event(key), false, false);
                c.rtp.send_silence(c.to, 2);
            }
        }
        Input::Info(k) => k.chars().for_each(|key| info(&mut c, key)),
    }
    let heard = heard.join().unwrap();
    c.rtp.press(c.to, 101, 1, false, false);
    c.rtp.send_silence(c.to, 100);
    let _ = c.ua.in_dialog(&mut c.call, "BYE", None);
    // (Correlating is slow in a debug build: only once the call is over.)
    let audio = decode(&heard, 0, Law::Ulaw);
    let prompt = read_wav(&repo_root().join("prompts/invalid_number.wav"));
    let (score, _) = best_correlation(&audio, &prompt);
    score > 0.9
}

/// Issue 9, found defect 1 and the "done when" list: none of these
/// reaches the trunk, each caller hears the invalid-number branch; a valid
/// US number is still dialled.
#[test]
fn numbers_never_to_dial_are_refused_at_entry_and_never_reach_the_trunk() {
    let trunk = Trunk::listen("127.0.0.1");
    let gw = shipped_flow_gateway(&trunk, SHIPPED_RULES);
    let _agent = accepting_agent(&gw);
    let refused: Vec<(&str, Input)> = vec![
        ("Jamaica +1876", Input::Dtmf("8766012345#")),
        ("Dominican Republic +1809", Input::Dtmf("8092201234#")),
        ("British Virgin Islands +1284", Input::Dtmf("2844941234#")),
        ("Grenada +1473", Input::Dtmf("4734401234#")),
        ("Dominica +1767", Input::Dtmf("7672351234#")),
        ("Canada (US only by default)", Input::Dtmf("4165550123#")),
        ("premium rate +1900", Input::Dtmf("9005550123#")),
        ("+1976", Input::Dtmf("9765550123#")),
        ("toll free +1800", Input::Dtmf("8005550123#")),
        ("UK +44 via 011", Input::Dtmf("011442079460000#")),
        ("911", Input::Dtmf("911#")),
        (
            "50 digits",
            Input::Dtmf(concat!(
                "55555555555555555555555555555555555555555555555555",
                "#"
            )),
        ),
        ("letters (RFC 4733 A-D)", Input::Dtmf("ABCD#")),
        ("letters (SIP INFO)", Input::Info("ABDC#")),
        ("empty input", Input::Dtmf("#")),
    ];
    let valid = ("US", Input::Dtmf("2015550123#"));
    let results: Vec<(&str, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = refused
            .iter()
            .copied()
            .chain([valid])
            .map(|(name, input)| {
                let gw = &gw;
                (name, s.spawn(move || caller_hears_invalid(gw, input)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| (n, h.join().expect("caller thread")))
            .collect()
    });
    let deaf: Vec<&str> = results
        .iter()
        .filter(|(n, heard)| *n != valid.0 && !heard)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        deaf.is_empty(),
        "these callers did not hear the invalid-number prompt: {deaf:?}\n{}",
        gw.logs()
    );
    assert!(
        !results.iter().any(|(n, heard)| *n == valid.0 && *heard),
        "the valid number was called invalid"
    );
    // The valid callback is offered, accepted and dialled; nothing else.
    assert!(
        eventually(Duration::from_secs(20), || !trunk.dialled().is_empty()),
        "the valid number was never dialled: {}",
        gw.logs()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        trunk.dialled(),
        BTreeSet::from(["+12015550123".to_string()]),
        "only the valid US number reaches the trunk"
    );
    let numbers: Vec<String> = callbacks(&gw).into_iter().map(|c| c.0).collect();
    assert_eq!(numbers, vec!["+12015550123"], "only one callback stored");
}

/// With `allowed_regions = ["US", "CA"]` a Canadian number is dialled
/// (and a Caribbean one still is not).
#[test]
fn allowed_regions_us_and_ca_dial_canada() {
    let trunk = Trunk::listen("127.0.0.1");
    let rules = format!("allowed_regions = [\"US\", \"CA\"]\n{SHIPPED_RULES}");
    let gw = shipped_flow_gateway(&trunk, &rules);
    let _agent = accepting_agent(&gw);
    let (ca, jm) = std::thread::scope(|s| {
        let ca = s.spawn(|| caller_hears_invalid(&gw, Input::Dtmf("4165550123#")));
        let jm = s.spawn(|| caller_hears_invalid(&gw, Input::Dtmf("8766012345#")));
        (ca.join().unwrap(), jm.join().unwrap())
    });
    assert!(!ca, "Canada accepted");
    assert!(jm, "Jamaica still refused");
    assert!(
        eventually(Duration::from_secs(20), || trunk
            .dialled()
            .contains("+14165550123")),
        "Canadian number dialled: {}",
        gw.logs()
    );
    assert_eq!(trunk.dialled().len(), 1);
}

/// A callback stored under looser rules (Canada allowed) is refused after
/// a restart with the default rules: marked failed with the reason, never
/// dialled, no agent rung.
#[test]
fn callbacks_stored_under_looser_rules_are_refused_after_a_restart() {
    let trunk = Trunk::listen("127.0.0.1");
    let loose = format!("allowed_regions = [\"US\", \"CA\"]\n{SHIPPED_RULES}");
    let mut gw = shipped_flow_gateway(&trunk, &loose);
    // No agent here: the callback is stored, not dialled.
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    assert!(!caller_hears_invalid(&gw, Input::Dtmf("4165550123#")));
    assert!(
        eventually(Duration::from_secs(5), || callbacks(&gw).len() == 1),
        "{}",
        gw.logs()
    );
    gw.kill9();
    let strict = config.replace("allowed_regions = [\"US\", \"CA\"]\n", "");
    assert_ne!(strict, config);
    let gw2 = Gateway::start_with_config(tempfile::tempdir().unwrap(), &strict);
    let mut alice = Agent::register(gw2.udp, "alice", "alice-secret");
    assert!(
        gw2.wait_for_log(
            &["callback refused by the dial rules"],
            Duration::from_secs(10)
        ),
        "{}",
        gw2.logs()
    );
    assert!(
        alice
            .offer(Duration::from_secs(4), Answer::Accept(0))
            .is_none(),
        "no agent is offered a callback that cannot be dialled"
    );
    assert_eq!(trunk.requests(), 0, "nothing reached the trunk");
    let rows = callbacks(&gw);
    assert_eq!(rows[0].1, "failed", "{rows:?}");
    let list = common::http::get_json(gw2.http.unwrap(), "/api/callbacks");
    let id = list[0]["id"].as_str().expect("callback id").to_string();
    let one = common::http::get_json(gw2.http.unwrap(), &format!("/api/callbacks/{id}"));
    let last = &one["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["state"], "failed", "{one}");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .starts_with("refused by the dial rules: +14165550123 is in region CA"),
        "{one}"
    );
}

fn register_contact(ua: &mut Ua, contact: &str) -> u16 {
    let mut reg = Registration::new(ua, "alice", "alice-secret");
    reg.contact = contact.to_string();
    reg.register(ua, 600).expect("answered").status
}

const WAIT_FLOW: &str = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\nmode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n";

/// A gateway whose number 3001 puts callers straight into the support
/// queue.
fn queue_gateway(trunk: &Trunk) -> Gateway {
    start_opts(
        Some(&[("wait", WAIT_FLOW)]),
        &trunk.addr.to_string(),
        "[[numbers]]\nnumber = \"3001\"\nflow = \"wait\"\n",
        &Opts::default(),
    )
}

/// Issue 9, found defect 2: an agent registers a premium-rate Contact at
/// the trunk's address. The REGISTER is refused (403, one WARN line) and
/// no INVITE reaches the trunk; nor do the variants.
#[test]
fn premium_contact_at_the_trunk_is_refused_and_the_trunk_gets_nothing() {
    let trunk = Trunk::listen("127.0.0.1");
    let gw = queue_gateway(&trunk);
    // A caller waits in the queue, so that any binding gets an offer.
    let _caller = Caller::dial(&gw, "3001");
    let mut ua = Ua::udp(gw.udp);
    let at_trunk = format!("<sip:+19005550100@{};user=phone>", trunk.addr);
    assert_eq!(register_contact(&mut ua, &at_trunk), 403);
    assert!(
        gw.wait_for_log(
            &[
                "WARN",
                "registration refused",
                "user=\"alice\"",
                "outbound target"
            ],
            Duration::from_secs(2)
        ),
        "{}",
        gw.logs()
    );
    for contact in [
        // Any user at the trunk, and a number at some other host.
        format!("<sip:alice@{}>", trunk.addr),
        "<sip:+19005550100@127.0.0.9:5080;user=phone>".to_string(),
    ] {
        assert_eq!(register_contact(&mut ua, &contact), 403, "{contact}");
    }
    // A REGISTER sent from the trunk's own address, with good credentials
    // (the nonce fetched from another socket of the same host), is
    // refused as well: offers would go back to its source.
    let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
    let lines = "Contact: <sip:alice@127.0.0.1:5999>\n";
    let first = reg.request(&mut ua, lines, Some(600), None);
    let challenge = ua.request(&first).expect("401");
    assert_eq!(challenge.status, 401);
    let auth = common::ua::authorization(
        &challenge,
        None,
        "alice",
        "alice-secret",
        "REGISTER",
        &format!("sip:{}", gw.udp),
        1,
    )
    .unwrap();
    let second = reg
        .request(&mut ua, lines, Some(600), Some(&auth))
        .replace('\n', "\r\n");
    trunk.sock.send_to(second.as_bytes(), gw.udp).unwrap();
    assert!(
        gw.wait_for_log(
            &["registration refused", "REGISTER from an outbound target"],
            Duration::from_secs(3)
        ),
        "{}",
        gw.logs()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!gw.logs().contains("binding added"), "{}", gw.logs());
    assert_eq!(trunk.requests(), 0, "no INVITE reached the trunk");
}

/// The offer goes back the way the REGISTER came, not to the Contact's
/// address (here another socket of the same host).
#[test]
fn offers_go_to_the_registering_address_not_the_contact() {
    let trunk = Trunk::listen("127.0.0.1");
    let gw = queue_gateway(&trunk);
    let elsewhere = Trunk::listen("127.0.0.1");
    let mut ua = Ua::udp(gw.udp);
    let contact = format!("<sip:alice@{}>", elsewhere.addr);
    assert_eq!(register_contact(&mut ua, &contact), 200);
    let _caller = Caller::dial(&gw, "3001");
    let invite = loop {
        let r = ua
            .recv_request(Duration::from_secs(10))
            .expect("the offer reaches the registering socket");
        if r.method == Method::Invite {
            break r;
        }
    };
    assert_eq!(
        invite.uri.to_string(),
        format!("sip:alice@{}", elsewhere.addr),
        "Request-URI is the Contact"
    );
    assert_eq!(
        elsewhere.requests(),
        0,
        "nothing sent to the Contact's address"
    );
    assert_eq!(trunk.requests(), 0);
}
