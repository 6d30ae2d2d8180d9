//! SIP over TCP under load through the real binary: pipelined requests
//! are all answered (nothing dropped on a live connection), a peer that
//! stops reading is stopped from sending and then closed with one log
//! line while everyone else is still served, and the message and idle
//! deadlines close connections that hold a slot without using it.

mod common;

use callgate::sip::message::framing::{Frame, next_frame};
use callgate::sip::message::{SipMessage, parse_datagram};
use common::Gateway;
use common::ua::Ua;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PIPELINED: usize = 2000;

/// `n` OPTIONS requests written as one byte string; their Call-IDs.
fn pipelined_options(ua: &mut Ua, n: usize) -> (Vec<u8>, HashSet<String>) {
    let mut wire = Vec::new();
    let mut ids = HashSet::new();
    for _ in 0..n {
        let text = ua.options("").replace('\n', "\r\n");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .expect("Call-ID")
            .trim()
            .to_string();
        ids.insert(id);
        wire.extend_from_slice(text.as_bytes());
    }
    (wire, ids)
}

/// Reads responses off `stream` until `expected` distinct Call-IDs have a
/// 200 or nothing arrives for `quiet`; reads `chunk` bytes at a time and
/// sleeps `pause` between reads (a slow reader). Returns the Call-IDs
/// answered 200 and the number of responses (duplicates included).
fn read_answers(
    stream: &mut TcpStream,
    expected: usize,
    chunk: usize,
    pause: Duration,
    quiet: Duration,
) -> (HashSet<String>, usize) {
    let mut buf = Vec::new();
    let mut answered = HashSet::new();
    let mut responses = 0;
    let mut read = vec![0u8; chunk];
    stream.set_read_timeout(Some(quiet)).expect("timeout");
    while answered.len() < expected {
        match stream.read(&mut read) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&read[..n]),
        }
        loop {
            match next_frame(&buf, 1 << 20) {
                Frame::Message(len) => {
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    if let Ok(SipMessage::Response(r)) = parse_datagram(&msg) {
                        responses += 1;
                        if r.status == 200
                            && let Some(id) =
                                r.headers.get(&callgate::sip::message::HeaderName::CallId)
                        {
                            answered.insert(id.to_string());
                        }
                    }
                }
                Frame::KeepAlive { consumed, .. } => {
                    buf.drain(..consumed);
                }
                Frame::Incomplete => break,
                Frame::Error(e) => panic!("response stream unframeable: {e}"),
            }
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    (answered, responses)
}

#[test]
fn pipelined_options_on_one_connection_are_all_answered() {
    let gw = Gateway::start("");
    let mut ua = Ua::tcp(gw.tcp);
    let (wire, ids) = pipelined_options(&mut ua, PIPELINED);
    // All of them written before a single response is read.
    let mut stream = TcpStream::connect(gw.tcp).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&wire).expect("write all requests");
    let (answered, responses) = read_answers(
        &mut stream,
        ids.len(),
        64 * 1024,
        Duration::ZERO,
        Duration::from_secs(5),
    );
    eprintln!("pipelined: {} of {} answered", answered.len(), ids.len());
    assert_eq!(
        answered.len(),
        PIPELINED,
        "answered {} of {PIPELINED}",
        answered.len()
    );
    assert_eq!(responses, PIPELINED, "one response per request");
    assert!(answered.is_subset(&ids));
}

#[test]
fn pipelined_options_to_a_slow_reader_are_all_answered() {
    let gw = Gateway::start("");
    let mut ua = Ua::tcp(gw.tcp);
    let (wire, ids) = pipelined_options(&mut ua, PIPELINED);
    // A small receive window, read a little at a time: callgate's
    // responses back up and it must hold them, not drop them.
    let mut stream = common::tcp::connect_small_rcvbuf(gw.tcp, 4096).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let w = std::thread::spawn(move || writer.write_all(&wire).is_ok());
    let (answered, responses) = read_answers(
        &mut stream,
        ids.len(),
        1024,
        Duration::from_micros(300),
        Duration::from_secs(5),
    );
    eprintln!("slow reader: {} of {} answered", answered.len(), ids.len());
    assert!(w.join().unwrap(), "the requests could not all be written");
    assert_eq!(
        answered.len(),
        PIPELINED,
        "answered {} of {PIPELINED}",
        answered.len()
    );
    assert_eq!(responses, PIPELINED, "one response per request");
}

#[test]
fn a_peer_that_stops_reading_is_paused_then_closed_while_others_are_served() {
    let gw = Gateway::start_patched("t1_ms = 500", "t1_ms = 500\ntcp_send_timeout_s = 5", "");
    let stuck = common::tcp::connect_small_rcvbuf(gw.tcp, 4096).expect("connect");
    let stuck_port = stuck.local_addr().unwrap().port();
    let mut writer = stuck.try_clone().expect("clone");
    let mut ua = Ua::tcp(gw.tcp);
    let (one, _) = pipelined_options(&mut ua, 1);
    // Writes requests and never reads, until a write blocks for a second.
    // Callgate must stop reading it: then its writes stall (time out)
    // while the connection is still open. Were it to read on, answering
    // into the void, they would go on until callgate gave up on the
    // connection and reset it.
    const MAX_BYTES: usize = 256 << 20;
    let w = std::thread::spawn(move || {
        writer
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut written = 0;
        while written < MAX_BYTES {
            match writer.write(&one) {
                Ok(n) => written += n,
                Err(e) => return (written, Some(e.kind())),
            }
        }
        (written, None)
    });
    let (written, error) = w.join().unwrap();
    eprintln!("the stuck peer got {written} bytes in before its writes stalled ({error:?})");
    assert!(
        matches!(
            error,
            Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        ),
        "callgate did not stop reading from a peer that does not read: {written} bytes, then {error:?}"
    );
    // While it is stuck, the core still answers everyone else.
    let mut udp = Ua::udp(gw.udp);
    let mut tcp = Ua::tcp(gw.tcp);
    let (u, t) = (udp.options(""), tcp.options(""));
    assert_eq!(
        udp.request(&u).map(|r| r.status),
        Some(200),
        "UDP not served while one peer is stuck"
    );
    assert_eq!(
        tcp.request(&t).map(|r| r.status),
        Some(200),
        "TCP not served while one peer is stuck"
    );
    let needle = format!(":{stuck_port}");
    assert!(
        gw.wait_for_log(&["not reading", &needle], Duration::from_secs(10)),
        "no log line for the stuck peer:\n{}",
        gw.logs()
    );
    let lines = gw
        .logs()
        .lines()
        .filter(|l| l.contains("not reading") && l.contains(&needle))
        .count();
    assert_eq!(
        lines,
        1,
        "one log line per stuck connection:\n{}",
        gw.logs()
    );
    // Closed by the send timeout while paused, not because what it owed
    // outgrew the outbox (which is what happens if reading never pauses).
    assert!(
        gw.logs().lines().any(|l| l.contains("not reading")
            && l.contains(&needle)
            && !l.contains("over the limit")),
        "{}",
        gw.logs()
    );
    // And it still serves new connections afterwards.
    let mut after = Ua::tcp(gw.tcp);
    let o = after.options("");
    assert_eq!(
        after.request(&o).map(|r| r.status),
        Some(200),
        "not served after the stuck peer was closed:\n{}",
        gw.logs()
            .lines()
            .filter(|l| !l.contains("DEBUG"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_message_not_completed_in_time_closes_the_connection() {
    let gw = Gateway::start_patched("t1_ms = 500", "t1_ms = 500\ntcp_message_timeout_s = 1", "");
    // Headers trickling in: closed once the deadline passes.
    let mut slow = Ua::tcp(gw.tcp);
    slow.send_raw(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1");
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(8) {
        if !slow.try_send_raw(b";") {
            closed = true;
            break;
        }
        if slow.tcp_closed(Duration::from_millis(300)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a message trickling in was never cut off");
    // Keep-alives are not a message: a connection sending only CRLFCRLF
    // pings stays open past the deadline and gets its pongs.
    let mut pinger = Ua::tcp(gw.tcp);
    for _ in 0..4 {
        pinger.send_raw(b"\r\n\r\n");
        assert_eq!(
            pinger.recv_raw_bytes(Duration::from_secs(2)).as_deref(),
            Some(&b"\r\n"[..]),
            "no pong"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let o = pinger.options("");
    assert_eq!(pinger.request(&o).map(|r| r.status), Some(200));
}

#[test]
fn an_idle_connection_is_closed() {
    let gw = Gateway::start_patched("t1_ms = 500", "t1_ms = 500\ntcp_idle_timeout_s = 1", "");
    let mut ua = Ua::tcp(gw.tcp);
    let o = ua.options("");
    assert_eq!(ua.request(&o).map(|r| r.status), Some(200));
    assert!(
        ua.tcp_closed(Duration::from_secs(5)),
        "idle connection kept open"
    );
}
