//! RTP send pacing under load: N concurrent legs each playing a looping
//! prompt at 20 ms ptime to loopback sinks. Prints, per N, the lateness of
//! each packet against its ideal send time, the deviation of each stream's
//! packet interval from 20 ms (the jitter a receiver sees), and CPU used by
//! the pacer threads and the whole process.
//!
//! cargo bench --bench rtp_pacing [-- STREAMS... [--seconds S] [--pacers P] [--sink drain|drop] [--realtime]]

use callgate::media::engine::{MediaConfig, MediaEngine};
use callgate::media::g711::Law;
use callgate::media::prompt::{Prompt, PromptLibrary};
use callgate::media::sdp::{Direction, MediaParams};
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn thread_cpu_ticks(name_prefix: Option<&str>) -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for t in tasks.flatten() {
        let p = t.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if let Some(prefix) = name_prefix
            && !comm.starts_with(prefix)
        {
            continue;
        }
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            total += ut + st;
        }
    }
    total
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf with a valid name has no side effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut counts = Vec::new();
    let mut seconds = 10u64;
    let mut pacers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut drain = true;
    let mut realtime = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--pacers" => pacers = it.next().and_then(|v| v.parse().ok()).unwrap_or(pacers),
            "--sink" => drain = it.next().map(|v| v != "drop").unwrap_or(true),
            "--realtime" => realtime = true,
            n => {
                if let Ok(n) = n.parse::<usize>() {
                    counts.push(n)
                }
            }
        }
    }
    if counts.is_empty() {
        counts = vec![500, 1000, 3000];
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();

    // Sinks: a handful of sockets; with "drain" one thread reads them.
    let sinks: Vec<Arc<UdpSocket>> = (0..4)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("sink");
            let s2 = socket2::Socket::from(s);
            let _ = s2.set_recv_buffer_size(8 << 20);
            Arc::new(UdpSocket::from(s2))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    if drain {
        for s in &sinks {
            let s = s.clone();
            let stop = stop.clone();
            let received = received.clone();
            s.set_read_timeout(Some(Duration::from_millis(100))).ok();
            std::thread::Builder::new()
                .name("sink".into())
                .spawn(move || {
                    let mut buf = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        if s.recv_from(&mut buf).is_ok() {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .expect("sink thread");
        }
    }

    let engine = MediaEngine::new(
        MediaConfig {
            address: "127.0.0.1".parse().expect("ip"),
            port_min: 30000,
            port_max: 39999,
            rtp_timeout: Duration::from_secs(3600),
            rtp_hold_timeout: Duration::from_secs(3600),
            pacer_threads: pacers,
            realtime_pacer: realtime,
        },
        PromptLibrary::default(),
    )
    .expect("engine");
    let music: Vec<i16> = (0..8000 * 5)
        .map(|i| ((i as f64 * 0.07).sin() * 6000.0) as i16)
        .collect();
    let music = Arc::new(Prompt::from_pcm("music", music));
    let hz = clk_tck();

    println!(
        "cores: {}, pacer threads: {pacers}{}, sink: {}, {seconds} s per run",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if realtime { " (SCHED_FIFO)" } else { "" },
        if drain {
            "drained by 4 reader threads"
        } else {
            "not read (kernel drops)"
        }
    );
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11} {:>9} {:>9}",
        "streams",
        "late p50",
        "late p99",
        "late p99.9",
        "late max",
        "ivl p99",
        "ivl p99.9",
        "sent/exp",
        "pacer cpu",
        "proc cpu"
    );
    for &n in &counts {
        let mut legs = Vec::with_capacity(n);
        for i in 0..n {
            let Ok(mut leg) = engine.open_leg() else {
                eprintln!("ran out of ports at {i}");
                break;
            };
            let sink = sinks[i % sinks.len()].local_addr().expect("addr");
            leg.set_params(MediaParams {
                law: Law::Ulaw,
                pt: 0,
                dtmf_pt: Some(101),
                ptime_ms: 20,
                remote: Some(sink),
                direction: Direction::SendRecv,
            });
            leg.play(vec![music.clone()], true);
            legs.push(leg);
            // Spread stream phases over the 20 ms period, as call arrivals do.
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_micros(1300));
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        for s in engine.pacer_stats() {
            s.reset();
        }
        let c0p = thread_cpu_ticks(Some("rtp-pacer"));
        let c0 = thread_cpu_ticks(None);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        let wall = t0.elapsed().as_secs_f64();
        let pacer_cpu = (thread_cpu_ticks(Some("rtp-pacer")) - c0p) as f64 / hz / wall * 100.0;
        let proc_cpu = (thread_cpu_ticks(None) - c0) as f64 / hz / wall * 100.0;
        let stats = engine.pacer_stats();
        let worst = |f: &dyn Fn(&callgate::media::pacer::PacerStats) -> Duration| {
            stats.iter().map(|s| f(s)).max().unwrap_or_default()
        };
        let sent: u64 = stats.iter().map(|s| s.sent.load(Ordering::Relaxed)).sum();
        let expected = (legs.len() as f64 * wall * 50.0) as u64;
        let us = |d: Duration| format!("{} µs", d.as_micros());
        println!(
            "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>5}/{:<5}% {:>8.0}% {:>8.0}%",
            legs.len(),
            us(worst(&|s| s.lateness(0.5))),
            us(worst(&|s| s.lateness(0.99))),
            us(worst(&|s| s.lateness(0.999))),
            us(worst(&|s| s.max_lateness())),
            us(worst(&|s| s.interval_jitter(0.99))),
            us(worst(&|s| s.interval_jitter(0.999))),
            sent * 100 / expected.max(1),
            100,
            pacer_cpu,
            proc_cpu
        );
        drop(legs);
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
}
