//! Media legs over real loopback sockets: paced prompt playback with RTP
//! continuity, DTMF both ways, bridging with transcoding.

use callgate::media::engine::{MediaConfig, MediaEngine};
use callgate::media::g711::Law;
use callgate::media::leg::LegEvent;
use callgate::media::prompt::{Prompt, PromptLibrary};
use callgate::media::rtp_packet;
use callgate::media::sdp::{Direction, MediaParams};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn engine() -> MediaEngine {
    MediaEngine::new(
        MediaConfig {
            address: "127.0.0.1".parse().unwrap(),
            port_min: 42000,
            port_max: 42999,
            rtp_timeout: Duration::from_secs(2),
            rtp_hold_timeout: Duration::from_secs(3600),
            pacer_threads: 1,
            realtime_pacer: false,
        },
        PromptLibrary::default(),
    )
    .unwrap()
}

fn params(law: Law, remote: SocketAddr, dtmf: Option<u8>) -> MediaParams {
    MediaParams {
        law,
        pt: law.payload_type(),
        dtmf_pt: dtmf,
        ptime_ms: 20,
        remote: Some(remote),
        direction: Direction::SendRecv,
    }
}

/// (arrival, marker, pt, seq, ts, ssrc, payload)
type Pkt = (Instant, bool, u8, u16, u32, u32, Vec<u8>);

struct Rx {
    sock: UdpSocket,
}

impl Rx {
    fn new() -> Rx {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Rx { sock }
    }
    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }
    fn packets(&self, n: usize) -> Vec<Pkt> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while out.len() < n {
            let Ok((len, _)) = self.sock.recv_from(&mut buf) else {
                break;
            };
            let p = rtp_packet::parse(&buf[..len]).expect("valid RTP");
            out.push((
                Instant::now(),
                p.marker,
                p.payload_type,
                p.seq,
                p.timestamp,
                p.ssrc,
                p.payload.to_vec(),
            ));
        }
        out
    }
}

fn sweep(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * (300.0 + 400.0 * t) * t).sin()) as i16
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_playback_is_paced_continuous_and_exact() {
    let e = engine();
    let rx = Rx::new();
    let mut leg = e.open_leg().unwrap();
    leg.set_params(params(Law::Ulaw, rx.addr(), Some(101)));
    let pcm = sweep(8000);
    let prompt = Arc::new(Prompt::from_pcm("sweep", pcm.clone()));
    // Silence first, then the prompt mid-stream.
    let before = tokio::task::spawn_blocking({
        let sock = rx.sock.try_clone().unwrap();
        move || Rx { sock }.packets(5)
    })
    .await
    .unwrap();
    let token = leg.play(vec![prompt.clone()], false);
    let pkts = tokio::task::spawn_blocking(move || rx.packets(80))
        .await
        .unwrap();
    let all: Vec<_> = before.into_iter().chain(pkts).collect();
    assert!(all.len() >= 80);
    assert!(all.iter().all(|p| p.2 == 0 && p.6.len() == 160));
    for w in all.windows(2) {
        assert_eq!(w[1].3, w[0].3.wrapping_add(1), "sequence continuity");
        assert_eq!(w[1].4, w[0].4.wrapping_add(160), "timestamp continuity");
        assert_eq!(w[1].5, w[0].5, "one SSRC");
        assert!(!w[1].1, "no marker within a continuous stream");
    }
    // The prompt's µ-law bytes appear exactly, in order.
    let stream: Vec<u8> = all.iter().flat_map(|p| p.6.clone()).collect();
    let enc = prompt.encoded(Law::Ulaw);
    let start = stream
        .windows(160)
        .position(|w| w == &enc[..160])
        .expect("prompt start found");
    assert_eq!(&stream[start..start + 8000], enc);
    // Pacing: 20 ms apart on average.
    let span = all.last().unwrap().0 - all.first().unwrap().0;
    let per = span.as_secs_f64() / (all.len() - 1) as f64;
    assert!((0.015..0.025).contains(&per), "interval {per}");
    let mut done = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Some(LegEvent::PlaybackDone(t)) = leg.try_event() {
            done = t == token;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "PlaybackDone reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_sent_by_one_leg_is_heard_once_by_another() {
    let e = engine();
    let mut a = e.open_leg().unwrap();
    let mut b = e.open_leg().unwrap();
    // a sends telephone-event at 96, b expects 96 too.
    a.set_params(params(Law::Alaw, b.local_addr(), Some(96)));
    b.set_params(params(Law::Alaw, a.local_addr(), Some(96)));
    a.send_dtmf("5551234#");
    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 8 && Instant::now() < deadline {
        if let Ok(Some(LegEvent::Dtmf(d))) =
            tokio::time::timeout(Duration::from_millis(200), b.next_event()).await
        {
            got.push(d)
        }
    }
    assert_eq!(got, "5551234#");
    // Nothing more trickles in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!matches!(b.try_event(), Some(LegEvent::Dtmf(_))));
    assert_eq!(b.stats().dtmf_digits, 8);
    assert_eq!(b.stats().latched, Some(a.local_addr()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_at_unnegotiated_payload_types_are_ignored() {
    let e = engine();
    let mut a = e.open_leg().unwrap();
    let mut b = e.open_leg().unwrap();
    a.set_params(params(Law::Ulaw, b.local_addr(), Some(101)));
    b.set_params(params(Law::Ulaw, a.local_addr(), Some(96)));
    a.send_dtmf("9");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!matches!(b.try_event(), Some(LegEvent::Dtmf(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_relays_both_ways_and_transcodes() {
    let e = engine();
    let x = Rx::new(); // caller's phone, PCMU
    let y = Rx::new(); // agent's phone, PCMA
    let mut bx = e.open_leg().unwrap();
    let mut by = e.open_leg().unwrap();
    bx.set_params(params(Law::Ulaw, x.addr(), Some(101)));
    by.set_params(params(Law::Alaw, y.addr(), Some(101)));
    bx.bridge(&by);
    // Drop the silence both legs sent before they were bridged.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for s in [&x.sock, &y.sock] {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 2048];
        while s.recv_from(&mut b).is_ok() {}
        s.set_nonblocking(false).unwrap();
    }
    let pcm = sweep(1600);
    let ulaw: Vec<u8> = pcm.iter().map(|&s| Law::Ulaw.encode(s)).collect();
    let mut buf = [0u8; 300];
    for (k, chunk) in ulaw.chunks(160).enumerate() {
        let n = rtp_packet::write(
            &mut buf,
            k == 0,
            0,
            100 + k as u16,
            5000 + 160 * k as u32,
            0xabc,
            chunk,
        )
        .unwrap();
        x.sock.send_to(&buf[..n], bx.local_addr()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = tokio::task::spawn_blocking(move || (y.packets(10), y))
        .await
        .unwrap();
    let (pk, y) = got;
    assert_eq!(pk.len(), 10);
    assert!(pk.iter().all(|p| p.2 == 8), "PCMA on the agent side");
    for w in pk.windows(2) {
        assert_eq!(w[1].3, w[0].3.wrapping_add(1));
        assert_eq!(w[1].4, w[0].4.wrapping_add(160));
    }
    let decoded: Vec<i16> = pk
        .iter()
        .flat_map(|p| p.6.iter().map(|&c| Law::Alaw.decode(c)))
        .collect();
    let err: f64 = decoded
        .iter()
        .zip(&pcm)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum::<f64>()
        / pcm.len() as f64;
    assert!(err < 200.0, "transcoded audio differs: mean error {err}");
    // And the other way, with a DTMF event passing through.
    let alaw: Vec<u8> = pcm.iter().map(|&s| Law::Alaw.encode(s)).collect();
    for (k, chunk) in alaw.chunks(160).take(5).enumerate() {
        let n =
            rtp_packet::write(&mut buf, k == 0, 8, k as u16, 160 * k as u32, 0xdef, chunk).unwrap();
        y.sock.send_to(&buf[..n], by.local_addr()).unwrap();
    }
    let pk = tokio::task::spawn_blocking(move || x.packets(5))
        .await
        .unwrap();
    assert_eq!(pk.len(), 5);
    assert!(pk.iter().all(|p| p.2 == 0), "PCMU on the caller side");
    assert!(bx.stats().relayed_in >= 5);
}

/// Issue 13 items 5 and 6 at the media level: while one bridged leg's
/// peer holds (we answered recvonly, it sends nothing), that leg keeps
/// no RTP timeout but the hold one, the other leg plays its hold music
/// (from the start, looping) instead of dead air, and the relay resumes
/// when the hold ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_party_left_waiting_hears_hold_music_and_the_bridge_resumes() {
    let e = engine(); // rtp_timeout 2 s, hold timeout 3600 s
    let x = Rx::new(); // the caller's phone
    let y = Rx::new(); // the agent's phone, which will hold
    let mut bx = e.open_leg().unwrap();
    let mut by = e.open_leg().unwrap();
    bx.set_params(params(Law::Ulaw, x.addr(), Some(101)));
    by.set_params(params(Law::Ulaw, y.addr(), Some(101)));
    let music = sweep(1600);
    bx.set_hold_music(vec![Arc::new(Prompt::from_pcm("hold", music.clone()))]);
    bx.bridge(&by);
    assert!(!by.is_held());
    // The agent holds: sendonly offer, our recvonly answer.
    let mut held = params(Law::Ulaw, y.addr(), Some(101));
    held.direction = Direction::RecvOnly;
    by.set_params(held);
    assert!(by.is_held());
    let pk = tokio::task::spawn_blocking(move || (x.packets(100), x))
        .await
        .unwrap();
    let (pk, x) = pk;
    let heard: Vec<i16> = pk
        .iter()
        .skip_while(|p| p.6.iter().all(|&c| c == 0xFF))
        .flat_map(|p| p.6.iter().map(|&c| Law::Ulaw.decode(c)))
        .collect();
    let err = |a: &[i16], b: &[i16]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| (f64::from(*p) - f64::from(*q)).abs())
            .sum::<f64>()
            / b.len() as f64
    };
    assert!(heard.len() >= 3200, "{} samples", heard.len());
    assert!(
        err(&heard[..1600], &music) < 200.0,
        "hold music from its start"
    );
    assert!(err(&heard[1600..3200], &music) < 200.0, "looping");
    for w in pk.windows(2) {
        assert_eq!(w[1].3, w[0].3.wrapping_add(1), "seq continues");
    }
    // Two seconds of no RTP at all from the holding phone: no timeout.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    while let Some(ev) = by.try_event() {
        assert_ne!(
            ev,
            LegEvent::RtpTimeout,
            "a held leg keeps only the hold timeout"
        );
    }
    // Unhold: what the agent's phone sends reaches the caller again.
    by.set_params(params(Law::Ulaw, y.addr(), Some(101)));
    let pcm = sweep(800);
    let ulaw: Vec<u8> = pcm.iter().map(|&s| Law::Ulaw.encode(s)).collect();
    let mut buf = [0u8; 300];
    let drain = x.sock.try_clone().unwrap();
    drain.set_nonblocking(true).unwrap();
    let mut b = [0u8; 2048];
    while drain.recv_from(&mut b).is_ok() {}
    drain.set_nonblocking(false).unwrap();
    for (k, chunk) in ulaw.chunks(160).enumerate() {
        let n =
            rtp_packet::write(&mut buf, k == 0, 0, k as u16, 160 * k as u32, 0x77, chunk).unwrap();
        y.sock.send_to(&buf[..n], by.local_addr()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // (A packet of music may precede the relay.)
    let pk = tokio::task::spawn_blocking(move || x.packets(6))
        .await
        .unwrap();
    let start = pk
        .iter()
        .position(|p| p.6 == ulaw[..160])
        .expect("the agent's audio is relayed again");
    assert!(start <= 1, "relayed from packet {start}");
    let relayed: Vec<i16> = pk[start..]
        .iter()
        .take(5)
        .flat_map(|p| p.6.iter().map(|&c| Law::Ulaw.decode(c)))
        .collect();
    assert!(err(&relayed, &pcm) < 200.0, "the relay resumed");
    assert!(pk[start].1, "marked as a new talkspurt");
    assert!(
        pk[start + 1..].iter().all(|p| !p.1),
        "one marker, not one per packet"
    );
    assert!(by.stats().relayed_in == 0 && bx.stats().relayed_in >= 5);
}

/// Digits `leg` hears within `wait`.
async fn digits(leg: &mut callgate::media::leg::Leg, wait: Duration) -> String {
    let mut got = String::new();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(Some(LegEvent::Dtmf(d))) =
            tokio::time::timeout(Duration::from_millis(100), leg.next_event()).await
        {
            got.push(d)
        }
    }
    got
}

/// Once latched, a leg's socket is connected to its peer (the kernel
/// drops other senders); a re-INVITE naming a new address undoes that, so
/// the new peer is heard and latched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_destination_is_heard_after_the_first_was_latched() {
    let e = engine();
    let mut b = e.open_leg().unwrap();
    let mut first = e.open_leg().unwrap();
    let mut second = e.open_leg().unwrap();
    b.set_params(params(Law::Ulaw, first.local_addr(), Some(101)));
    first.set_params(params(Law::Ulaw, b.local_addr(), Some(101)));
    second.set_params(params(Law::Ulaw, b.local_addr(), Some(101)));
    first.send_dtmf("1");
    assert_eq!(digits(&mut b, Duration::from_millis(800)).await, "1");
    assert_eq!(b.stats().latched, Some(first.local_addr()));
    second.send_dtmf("2");
    assert_eq!(
        digits(&mut b, Duration::from_millis(800)).await,
        "",
        "a stray sender is not heard"
    );
    // Re-INVITE: the peer moved to `second` (the old address falls silent).
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.set_params(params(Law::Ulaw, second.local_addr(), Some(101)));
    second.send_dtmf("3");
    assert_eq!(digits(&mut b, Duration::from_millis(800)).await, "3");
    assert_eq!(b.stats().latched, Some(second.local_addr()));
    b.send_dtmf("4");
    assert_eq!(digits(&mut second, Duration::from_millis(800)).await, "4");
}
