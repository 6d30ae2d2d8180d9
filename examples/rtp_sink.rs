//! RTP receiver for benches/run.sh: one UDP socket that every call's media
//! is sent to (the SDP of each SIPp call names it), told apart by SSRC.
//! Measures what a phone would hear, at the receiver, with the kernel's
//! receive timestamps (SO_TIMESTAMPNS, so the sink's own scheduling does
//! not count as jitter):
//!
//! - loss: per stream, packets expected from the sequence numbers seen
//!   minus packets received (RFC 3550 §6.4.1), summed;
//! - transit jitter: |D(i-1, i)| of RFC 3550 §6.4.1 for every packet (the
//!   change in transit time between consecutive packets of a stream), as
//!   p50/p99/max over all packets; and the smoothed RFC 3550 jitter J of
//!   each stream at the end, p99 and max over streams.
//!
//! Packets are counted between `--from` and `--to` seconds after start
//! (the bench ramps calls up before and tears them down after); the sink
//! keeps reading (so that nothing is refused) until `--until`, then prints
//! one line of results; or sooner, on SIGTERM or SIGINT (a background job
//! of a script ignores SIGINT, so the bench sends SIGTERM).
//!
//! cargo run --release --example rtp_sink -- --bind 127.0.0.1:40000 --from 5 --to 15 --until 20

use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

struct Stream {
    /// Extended highest sequence number, first sequence number.
    first: u64,
    highest: u64,
    received: u64,
    /// Transit time of the previous packet (arrival − RTP time), in s.
    last_transit: Option<f64>,
    jitter: f64,
}

const BATCH: usize = 64;
const BUF: usize = 1500;

fn main() {
    let mut bind = "127.0.0.1:40000".to_string();
    let mut from = 0.0f64;
    let mut to = f64::MAX;
    let mut until = 10.0f64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--bind" => bind = v,
            "--from" => from = v.parse().unwrap_or(from),
            "--to" => to = v.parse().unwrap_or(to),
            "--until" => until = v.parse().unwrap_or(until),
            other => {
                eprintln!("rtp_sink: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let sock = match UdpSocket::bind(&bind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rtp_sink: bind {bind}: {e}");
            std::process::exit(1);
        }
    };
    let fd = sock.as_raw_fd();
    let on: libc::c_int = 1;
    let rcvbuf: libc::c_int = 64 << 20;
    // SAFETY: valid fd and option values of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
        // SO_RCVBUFFORCE needs root; SO_RCVBUF is capped by rmem_max.
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &rcvbuf as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        ) != 0
        {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &rcvbuf as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
    }
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    println!("rtp_sink ready {bind}");

    let start = Instant::now();
    let wall_start = realtime_now();
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut deltas_us: Vec<u32> = Vec::with_capacity(1 << 22);
    let mut bufs = vec![[0u8; BUF]; BATCH];
    let mut ctrl = vec![[0u8; 64]; BATCH];
    let mut iovs: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut hdrs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    for b in bufs.iter_mut() {
        iovs.push(libc::iovec {
            iov_base: b.as_mut_ptr() as *mut libc::c_void,
            iov_len: BUF,
        });
    }
    for i in 0..BATCH {
        // SAFETY: an all-zero msghdr is a valid empty value.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_iov = &mut iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = ctrl[i].as_mut_ptr() as *mut libc::c_void;
        h.msg_hdr.msg_controllen = 64;
        hdrs.push(h);
    }
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= until || STOP.load(Ordering::Relaxed) {
            break;
        }
        for h in hdrs.iter_mut() {
            h.msg_hdr.msg_controllen = 64;
        }
        // SAFETY: hdrs point into bufs/ctrl, which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        for i in 0..n as usize {
            let len = hdrs[i].msg_len as usize;
            let arrival = cmsg_time(&hdrs[i].msg_hdr).unwrap_or_else(realtime_now) - wall_start;
            if arrival < from || arrival > to {
                continue;
            }
            let p = &bufs[i][..len.min(BUF)];
            if p.len() < 12 || p[0] >> 6 != 2 {
                continue;
            }
            let seq = u16::from_be_bytes([p[2], p[3]]) as u64;
            let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
            // G.711: 8 kHz RTP clock.
            let transit = arrival - f64::from(ts) / 8000.0;
            let s = streams.entry(ssrc).or_insert(Stream {
                first: seq,
                highest: seq,
                received: 0,
                last_transit: None,
                jitter: 0.0,
            });
            // Extend the 16-bit sequence number around the highest seen.
            let base = s.highest & !0xffff;
            let mut ext = base | seq;
            if ext + 0x8000 < s.highest {
                ext += 0x1_0000;
            } else if ext > s.highest + 0x8000 && ext >= 0x1_0000 {
                ext -= 0x1_0000;
            }
            if ext > s.highest {
                s.highest = ext;
            }
            if ext < s.first {
                s.first = ext;
            }
            s.received += 1;
            if let Some(last) = s.last_transit {
                // A timestamp jump (a new talkspurt or prompt) would show
                // as one huge D: RFC 3550 counts it, so do we.
                let d = (transit - last).abs();
                s.jitter += (d - s.jitter) / 16.0;
                deltas_us.push((d * 1e6).min(f64::from(u32::MAX)) as u32);
            }
            s.last_transit = Some(transit);
        }
    }
    let mut expected = 0u64;
    let mut received = 0u64;
    let mut js: Vec<f64> = Vec::with_capacity(streams.len());
    for s in streams.values() {
        expected += s.highest - s.first + 1;
        received += s.received;
        js.push(s.jitter);
    }
    let lost = expected.saturating_sub(received);
    deltas_us.sort_unstable();
    js.sort_by(f64::total_cmp);
    let pct = |v: &[u32], q: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        f64::from(v[i]) / 1000.0
    };
    let jp = |q: f64| -> f64 {
        if js.is_empty() {
            return 0.0;
        }
        js[((js.len() as f64 - 1.0) * q).round() as usize] * 1000.0
    };
    println!(
        "streams={} received={} expected={} lost={} loss_pct={:.3} d_p50_ms={:.3} d_p99_ms={:.3} d_max_ms={:.3} j_p99_ms={:.3} j_max_ms={:.3}",
        streams.len(),
        received,
        expected,
        lost,
        if expected > 0 {
            100.0 * lost as f64 / expected as f64
        } else {
            0.0
        },
        pct(&deltas_us, 0.5),
        pct(&deltas_us, 0.99),
        pct(&deltas_us, 1.0),
        jp(0.99),
        jp(1.0),
    );
}

fn realtime_now() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The SO_TIMESTAMPNS receive time of a message, in seconds.
fn cmsg_time(h: &libc::msghdr) -> Option<f64> {
    // SAFETY: walking the control buffer the kernel filled, with its macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                return Some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}
