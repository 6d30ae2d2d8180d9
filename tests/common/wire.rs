//! What went where on the wire: IPv4 UDP and TCP segments of a pcap file
//! (from `capture::Capture::stop_raw`), and the SIP messages they carry
//! with their source and destination, so tests can assert which hop a
//! request or response took (through a proxy or around it).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One captured UDP datagram or TCP segment with a payload.
#[derive(Debug, Clone)]
pub struct Segment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub payload: Vec<u8>,
}

/// Every IPv4 UDP datagram and non-empty TCP segment in a pcap file.
pub fn segments(pcap: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    let Some(head) = pcap.get(..24) else {
        return out;
    };
    let le = matches!(
        u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        0xa1b2c3d4 | 0xa1b23c4d
    );
    let rd = |b: &[u8]| -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link_len = match rd(&head[20..24]) {
        1 => 14,   // Ethernet (loopback and veth on Linux)
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        _ => return out,
    };
    let mut off = 24;
    while let Some(rec) = pcap.get(off..off + 16) {
        let incl = rd(&rec[8..12]) as usize;
        let Some(pkt) = pcap.get(off + 16..off + 16 + incl) else {
            break;
        };
        off += 16 + incl;
        if let Some(seg) = pkt.get(link_len..).and_then(ipv4_segment) {
            out.push(seg);
        }
    }
    out
}

fn ipv4_segment(ip: &[u8]) -> Option<Segment> {
    if ip.first()? >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let ip = ip.get(..total.min(ip.len()))?;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let l4 = ip.get(ihl..)?;
    let port = |i: usize| Some(u16::from_be_bytes([*l4.get(i)?, *l4.get(i + 1)?]));
    let (transport, payload) = match ip[9] {
        17 => (Transport::Udp, l4.get(8..)?),
        6 => {
            let data_off = usize::from(l4.get(12)? >> 4) * 4;
            (Transport::Tcp, l4.get(data_off..)?)
        }
        _ => return None,
    };
    if payload.is_empty() {
        return None;
    }
    Some(Segment {
        src: SocketAddr::V4(SocketAddrV4::new(src, port(0)?)),
        dst: SocketAddr::V4(SocketAddrV4::new(dst, port(2)?)),
        transport,
        payload: payload.to_vec(),
    })
}

/// A SIP message seen on the wire.
#[derive(Debug, Clone)]
pub struct WireSip {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub text: String,
}

impl WireSip {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// The request method (`None` for a response).
    pub fn method(&self) -> Option<&str> {
        let first = self.first_line();
        (!first.starts_with("SIP/2.0"))
            .then(|| first.split(' ').next())
            .flatten()
    }

    /// The status code (`None` for a request).
    pub fn status(&self) -> Option<u16> {
        self.first_line()
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
    }

    /// Every value of header `name` (case-insensitive, one per line).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or_default();
        head.lines()
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
            })
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// The method named in CSeq (for responses: what they answer).
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID").or_else(|| self.header("i"))
    }
}

/// The SIP messages in a pcap file, in capture order. UDP datagrams are
/// one message each; TCP streams (per direction) are re-framed by
/// Content-Length, skipping CRLF keep-alives.
pub fn sip_messages(pcap: &[u8]) -> Vec<WireSip> {
    let mut out = Vec::new();
    let mut streams: Vec<((SocketAddr, SocketAddr), Vec<u8>)> = Vec::new();
    for seg in segments(pcap) {
        match seg.transport {
            Transport::Udp => {
                if looks_like_sip(&seg.payload) {
                    out.push(WireSip {
                        src: seg.src,
                        dst: seg.dst,
                        transport: Transport::Udp,
                        text: String::from_utf8_lossy(&seg.payload).into_owned(),
                    });
                }
            }
            Transport::Tcp => {
                let key = (seg.src, seg.dst);
                let idx = match streams.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        streams.push((key, Vec::new()));
                        streams.len() - 1
                    }
                };
                let buf = &mut streams[idx].1;
                buf.extend_from_slice(&seg.payload);
                while let Some(msg) = next_frame(buf) {
                    out.push(WireSip {
                        src: seg.src,
                        dst: seg.dst,
                        transport: Transport::Tcp,
                        text: String::from_utf8_lossy(&msg).into_owned(),
                    });
                }
            }
        }
    }
    out
}

fn looks_like_sip(p: &[u8]) -> bool {
    let first = p.split(|b| *b == b'\n').next().unwrap_or_default();
    first.windows(7).any(|w| w == b"SIP/2.0")
}

/// One complete message off the front of a TCP byte stream.
fn next_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    while buf.starts_with(b"\r\n") {
        buf.drain(..2);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("l"))
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let total = end + 4 + len;
    (buf.len() >= total).then(|| buf.drain(..total).collect())
}

/// RFC 4733 telephone events in UDP datagrams sent from `src_port`:
/// (payload type, event code) per distinct event (the first packet of
/// each; a press is sent as several packets with one timestamp).
pub fn rfc4733_events(pcap: &[u8], src_port: u16) -> Vec<(u8, u8)> {
    let mut seen: Vec<(u32, u8)> = Vec::new();
    let mut out = Vec::new();
    for seg in segments(pcap) {
        let p = &seg.payload;
        if seg.transport != Transport::Udp || seg.src.port() != src_port || p.len() != 16 {
            continue;
        }
        // RTP v2 with a 12-byte header and no CSRC/extension, payload of 4
        // bytes: event, E|R|volume, duration. Audio (PT 0/8) is 160 bytes.
        if p[0] != 0x80 {
            continue;
        }
        let pt = p[1] & 0x7f;
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let event = p[12];
        if !seen.contains(&(ts, event)) {
            seen.push((ts, event));
            out.push((pt, event));
        }
    }
    out
}

/// The digit an RFC 4733 event code stands for (0–9, *, #, A–D).
pub fn event_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => char::from_digit(u32::from(event), 10),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}
