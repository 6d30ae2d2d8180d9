//! The media half of the test UA: an RTP socket, SDP offers, DTMF sending
//! and decoding of what the gateway sends.

use callgate::media::g711::Law;
use callgate::media::rtp_packet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub struct RtpPeer {
    pub sock: UdpSocket,
    seq: u16,
    ts: u32,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl RtpPeer {
    pub fn new() -> RtpPeer {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("rtp bind");
        RtpPeer {
            sock,
            seq: 1000,
            ts: 160_000,
        }
    }

    /// A peer on an existing socket (a clone, to receive in a thread).
    pub fn from_socket(sock: UdpSocket) -> RtpPeer {
        RtpPeer {
            sock,
            seq: 3000,
            ts: 500_000,
        }
    }

    /// A sender on a clone of `sock` (another thread can send while this
    /// one receives).
    pub fn sender(&self) -> RtpPeer {
        RtpPeer {
            sock: self.sock.try_clone().expect("clone"),
            seq: 5000,
            ts: 900_000,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    /// An SDP offer for our socket with the given formats, e.g.
    /// `&[(0, "PCMU"), (96, "telephone-event")]`.
    pub fn offer(&self, formats: &[(u8, &str)]) -> String {
        let mut s = format!(
            "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP",
            self.addr().port()
        );
        for (pt, _) in formats {
            s.push_str(&format!(" {pt}"));
        }
        s.push_str("\r\n");
        for (pt, name) in formats {
            s.push_str(&format!("a=rtpmap:{pt} {name}/8000\r\n"));
            if *name == "telephone-event" {
                s.push_str(&format!("a=fmtp:{pt} 0-16\r\n"));
            }
        }
        s.push_str("a=ptime:20\r\na=sendrecv\r\n");
        s
    }

    pub fn send(&mut self, to: SocketAddr, marker: bool, pt: u8, ts: u32, payload: &[u8]) {
        let mut buf = [0u8; 1500];
        if let Some(n) = rtp_packet::write(&mut buf, marker, pt, self.seq, ts, 0x1234_5678, payload)
        {
            let _ = self.sock.send_to(&buf[..n], to);
        }
        self.seq = self.seq.wrapping_add(1);
    }

    /// Sends bytes as they are, from the RTP socket (hostile packets).
    #[allow(dead_code)]
    pub fn send_raw(&self, to: SocketAddr, bytes: &[u8]) {
        let _ = self.sock.send_to(bytes, to);
    }

    /// Sends audio frames of silence for `frames` × 20 ms (keeps latching
    /// and the gateway's RTP timeout happy).
    pub fn send_silence(&mut self, to: SocketAddr, frames: usize) {
        for _ in 0..frames {
            let ts = self.ts;
            self.send(to, false, 0, ts, &[0xFF; 160]);
            self.ts = self.ts.wrapping_add(160);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One RFC 4733 key press at `pt`: `packets` updates then three end
    /// packets. `drop_first`/`drop_last` simulate loss; `reorder` swaps the
    /// last update with the first end packet.
    pub fn press(&mut self, to: SocketAddr, pt: u8, event: u8, drop_first: bool, reorder: bool) {
        let start = self.ts;
        let mut pkts: Vec<(bool, [u8; 4])> = Vec::new();
        for k in 0..5u16 {
            let d = (k + 1) * 160;
            pkts.push((k == 0, [event, 10, (d >> 8) as u8, d as u8]));
        }
        for _ in 0..3 {
            pkts.push((false, [event, 0x80 | 10, 3, 32]));
        }
        if drop_first {
            pkts.remove(0);
        }
        if reorder {
            let n = pkts.len();
            pkts.swap(n - 4, n - 3);
        }
        for (m, p) in pkts {
            self.send(to, m, pt, start, &p);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.ts = self.ts.wrapping_add(800 + 160 * 3);
    }

    /// Sends `pcm` as audio at `pt`, paced at 20 ms.
    pub fn send_audio(&mut self, to: SocketAddr, pt: u8, law: Law, pcm: &[i16]) {
        for chunk in pcm.chunks(160) {
            let payload: Vec<u8> = chunk.iter().map(|&s| law.encode(s)).collect();
            let ts = self.ts;
            self.send(to, false, pt, ts, &payload);
            self.ts = self.ts.wrapping_add(160);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Receives for `dur`, returning the packets.
    pub fn receive(&self, dur: Duration) -> Vec<Received> {
        let deadline = Instant::now() + dur;
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let _ = self
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                break;
            };
            if let Some(p) = rtp_packet::parse(&buf[..n]) {
                out.push(Received {
                    at: Instant::now(),
                    marker: p.marker,
                    pt: p.payload_type,
                    seq: p.seq,
                    ts: p.timestamp,
                    ssrc: p.ssrc,
                    payload: p.payload.to_vec(),
                });
            }
        }
        out
    }
}

/// How much of the audio in `pkts` (payload type `pt`) is exactly `pcm`
/// as callgate plays it (encoded with `law`, from its start, 160 samples
/// a packet, looping): the share of those packets whose payload is one of
/// its 160-sample frames. Unlike a correlation over the concatenated
/// audio, a lost or late packet costs one packet, not the rest.
pub fn share_of_frames(pkts: &[Received], pt: u8, law: Law, pcm: &[i16]) -> f64 {
    let frames: std::collections::HashSet<Vec<u8>> = pcm
        .chunks_exact(160)
        .map(|c| c.iter().map(|&s| law.encode(s)).collect())
        .collect();
    share_of_frames_in(
        pkts.iter()
            .filter(|p| p.pt == pt)
            .map(|p| p.payload.as_slice()),
        &frames,
    )
}

/// How many of `pcm`'s 160-sample frames (encoded with `law`) arrived
/// in `pkts` at payload type `pt`.
pub fn frames_found(pkts: &[Received], pt: u8, law: Law, pcm: &[i16]) -> usize {
    let got: std::collections::HashSet<&[u8]> = pkts
        .iter()
        .filter(|p| p.pt == pt)
        .map(|p| p.payload.as_slice())
        .collect();
    pcm.chunks_exact(160)
        .map(|c| c.iter().map(|&s| law.encode(s)).collect::<Vec<u8>>())
        .filter(|f| got.contains(f.as_slice()))
        .count()
}

/// The share of `payloads` found in `frames`.
pub fn share_of_frames_in<'a>(
    payloads: impl Iterator<Item = &'a [u8]>,
    frames: &std::collections::HashSet<Vec<u8>>,
) -> f64 {
    let (mut hit, mut all) = (0usize, 0usize);
    for p in payloads {
        all += 1;
        if frames.contains(p) {
            hit += 1;
        }
    }
    if all == 0 {
        0.0
    } else {
        hit as f64 / all as f64
    }
}

/// Decodes the audio packets of payload type `pt` with `law`, in order.
pub fn decode(pkts: &[Received], pt: u8, law: Law) -> Vec<i16> {
    pkts.iter()
        .filter(|p| p.pt == pt)
        .flat_map(|p| p.payload.iter().map(move |&c| law.decode(c)))
        .collect()
}

/// Reads an 8 kHz mono 16-bit WAV.
pub fn read_wav(path: &std::path::Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).expect("wav");
    assert_eq!(r.spec().sample_rate, 8000);
    r.samples::<i16>().map(|s| s.expect("sample")).collect()
}

fn ncc(a: &[i16], b: &[i16]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let ea: f64 = a.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    let eb: f64 = b.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    if ea > 0.0 && eb > 0.0 {
        dot / (ea * eb)
    } else {
        0.0
    }
}

/// Where `needle` sits inside `hay` and how well it matches there: the
/// offset is found by correlating the needle's first 50 ms (skipping its
/// leading silence), then the whole needle is correlated at that offset
/// (1.0 is a perfect match).
pub fn best_correlation(hay: &[i16], needle: &[i16]) -> (f64, usize) {
    let n = needle.len();
    if hay.len() < n || n == 0 {
        return (0.0, 0);
    }
    let lead = needle
        .iter()
        .position(|v| v.unsigned_abs() > 300)
        .unwrap_or(0);
    let probe_len = 400.min(n - lead);
    let probe = &needle[lead..lead + probe_len];
    let mut best = (0.0, 0usize);
    for off in 0..=(hay.len() - n) {
        let c = ncc(&hay[off + lead..off + lead + probe_len], probe);
        if c > best.0 {
            best = (c, off);
        }
    }
    (ncc(&hay[best.1..best.1 + n], needle), best.1)
}

/// A test signal: a chirp from `f0` to `f1` Hz over `n` samples.
pub fn chirp(n: usize, f0: f64, f1: f64) -> Vec<i16> {
    let dur = n as f64 / 8000.0;
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let f = f0 + (f1 - f0) * t / (2.0 * dur);
            (9000.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16
        })
        .collect()
}
