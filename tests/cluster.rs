//! Callgate nodes on a real throwaway PostgreSQL, through the real
//! binary: the callback path end to end on one node; two nodes sharing
//! the database with one killed (SIGKILL) mid-run: every callback
//! connected, each number answered exactly once at the trunk, every
//! dial counted once, and no agent offered two contacts at once.

mod common;

use common::centre::{Opts, ani_flow, eventually, start_opts};
use common::http::get_json;
use common::postgres::Postgres;
use common::sipp::{self, Background, register_from_port, sipp_agent};
use common::trunk::AnsweringTrunk;
use common::{Gateway, free_udp_port};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `[store]` and `[cluster]` for node `id` on database `db`.
fn cluster_keys(pg: &Postgres, db: &str, id: &str) -> String {
    format!(
        "[store]\nurl = \"{}\"\npool_size = 4\n\n[cluster]\nnode_id = \"{id}\"\nlease_s = 3\nheartbeat_s = 1\n",
        pg.url(db)
    )
}

/// (number, state, attempts) of every callback, in line order.
fn callbacks(pg: &Postgres, db: &str) -> Vec<(String, String, u32)> {
    pg.query(
        db,
        "SELECT number, state, attempts FROM callbacks ORDER BY initial_start_ms, created_ms, id",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap_or(0)))
    .collect()
}

#[test]
fn callback_end_to_end_on_postgres() {
    if !sipp::available_with_pcap() {
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("one");
    let trunk_port = free_udp_port();
    let trunk = format!("127.0.0.1:{trunk_port}");
    let flow = ani_flow("callbacks", 0, 2, 600);
    let gw = start_opts(
        Some(&[("ani", &flow)]),
        &trunk,
        &format!(
            "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n\n{}",
            cluster_keys(&pg, "one", "solo")
        ),
        &Opts::default(),
    );
    let http = gw.http.unwrap();
    assert_eq!(get_json(http, "/health")["status"], "ok");
    common::centre::leave_callback(&gw, "4000", "+12015550123");
    assert_eq!(
        callbacks(&pg, "one"),
        [("+12015550123".to_string(), "queued".to_string(), 0)],
        "stored in PostgreSQL"
    );
    let mut customer = Background::start(
        "customer_answer.xml",
        None,
        trunk_port,
        &["-m", "1", "-set", "ring", "300", "-set", "talk", "8000"],
    );
    let mut agent = sipp_agent(&gw, 1, 15000);
    assert_eq!(
        customer.wait(Duration::from_secs(60)),
        Some(0),
        "customer scenario: {}\n{}",
        std::fs::read_to_string(&customer.errors).unwrap_or_default(),
        gw.logs()
    );
    assert!(agent.answer.wait(Duration::from_secs(20)).is_some());
    let invites = customer.received("INVITE");
    assert_eq!(invites.len(), 1, "one dial");
    assert!(
        invites[0]
            .1
            .contains("From: \"Acme Callbacks\" <sip:+12015550001@"),
        "{}",
        invites[0].1
    );
    assert!(
        eventually(Duration::from_secs(10), || callbacks(&pg, "one")
            == [("+12015550123".to_string(), "connected".to_string(), 1)]),
        "{:?}",
        callbacks(&pg, "one")
    );
    // The attempt, its node, and the released lease.
    assert_eq!(
        pg.query(
            "one",
            "SELECT a.node, a.outcome, c.lease_node IS NULL FROM attempts a JOIN callbacks c ON c.id = a.callback_id"
        ),
        [["solo", "connected", "t"]]
    );
    // The node is listed with its heartbeat; the API reads PostgreSQL.
    let nodes = get_json(http, "/api/nodes");
    assert_eq!(nodes["store"], "postgres");
    assert_eq!(nodes["this_node"], "solo");
    assert_eq!(nodes["nodes"][0]["id"], "solo");
    assert_eq!(nodes["nodes"][0]["http"], http.to_string());
    let listed = get_json(http, "/api/callbacks");
    assert_eq!(listed[0]["state"], "connected");
    // The database goes away: /health and OPTIONS probes say so, for a
    // load balancer or a proxy's dispatcher to take the node out.
    let probe = |gw: &Gateway| {
        let mut ua = common::ua::Ua::udp(gw.udp);
        let text = ua.options("");
        ua.request(&text).map(|r| r.status)
    };
    assert_eq!(probe(&gw), Some(200));
    pg.stop();
    assert!(
        eventually(Duration::from_secs(20), || {
            common::http::request(http, "GET", "/health", None, None).0 == 503
        }),
        "health"
    );
    let (_, body) = common::http::request(http, "GET", "/health", None, None);
    assert!(body.contains("degraded"), "{body}");
    assert!(
        eventually(Duration::from_secs(5), || probe(&gw) == Some(503)),
        "OPTIONS answered 503 while the database is down"
    );
}

/// Registers `user` at `gw` from a fresh port and answers offers there
/// with SIPp (ring 200 ms, talk `talk_ms`).
fn agent(gw: &Gateway, user: &str, talk_ms: u64) -> Background {
    let port = free_udp_port();
    register_from_port(gw, port, user, &format!("{user}-secret"), 600);
    Background::start(
        "agent_answer.xml",
        None,
        port,
        &[
            "-m",
            "1000",
            "-mp",
            &common::even_udp_port().to_string(),
            "-set",
            "ring",
            "200",
            "-set",
            "talk",
            &talk_ms.to_string(),
            "-set",
            "speak_after",
            "0",
        ],
    )
}

const NO_WHISPER: &str = "start = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n";

/// How many callbacks the two-node run puts through.
const CALLBACKS: usize = 60;

#[test]
fn two_nodes_one_killed_every_callback_connected_once() {
    if !sipp::available_with_pcap() {
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("two");
    let trunk = AnsweringTrunk::start(Duration::from_millis(1000), Duration::from_secs(400));
    let trunk_addr = trunk.addr.to_string();
    let flows: Vec<(&str, String)> = vec![
        ("ani", ani_flow("callbacks", 0, 3, 1)),
        (
            "agent_quiet",
            format!("type = \"agent_whisper\"\n{NO_WHISPER}"),
        ),
        (
            "customer_quiet",
            format!("type = \"outbound_whisper\"\n{NO_WHISPER}"),
        ),
    ];
    let flows: Vec<(&str, &str)> = flows.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let agents = "[[agents]]\nuser = \"carol\"\nsecret = \"carol-secret\"\nrouting_profile = \"default\"\nafter_contact_work_s = 0\n\n[[agents]]\nuser = \"dave\"\nsecret = \"dave-secret\"\nrouting_profile = \"default\"\nafter_contact_work_s = 0\n";
    let opts = Opts {
        callbacks_max: Some(CALLBACKS + 50),
        callbacks: "agent_whisper_flow = \"agent_quiet\"\noutbound_whisper_flow = \"customer_quiet\"",
        ..Opts::default()
    };
    let node = |id: &str| {
        start_opts(
            Some(&flows),
            &trunk_addr,
            &format!(
                "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n\n{agents}\n{}",
                cluster_keys(&pg, "two", id)
            ),
            &opts,
        )
    };
    let mut a = node("a");
    let b = node("b");
    // Half the callbacks are left on each node, before any agent is there.
    for (gw, first) in [(&a, 0), (&b, CALLBACKS / 2)] {
        let csv = gw.dir.path().join("numbers.csv");
        let mut text = String::from("SEQUENTIAL\n");
        for i in first..first + CALLBACKS / 2 {
            text.push_str(&format!("+1201555{:04}\n", 2000 + i));
        }
        std::fs::write(&csv, text).unwrap();
        let n = (CALLBACKS / 2).to_string();
        let run = sipp::run(
            "caller_ani.xml",
            gw.udp,
            &[
                "-s",
                "4000",
                "-inf",
                csv.to_str().unwrap(),
                "-m",
                &n,
                "-r",
                "20",
                "-l",
                "20",
                "-recv_timeout",
                "20000",
            ],
        );
        assert!(run.ok(), "{}\n{}", run.errors, run.stdout);
    }
    assert!(
        eventually(Duration::from_secs(20), || callbacks(&pg, "two").len()
            == CALLBACKS),
        "{} callbacks",
        callbacks(&pg, "two").len()
    );
    let transactions = || -> i64 {
        pg.query(
            "two",
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'two'",
        )[0][0]
            .parse()
            .unwrap_or(0)
    };
    let (tx_before, started) = (transactions(), std::time::Instant::now());
    // alice and bob work on node a, carol and dave on node b.
    let _agents = [
        agent(&a, "alice", 2000),
        agent(&a, "bob", 2000),
        agent(&b, "carol", 2000),
        agent(&b, "dave", 2000),
    ];
    // Mid-run, while node a is dialling a customer (whose phone rings for
    // a second at the trunk): SIGKILL.
    let connected = |pg: &Postgres| {
        callbacks(pg, "two")
            .iter()
            .filter(|c| c.1 == "connected")
            .count()
    };
    assert!(
        eventually(Duration::from_secs(120), || connected(&pg) >= CALLBACKS / 4),
        "{:?}\nnode a:\n{}",
        callbacks(&pg, "two"),
        a.logs()
    );
    let held_by_a = || {
        pg.query(
            "two",
            "SELECT id FROM callbacks WHERE lease_node = 'a' AND state = 'dialing'",
        )
    };
    assert!(
        eventually(Duration::from_secs(30), || !held_by_a().is_empty()),
        "node a never dialled"
    );
    a.kill9();
    let orphans: Vec<(String, String)> = pg
        .query(
            "two",
            "SELECT id, state FROM callbacks WHERE lease_node = 'a' AND state IN ('scheduled', 'queued', 'offered', 'dialing')",
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    eprintln!("node a held when killed: {orphans:?}");
    assert!(!orphans.is_empty(), "node a held callbacks when killed");
    assert!(
        eventually(Duration::from_secs(240), || connected(&pg) == CALLBACKS),
        "{:?}\nnode b:\n{}",
        callbacks(&pg, "two"),
        b.logs()
    );
    // Information, not asserted (benches/ measures): how long it took
    // and the database transactions per callback (statistics are
    // reported to pg_stat_database with up to ~0.5 s delay).
    std::thread::sleep(Duration::from_millis(1500));
    eprintln!(
        "{CALLBACKS} callbacks connected in {:.1} s with a node killed; {:.1} database transactions per callback",
        started.elapsed().as_secs_f64(),
        (transactions() - tx_before) as f64 / CALLBACKS as f64
    );
    // The orphans were resumed by b.
    assert!(
        b.logs().contains("callback claimed"),
        "node b claims: {}",
        b.logs()
    );
    for (id, _) in &orphans {
        let holder = pg.query(
            "two",
            &format!("SELECT state FROM callbacks WHERE id = '{id}'"),
        );
        assert_eq!(holder, [["connected"]], "{id}");
    }

    // At the trunk: every number answered exactly once; every dial the
    // trunk saw is an attempt counted once in the database.
    std::thread::sleep(Duration::from_secs(1));
    let log = trunk.log();
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for (number, _) in &log.answered {
        *answered.entry(number.clone()).or_default() += 1;
    }
    let mut dialled: HashMap<String, u32> = HashMap::new();
    for (number, _) in &log.invites {
        *dialled.entry(number.clone()).or_default() += 1;
    }
    let rows = callbacks(&pg, "two");
    assert_eq!(answered.len(), CALLBACKS, "every number answered");
    for (number, state, attempts) in &rows {
        assert_eq!(state, "connected");
        assert_eq!(answered.get(number), Some(&1), "{number} answered once");
        assert_eq!(
            dialled.get(number),
            Some(attempts),
            "{number}: dials at the trunk = attempts counted"
        );
    }
    // No agent had two offers at once: each agent's legs (from the offer
    // to the end) never overlap. A leg node a never closed ends at +inf:
    // its agent is never offered anything again.
    let legs = pg.query(
        "two",
        "SELECT agent, initiated_ms, COALESCE(disconnected_ms, 9223372036854775807) FROM contacts
         WHERE initiation = 'agent_leg' ORDER BY agent, initiated_ms",
    );
    assert!(legs.len() >= CALLBACKS, "{} agent legs", legs.len());
    for w in legs.windows(2) {
        if w[0][0] == w[1][0] {
            let end: i64 = w[0][2].parse().unwrap();
            let next: i64 = w[1][1].parse().unwrap();
            assert!(
                end <= next,
                "{} offered two contacts at once: {w:?}",
                w[0][0]
            );
        }
    }
    // A dial node a had in flight was resumed by b as an attempt made.
    if orphans.iter().any(|o| o.1 == "dialing") {
        assert!(
            b.logs().contains("dial interrupted: counted as an attempt"),
            "{}",
            b.logs()
        );
    }
}

/// Registers `user` through the proxy at `kam` from 127.0.0.1:`port`.
fn register_through(kam: std::net::SocketAddr, port: u16, user: &str) -> Option<u16> {
    let mut ua = common::ua::Ua::udp_from(&format!("127.0.0.1:{port}"), kam);
    let mut reg = common::ua::Registration::new(&mut ua, user, &format!("{user}-secret"));
    reg.register(&mut ua, 600).map(|r| r.status)
}

/// Whether `user` is registered with the node at `http`.
fn registered_at(http: std::net::SocketAddr, user: &str) -> bool {
    get_json(http, "/api/agents").as_array().is_some_and(|a| {
        a.iter()
            .any(|v| v["user"] == user && v["registered"] == true)
    })
}

/// SIPp answering offers on `port` (already registered from there).
fn answering(port: u16) -> Background {
    Background::start(
        "agent_answer.xml",
        None,
        port,
        &[
            "-m",
            "1000",
            "-mp",
            &common::even_udp_port().to_string(),
            "-set",
            "ring",
            "200",
            "-set",
            "talk",
            "2000",
            "-set",
            "speak_after",
            "0",
        ],
    )
}

#[test]
fn two_nodes_behind_kamailio_dispatcher_survive_a_node_killed() {
    if !sipp::available_with_pcap() || !common::kamailio::available() {
        return;
    }
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("kam");
    let trunk = AnsweringTrunk::start(Duration::from_millis(1000), Duration::from_secs(400));
    let trunk_addr = trunk.addr.to_string();
    let flows: Vec<(&str, String)> = vec![
        ("ani", ani_flow("callbacks", 0, 3, 1)),
        (
            "agent_quiet",
            format!("type = \"agent_whisper\"\n{NO_WHISPER}"),
        ),
        (
            "customer_quiet",
            format!("type = \"outbound_whisper\"\n{NO_WHISPER}"),
        ),
    ];
    let flows: Vec<(&str, &str)> = flows.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let agents = "[[agents]]\nuser = \"carol\"\nsecret = \"carol-secret\"\nrouting_profile = \"default\"\nafter_contact_work_s = 0\n\n[[agents]]\nuser = \"dave\"\nsecret = \"dave-secret\"\nrouting_profile = \"default\"\nafter_contact_work_s = 0\n";
    // SIPp's agent BYE, sent without the Route set, does not come back
    // through the proxy: the bridge ends on the customer leg's silence
    // (the trunk stand-in sends no RTP) after rtp.timeout_s instead.
    let opts = Opts {
        callbacks_max: Some(100),
        callbacks: "agent_whisper_flow = \"agent_quiet\"\noutbound_whisper_flow = \"customer_quiet\"",
        rtp: "timeout_s = 3",
        ..Opts::default()
    };
    let node = |id: &str| {
        start_opts(
            Some(&flows),
            &trunk_addr,
            &format!(
                "[[numbers]]\nnumber = \"4000\"\nflow = \"ani\"\n\n{agents}\n[security]\ntrusted = [\"127.0.0.1/32\"]\n\n{}",
                cluster_keys(&pg, "kam", id)
            ),
            &opts,
        )
    };
    let mut nodes = [node("a"), node("b")];
    let list = nodes[0].dir.path().join("nodes.list");
    std::fs::write(
        &list,
        format!("1 sip:{}\n1 sip:{}\n", nodes[0].udp, nodes[1].udp),
    )
    .unwrap();
    let kam = common::kamailio::Kamailio::start(
        &common::repo_root().join("contrib/kamailio/callgate-cluster.cfg"),
        // One worker: SIPp's caller scenario aborts on a 180 that two
        // workers forwarded after the 200.
        &[
            format!("DS_LIST=\"{}\"", list.display()),
            "WORKERS=1".into(),
        ],
    );
    // Agents register through the proxy; each lands on one node.
    let users = ["alice", "bob", "carol", "dave"];
    let mut phones = Vec::new();
    for user in users {
        let port = free_udp_port();
        assert_eq!(register_through(kam.udp, port, user), Some(200), "{user}");
        phones.push((user, port, Some(answering(port))));
    }
    let https: Vec<_> = nodes.iter().map(|n| n.http.unwrap()).collect();
    for user in users {
        let on_one = || https.iter().filter(|h| registered_at(**h, user)).count() == 1;
        assert!(
            eventually(Duration::from_secs(5), on_one),
            "{user} on one node"
        );
    }
    // Callers reach the nodes through the proxy, round robin.
    const N: usize = 30;
    let csv = nodes[0].dir.path().join("numbers.csv");
    let mut text = String::from("SEQUENTIAL\n");
    for i in 0..N {
        text.push_str(&format!("+1201555{:04}\n", 3000 + i));
    }
    std::fs::write(&csv, text).unwrap();
    let n = N.to_string();
    let run = sipp::run(
        "caller_ani.xml",
        kam.udp,
        &[
            "-s",
            "4000",
            "-inf",
            csv.to_str().unwrap(),
            "-m",
            &n,
            "-r",
            "10",
            "-l",
            "10",
            "-recv_timeout",
            "20000",
        ],
    );
    assert!(run.ok(), "{}\n{}\n{}", run.errors, run.stdout, kam.logs());
    assert!(
        eventually(Duration::from_secs(20), || callbacks(&pg, "kam").len() == N),
        "{:?}",
        callbacks(&pg, "kam")
    );
    let created_on: Vec<String> = pg
        .query(
            "kam",
            "SELECT DISTINCT node FROM contacts WHERE initiation = 'inbound' ORDER BY node",
        )
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(created_on, ["a", "b"], "calls spread over both nodes");
    // Kill whichever node is dialling a customer.
    let mut victim = None;
    assert!(
        eventually(Duration::from_secs(120), || {
            victim = pg
                .query(
                    "kam",
                    "SELECT lease_node FROM callbacks WHERE state = 'dialing' LIMIT 1",
                )
                .first()
                .map(|r| r[0].clone());
            victim.is_some()
        }),
        "nobody dials: {:?}",
        callbacks(&pg, "kam")
    );
    let victim = victim.unwrap();
    let (dead, live) = if victim == "a" { (0, 1) } else { (1, 0) };
    nodes[dead].kill9();
    // The dead node's agents register again: the proxy finds it out
    // (OPTIONS probes, or the REGISTER timing out) and sends them to the
    // live node.
    for (user, port, sipp) in phones.iter_mut() {
        if registered_at(https[live], user) {
            continue;
        }
        let (user, port) = (*user, *port);
        // Its SIPp frees the port for the REGISTER, then answers again.
        drop(sipp.take());
        assert!(
            eventually(Duration::from_secs(30), || {
                register_through(kam.udp, port, user) == Some(200)
                    && registered_at(https[live], user)
            }),
            "{user} re-registered with the live node\n{}",
            kam.logs()
        );
        *sipp = Some(answering(port));
    }
    assert!(
        eventually(Duration::from_secs(240), || callbacks(&pg, "kam")
            .iter()
            .all(|c| c.1 == "connected")),
        "{:?}\nlive node:\n{}\nkamailio:\n{}",
        callbacks(&pg, "kam"),
        nodes[live].logs(),
        kam.logs()
    );
    std::thread::sleep(Duration::from_secs(1));
    let log = trunk.log();
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for (number, _) in &log.answered {
        *answered.entry(number.clone()).or_default() += 1;
    }
    let mut dialled: HashMap<String, u32> = HashMap::new();
    for (number, _) in &log.invites {
        *dialled.entry(number.clone()).or_default() += 1;
    }
    for (number, _, attempts) in callbacks(&pg, "kam") {
        assert_eq!(answered.get(&number), Some(&1), "{number} answered once");
        assert_eq!(
            dialled.get(&number),
            Some(&attempts),
            "{number}: dials = attempts"
        );
    }
    // Offers reached the agents through the proxy (their Path).
    assert!(
        kam.logs().contains("cluster: INVITE sip:alice@")
            || kam.logs().contains("cluster: INVITE sip:bob@")
            || kam.logs().contains("cluster: INVITE sip:carol@")
            || kam.logs().contains("cluster: INVITE sip:dave@"),
        "{}",
        kam.logs()
    );
}
