//! The PostgreSQL store on a real throwaway PostgreSQL: migrations (at
//! start-up and by `callgate migrate`), the store's behaviour the dialer
//! relies on, and the cluster contract: claims by two nodes never
//! overlap and keep the line order, a node whose lease ran out can
//! neither ring nor dial (fencing), and a dead node's dial is resumed
//! with its attempt counted once.

mod common;

use callgate::store::{
    CallbackState as S, Cluster, NewCallback, PgOptions, PgStore, Store, StoreError,
};
use common::postgres::Postgres;
use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::Duration;

fn node(pg: &Postgres, db: &str, id: &str, lease_ms: i64) -> PgStore {
    PgStore::connect(&PgOptions {
        url: pg.url(db),
        node_id: id.into(),
        lease_ms,
        pool_size: 4,
    })
    .unwrap_or_else(|e| panic!("connect {id}: {e}"))
}

fn new_cb(id: &str, start: i64) -> NewCallback {
    NewCallback {
        id: id.into(),
        contact_id: id.into(),
        initial_contact_id: format!("i-{id}"),
        queue: "cbq".into(),
        number: format!("+1201555{:04}", start % 10_000),
        initial_start_ms: start,
        created_ms: 1000,
        not_before_ms: 1000,
        expires_ms: i64::MAX / 2,
        max_retries: 2,
        retry_interval_s: 600,
        attributes: BTreeMap::from([("k".to_string(), "v".to_string())]),
        dedupe: true,
    }
}

const NOW: i64 = 10_000;

#[test]
fn migrate_subcommand_is_idempotent_and_start_up_agrees() {
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("mig");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"{}\"\n[cluster]\nnode_id = \"n1\"\n",
            pg.url("mig").replace("callgate@", "callgate:not-shown@")
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
            .arg("--config")
            .arg(&cfg)
            .arg("migrate")
            .current_dir(common::repo_root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("schema up to date"), "{stdout}");
        assert!(!stdout.contains("not-shown"), "password printed: {stdout}");
    }
    assert_eq!(
        pg.query("mig", "SELECT version FROM schema_migrations"),
        [["1"]]
    );
    // A node on the migrated database migrates nothing more.
    let s = node(&pg, "mig", "n1", 5000);
    assert_eq!(s.schema_version(), 1);
    // A database from a newer callgate is refused.
    pg.query(
        "mig",
        "INSERT INTO schema_migrations VALUES (99, 0) RETURNING version",
    );
    let refused = PgStore::connect(&PgOptions {
        url: pg.url("mig"),
        node_id: "n1".into(),
        lease_ms: 5000,
        pool_size: 1,
    });
    assert!(
        refused
            .err()
            .is_some_and(|e| e.to_string().contains("schema version 99")),
        "newer schema refused"
    );
}

#[test]
fn lifecycle_history_dedupe_and_records_as_in_sqlite() {
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("life");
    let s = node(&pg, "life", "n1", 5000);
    let r = s.insert_callback(&new_cb("a", 500)).unwrap();
    assert_eq!(r.state, S::Queued);
    assert!(matches!(
        s.insert_callback(&NewCallback {
            id: "dup".into(),
            ..new_cb("a", 500)
        }),
        Err(StoreError::Duplicate(..))
    ));
    // Offering needs this node's lease: claimed first.
    assert!(matches!(
        s.transition("a", &[S::Queued], S::Offered, "offered to alice", NOW),
        Err(StoreError::LeaseLost(..))
    ));
    let claimed = s.claim(&["cbq".into()], 10, NOW).unwrap();
    assert_eq!(claimed.len(), 1);
    s.transition("a", &[S::Queued], S::Offered, "offered to alice", NOW)
        .unwrap();
    let r = s
        .begin_attempt("a", "alice", &[S::Offered], NOW + 1)
        .unwrap();
    assert_eq!((r.state, r.attempts), (S::Dialing, 1));
    let r = s
        .end_attempt(
            "a",
            "no answer (487)",
            Some(487),
            &[S::Dialing],
            S::Queued,
            NOW + 600_000,
            NOW + 2,
        )
        .unwrap();
    assert_eq!((r.state, r.not_before_ms), (S::Queued, NOW + 600_000));
    let att = s.attempts("a").unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!(att[0].sip_status, Some(487));
    let states: Vec<String> = s.history("a").unwrap().into_iter().map(|h| h.1).collect();
    assert_eq!(states, ["queued", "offered", "dialing", "queued"]);
    // A release mid-dial is not counted.
    s.transition("a", &[S::Queued], S::Offered, "again", NOW + 3)
        .unwrap();
    s.begin_attempt("a", "bob", &[S::Offered], NOW + 4).unwrap();
    let r = s
        .release(
            "a",
            &[S::Offered, S::Dialing],
            S::Queued,
            "shutdown",
            NOW + 5,
        )
        .unwrap();
    assert_eq!((r.state, r.attempts), (S::Queued, 1));
    assert_eq!(s.attempts("a").unwrap().len(), 1);
    // Contact records: filled in, never cleared.
    let mut c = callgate::store::ContactRecord {
        id: "c1".into(),
        initial_contact_id: "c1".into(),
        initiation: "inbound".into(),
        initiated_ms: 5,
        queue: Some("q".into()),
        ..Default::default()
    };
    s.upsert_contacts(std::slice::from_ref(&c)).unwrap();
    c.queue = None;
    c.disconnected_ms = Some(9);
    s.upsert_contacts(std::slice::from_ref(&c)).unwrap();
    let back = s.contact("c1").unwrap().unwrap();
    assert_eq!(
        (back.queue.as_deref(), back.disconnected_ms),
        (Some("q"), Some(9))
    );
    assert_eq!(s.contacts(10).unwrap().len(), 1);
    let page = s
        .callbacks_page(
            &callgate::store::CallbackFilter {
                pending: true,
                ..Default::default()
            },
            None,
            10,
        )
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[test]
fn two_nodes_claim_disjoint_callbacks_in_line_order() {
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("claims");
    let a = node(&pg, "claims", "a", 60_000);
    let b = node(&pg, "claims", "b", 60_000);
    // Inserted out of order; line order is the original call's start.
    for i in (0..40).rev() {
        a.insert_callback(&new_cb(&format!("cb{i:02}"), 100 + i))
            .unwrap();
    }
    let first = a.claim(&["cbq".into()], 5, NOW).unwrap();
    let ids: Vec<&str> = first.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cb00", "cb01", "cb02", "cb03", "cb04"]);
    let next = b.claim(&["cbq".into()], 3, NOW).unwrap();
    let ids: Vec<&str> = next.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cb05", "cb06", "cb07"], "the oldest not yet held");
    // Both claiming at once from threads: never the same callback twice.
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut handles = Vec::new();
    for s in [a.clone(), b.clone(), a.clone(), b.clone()] {
        handles.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..10 {
                got.extend(s.claim(&["cbq".into()], 2, NOW).unwrap());
            }
            got
        }));
    }
    let mut seen = HashSet::new();
    for h in handles {
        for c in h.join().unwrap() {
            assert!(seen.insert(c.id.clone()), "{} claimed twice", c.id);
        }
    }
    assert_eq!(seen.len(), 32, "the rest, each once");
    assert!(a.claim(&["cbq".into()], 5, NOW).unwrap().is_empty());
    // Not yet due, or another queue: not claimed.
    let mut later = new_cb("later", 1);
    later.not_before_ms = NOW + 1;
    a.insert_callback(&later).unwrap();
    assert!(a.claim(&["cbq".into()], 5, NOW).unwrap().is_empty());
    assert!(a.claim(&["other".into()], 5, NOW + 2).unwrap().is_empty());
    assert_eq!(a.claim(&["cbq".into()], 5, NOW + 2).unwrap().len(), 1);
    // Held leases are renewed; the nodes are listed.
    let held = a.renew().unwrap();
    let in_db = pg.query(
        "claims",
        "SELECT COUNT(*) FROM callbacks WHERE lease_node = 'a'",
    );
    assert_eq!(in_db, [[held.len().to_string()]]);
    assert!(held.len() >= 6, "a's first five and the late one");
    a.heartbeat(&callgate::store::NodeInfo {
        sip: "127.0.0.1:5060".into(),
        http: "127.0.0.1:8080".into(),
        started_ms: 1,
        version: "t".into(),
    })
    .unwrap();
    let nodes = a.nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].id, "a");
    assert_eq!(nodes[0].leases as usize, held.len());
}

#[test]
fn a_node_whose_lease_ran_out_cannot_dial_and_its_dial_counts_once() {
    let Some(pg) = Postgres::start() else { return };
    pg.create_db("fence");
    let a = node(&pg, "fence", "a", 400);
    let b = node(&pg, "fence", "b", 60_000);
    a.insert_callback(&new_cb("x", 1)).unwrap();
    a.insert_callback(&new_cb("y", 2)).unwrap();
    assert_eq!(a.claim(&["cbq".into()], 2, NOW).unwrap().len(), 2);
    a.transition("x", &[S::Queued], S::Offered, "offered", NOW)
        .unwrap();
    a.begin_attempt("x", "alice", &[S::Offered], NOW).unwrap();
    a.transition("y", &[S::Queued], S::Offered, "offered", NOW)
        .unwrap();
    // While a's leases live, b can claim neither.
    assert!(b.claim(&["cbq".into()], 5, NOW).unwrap().is_empty());
    // a stalls past its lease (no renewal).
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        a.renew().unwrap().is_empty(),
        "an expired lease is not revived"
    );
    let taken = b.claim(&["cbq".into()], 5, NOW).unwrap();
    let states: Vec<(String, S, u32)> = taken
        .iter()
        .map(|c| (c.id.clone(), c.state, c.attempts))
        .collect();
    assert_eq!(
        states,
        [
            ("x".to_string(), S::Dialing, 1),
            ("y".to_string(), S::Offered, 0)
        ],
        "handed over as the dead node left them"
    );
    // Fencing: a cannot dial y, nor end x's attempt, nor re-offer.
    assert!(matches!(
        a.begin_attempt("y", "alice", &[S::Offered], NOW + 1),
        Err(StoreError::LeaseLost(_, holder)) if holder == "b"
    ));
    assert!(matches!(
        a.end_attempt(
            "x",
            "answered",
            Some(200),
            &[S::Dialing],
            S::Connected,
            0,
            NOW + 1
        ),
        Err(StoreError::LeaseLost(..))
    ));
    // b resolves: x's interrupted dial counted once, y's offer none.
    let x = b
        .end_attempt(
            "x",
            "interrupted",
            None,
            &[S::Dialing],
            S::Queued,
            NOW + 600_000,
            NOW + 2,
        )
        .unwrap();
    assert_eq!((x.state, x.attempts), (S::Queued, 1));
    let y = b
        .transition("y", &[S::Offered], S::Queued, "offer interrupted", NOW + 2)
        .unwrap();
    assert_eq!((y.state, y.attempts), (S::Queued, 0));
    // b dials y; the attempt number continues from the stored count.
    b.transition("y", &[S::Queued], S::Offered, "offered", NOW + 3)
        .unwrap();
    let y = b.begin_attempt("y", "bob", &[S::Offered], NOW + 3).unwrap();
    assert_eq!(y.attempts, 1);
    let y = b
        .end_attempt(
            "y",
            "answered",
            Some(200),
            &[S::Dialing],
            S::Connected,
            0,
            NOW + 4,
        )
        .unwrap();
    assert_eq!(y.state, S::Connected);
    assert_eq!(
        pg.query(
            "fence",
            "SELECT lease_node IS NULL FROM callbacks WHERE id = 'y'"
        ),
        [["t"]],
        "a finished callback holds no lease"
    );
    // Stop and expiry are not fenced: the API answers on any node.
    a.transition(
        "x",
        &[S::Scheduled, S::Queued, S::Offered],
        S::Stopped,
        "api",
        NOW + 5,
    )
    .unwrap();
    assert!(
        b.renew().unwrap().is_empty(),
        "a stopped callback is let go"
    );
}
