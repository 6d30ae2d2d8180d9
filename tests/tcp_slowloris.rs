//! TCP connection slots through the real binary: one address holding
//! thousands of slow sockets (slow-loris) cannot lock other clients out;
//! the per-source cap, its `security.trusted` exemption and the global
//! cap; callgate raises its own open-file limit.

mod common;

use common::Gateway;
use common::tcp::{can_bind, connect_from, raise_nofile};
use common::ua::{Registration, Ua};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const TRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));

fn loopback_aliases() -> bool {
    [ATTACKER, CLIENT, TRUSTED, OTHER].into_iter().all(can_bind)
}

/// An OPTIONS over a new TCP connection from `source`: its status, or
/// `None` when the connection was refused or closed.
fn options_from(source: IpAddr, gw: &Gateway) -> Option<u16> {
    let mut ua = Ua::tcp_from(source, gw.tcp)?;
    let o = ua.options("");
    ua.request(&o).map(|r| r.status)
}

/// One open connection from `source` that has been answered once.
fn held_from(source: IpAddr, gw: &Gateway) -> Option<Ua> {
    let mut ua = Ua::tcp_from(source, gw.tcp)?;
    let o = ua.options("");
    (ua.request(&o)?.status == 200).then_some(ua)
}

#[test]
fn thousands_of_slow_sockets_from_one_address_do_not_lock_out_a_register() {
    assert!(
        loopback_aliases(),
        "127.0.0.2-5 must be bindable (Linux loopback)"
    );
    const SOCKETS: usize = 5000;
    let limit = raise_nofile();
    assert!(
        limit >= 2 * SOCKETS as u64 + 512,
        "open-file limit {limit} too low for {SOCKETS} sockets"
    );
    // Shipped defaults for every TCP limit.
    let gw = Gateway::start("");
    let target = gw.tcp;
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    // The attacker: 5,000 sockets from one address, each sending one byte
    // of an endless request every 3 s; a socket callgate closes is
    // reopened, as a real attacker would.
    let attacker = {
        let (stop, connected, rounds) = (stop.clone(), connected.clone(), rounds.clone());
        std::thread::spawn(move || {
            let mut socks: Vec<Option<TcpStream>> = (0..SOCKETS).map(|_| None).collect();
            let prefix = b"OPTIONS sip:loris@127.0.0.1 SIP/2.0\r\nX-Slow: ";
            let mut step = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                for slot in socks.iter_mut() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let byte = [*prefix.get(step).unwrap_or(&b'a')];
                    let alive = match slot {
                        Some(s) => s.write(&byte).is_ok(),
                        None => false,
                    };
                    if !alive {
                        *slot = connect_from(ATTACKER, target).ok().inspect(|s| {
                            let _ = s.set_nonblocking(true);
                        });
                        if let Some(s) = slot {
                            let _ = s.write(&prefix[..1]);
                        }
                    }
                }
                connected.store(socks.iter().flatten().count(), Ordering::Relaxed);
                rounds.fetch_add(1, Ordering::Relaxed);
                step += 1;
                let left = Duration::from_secs(3).saturating_sub(started.elapsed());
                let until = Instant::now() + left;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };
    // Wait until the attacker has tried all its sockets twice.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rounds.load(Ordering::Relaxed) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        rounds.load(Ordering::Relaxed) >= 2,
        "the attack never got going"
    );
    // A legitimate agent registers over TCP from another address, with
    // digest authentication, while the attack goes on.
    let started = Instant::now();
    let status = Ua::tcp_from(CLIENT, target).and_then(|mut ua| {
        let mut reg = Registration::new(&mut ua, "alice", "alice-secret");
        reg.register(&mut ua, 300).map(|r| r.status)
    });
    let took = started.elapsed();
    let still_attacking = !attacker.is_finished();
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    eprintln!(
        "slow-loris: attacker had {} sockets open after {} rounds; REGISTER from {CLIENT}: {status:?} in {took:?}",
        connected.load(Ordering::Relaxed),
        rounds.load(Ordering::Relaxed)
    );
    assert!(still_attacking);
    assert_eq!(
        status,
        Some(200),
        "REGISTER during the attack:\n{}",
        tail(&gw.logs())
    );
    assert!(
        gw.wait_for_log(
            &["binding added", "agent=alice", "source=tcp:127.0.0.3"],
            Duration::from_secs(5)
        ),
        "{}",
        tail(&gw.logs())
    );
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn per_source_cap_with_trusted_exemption_and_global_cap() {
    assert!(
        loopback_aliases(),
        "127.0.0.2-5 must be bindable (Linux loopback)"
    );
    let gw = Gateway::start_patched(
        "t1_ms = 500",
        "t1_ms = 500\nmax_tcp_connections = 12\nmax_tcp_connections_per_source = 4",
        "[security]\ntrusted = [\"127.0.0.4/32\"]\n",
    );
    // One address gets its four, and no more.
    let held: Vec<Ua> = (0..4).filter_map(|_| held_from(ATTACKER, &gw)).collect();
    assert_eq!(held.len(), 4);
    assert_eq!(
        options_from(ATTACKER, &gw),
        None,
        "a fifth connection was served"
    );
    assert!(
        gw.wait_for_log(&["per-source", "127.0.0.2"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // Others are unaffected.
    assert_eq!(options_from(CLIENT, &gw), Some(200));
    // A trusted address is exempt from the per-source cap (not the global).
    let trusted: Vec<Ua> = (0..6).filter_map(|_| held_from(TRUSTED, &gw)).collect();
    assert_eq!(trusted.len(), 6, "trusted source capped");
    // 4 + 6 held; two more fit under the global cap of 12, then it is full.
    let more: Vec<Ua> = (0..2).filter_map(|_| held_from(CLIENT, &gw)).collect();
    assert_eq!(more.len(), 2);
    assert_eq!(
        options_from(OTHER, &gw),
        None,
        "served beyond the global cap"
    );
    assert!(
        gw.wait_for_log(&["connection limit"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // Slots come back when connections close.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut served = None;
    while Instant::now() < deadline && served != Some(200) {
        served = options_from(ATTACKER, &gw);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served, Some(200), "slots were not released");
    drop((trusted, more));
}

#[test]
fn callgate_raises_its_open_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::base_config(&dir.path().join("data"));
    let gw = Gateway::start_with_nofile(dir, &text, Some(256));
    assert!(
        gw.wait_for_log(&["open-file limit", "256"], Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}
