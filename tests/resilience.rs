//! What a crash, a restart or a hostile network does to calls and
//! callbacks, through the real binary.

mod common;

use common::Gateway;
use common::caller::Caller;
use common::centre::{ani_flow, contacts, eventually, start};
use std::time::Duration;

const WAIT: &str = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\nmode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"e\"\n[blocks.e]\ntype = \"disconnect\"\n";

/// A call cut by kill -9 leaves a record (written when the call began,
/// updated as it went), closed as "interrupted" at the next start.
#[test]
fn kill_9_mid_call_leaves_a_truthful_record() {
    let mut gw = start(
        Some(&[("wait", WAIT)]),
        "127.0.0.1:5994",
        "[[numbers]]\nnumber = \"2002\"\nflow = \"wait\"\n",
    );
    let mut caller = Caller::dial(&gw, "2002");
    caller.rtp.send_silence(caller.to, 10);
    assert!(
        eventually(Duration::from_secs(5), || contacts(&gw)
            .iter()
            .any(|c| c.3.as_deref() == Some("support"))),
        "the record shows the caller queued while the call is up: {:?}",
        contacts(&gw)
    );
    gw.kill9();
    let config = std::fs::read_to_string(&gw.config_path).expect("config");
    let gw2 = Gateway::start_with_config(tempfile::tempdir().expect("tempdir"), &config);
    let records = contacts(&gw);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.2, "inbound");
    assert_eq!(r.3.as_deref(), Some("support"));
    assert_eq!(r.6.as_deref(), Some("interrupted"), "{r:?}");
    drop(gw2);
}

/// SIGTERM with 20 callers waiting and two callbacks ringing customers:
/// every caller gets a BYE, each ringing dial a CANCEL, the callbacks go
/// back to their queue with no attempt used, and callgate exits 0.
#[test]
fn sigterm_ends_every_call_and_gives_ringing_callbacks_back() {
    use callgate::sip::message::{MessageExt, Method, Response};
    use common::agent::{Agent, Answer};
    use common::ua::Ua;
    // The trunk: rings, never answers.
    let mut trunk = Ua::udp_from("127.0.0.1:0", "127.0.0.1:9".parse().unwrap());
    let trunk_addr = trunk.local.to_string();
    let holding = WAIT.replace("queue = \"support\"", "queue = \"holding\"");
    let mut gw = common::centre::start_opts(
        Some(&[
            ("wait", &holding),
            ("ani", &ani_flow("callbacks", 0, 2, 600)),
        ]),
        &trunk_addr,
        "[[numbers]]\nnumber = \"2002\"\nflow = \"wait\"\n[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n[[queues]]\nname = \"holding\"\nmax_contacts = 50\n",
        &common::centre::Opts::default(),
    );
    trunk.target = gw.udp;
    // Two callbacks, accepted by two agents, ringing the customers.
    for (i, number) in ["+12015550161", "+12015550162"].iter().enumerate() {
        let ua = Ua::udp_from(&format!("127.0.3.{}:0", i + 1), gw.udp);
        common::centre::leave_callback_via(ua, "4000", number);
    }
    let mut agents: Vec<Agent> = [("alice", "alice-secret"), ("bob", "bob-secret")]
        .iter()
        .map(|(u, s)| Agent::register(gw.udp, u, s))
        .collect();
    for a in agents.iter_mut() {
        a.offer(Duration::from_secs(10), Answer::Accept(0))
            .expect("the callback is offered");
    }
    let mut ringing = Vec::new();
    while ringing.len() < 2 {
        let inv = trunk
            .recv_request(Duration::from_secs(15))
            .expect("the customer is dialled");
        if inv.method == Method::Invite {
            let r = Response::to_request(&inv, 180, Some("cust"));
            trunk.send_raw(&r.encode());
            ringing.push(inv);
        }
    }
    // Twenty callers waiting in a queue no agent works.
    let mut callers: Vec<Caller> = (0..20)
        .map(|i| {
            let ua = Ua::udp_from(&format!("127.0.2.{}:0", i + 1), gw.udp);
            let mut c = Caller::dial_via(ua, "2002");
            c.rtp.send_silence(c.to, 1);
            c
        })
        .collect();
    assert!(eventually(Duration::from_secs(5), || contacts(&gw)
        .iter()
        .filter(|c| c.3.as_deref() == Some("holding"))
        .count()
        == 20));

    gw.sigterm();
    // The trunk hears CANCEL for both dials and answers them properly.
    let mut cancels = 0;
    while cancels < 2 {
        let Some(req) = trunk.recv_request(Duration::from_secs(10)) else {
            break;
        };
        if req.method == Method::Cancel {
            cancels += 1;
            trunk.respond_to(&req, 200);
            if let Some(inv) = ringing.iter().find(|i| i.call_id() == req.call_id()) {
                let r = Response::to_request(inv, 487, Some("cust"));
                trunk.send_raw(&r.encode());
            }
        }
    }
    assert_eq!(cancels, 2, "each ringing dial is cancelled");
    assert_eq!(gw.wait_exit(Duration::from_secs(20)), Some(0), "exit 0");
    let byes = callers
        .iter_mut()
        .map(|c| c.ua.recv_request(Duration::from_millis(500)))
        .filter(|bye| bye.as_ref().is_some_and(|r| r.method == Method::Bye))
        .count();
    assert_eq!(byes, 20, "a BYE for every waiting caller");
    for a in agents.iter_mut() {
        assert!(
            a.expect(Method::Bye, Duration::from_millis(500), None)
                .is_some(),
            "{} gets a BYE",
            a.user
        );
    }
    let rows = common::centre::callbacks(&gw);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(
            (r.1.as_str(), r.2),
            ("queued", 0),
            "back in the queue, no attempt used: {r:?}"
        );
    }
    let records = contacts(&gw);
    let closed = records
        .iter()
        .filter(|c| c.3.as_deref() == Some("holding"))
        .filter(|c| c.6.as_deref() == Some("gateway shut down"))
        .count();
    assert_eq!(closed, 20, "every caller's record closed: {records:?}");
}
