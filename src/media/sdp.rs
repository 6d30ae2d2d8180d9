//! SDP (RFC 4566) for a G.711 gateway, and the offer/answer rules of
//! RFC 3264: audio with PCMU, PCMA and telephone-event (RFC 4733).
//!
//! A small typed model of our own: the `sdp` crate does not resolve static
//! payload types offered without `a=rtpmap` (legal and common).

use super::g711::Law;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The answer to an offer with this direction (RFC 3264 §6.1).
    pub fn mirror(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    pub fn we_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the peer should be sending to us (the RTP timeout applies).
    pub fn we_receive(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Our direction in a session the peer holds: it offered `sendonly`
    /// (we answered `recvonly`) or `inactive` (RFC 3264 §8.4, RFC 6337
    /// §5.3). A holding peer may send nothing at all.
    pub fn held_by_peer(self) -> bool {
        matches!(self, Direction::RecvOnly | Direction::Inactive)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
}

impl MediaDescription {
    /// Encoding name and clock of a payload type: from `a=rtpmap`, or the
    /// static assignment of RFC 3551 for 0 and 8.
    pub fn codec_of(&self, pt: u8) -> Option<(String, u32)> {
        if let Some(m) = self.rtpmaps.iter().find(|m| m.pt == pt) {
            return Some((m.encoding.to_ascii_lowercase(), m.clock));
        }
        match pt {
            0 => Some(("pcmu".into(), 8000)),
            8 => Some(("pcma".into(), 8000)),
            _ => None,
        }
    }

    fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| f.parse::<u8>().ok())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_session: String,
    pub origin_version: u64,
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    #[error("no audio stream with a codec in common (PCMU, PCMA)")]
    NoCommonCodec,
}

fn parse_connection(v: &str) -> Result<IpAddr, SdpError> {
    // c=IN IP4 192.0.2.1[/ttl] — multicast TTL suffixes are cut off.
    let mut it = v.split_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(SdpError::Malformed("bad c= line"));
    };
    let addr = addr.split('/').next().unwrap_or_default();
    addr.parse()
        .map_err(|_| SdpError::Malformed("bad address in c="))
}

impl SessionDescription {
    pub fn parse(text: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(text).map_err(|_| SdpError::Malformed("not UTF-8"))?;
        let mut sd = SessionDescription {
            origin_session: String::new(),
            origin_version: 0,
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut saw_version = false;
        for raw in text.lines() {
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (kind, value) = line
                .split_once('=')
                .ok_or(SdpError::Malformed("line without '='"))?;
            match (kind, sd.media.last_mut()) {
                ("v", _) => {
                    if value.trim() != "0" {
                        return Err(SdpError::Malformed("version is not 0"));
                    }
                    saw_version = true;
                }
                ("o", None) => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() < 6 {
                        return Err(SdpError::Malformed("bad o= line"));
                    }
                    sd.origin_session = f.get(1).copied().unwrap_or_default().to_string();
                    sd.origin_version = f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
                }
                ("c", None) => sd.connection = Some(parse_connection(value)?),
                ("c", Some(m)) => m.connection = Some(parse_connection(value)?),
                ("m", _) => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    let [media, port, proto, formats @ ..] = f.as_slice() else {
                        return Err(SdpError::Malformed("bad m= line"));
                    };
                    let port = port
                        .split('/')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .ok_or(SdpError::Malformed("bad port in m="))?;
                    sd.media.push(MediaDescription {
                        media: media.to_string(),
                        port,
                        proto: proto.to_string(),
                        formats: formats.iter().map(|s| s.to_string()).collect(),
                        connection: None,
                        rtpmaps: Vec::new(),
                        direction: None,
                        ptime: None,
                    });
                }
                ("a", m) => {
                    let (name, val) = match value.split_once(':') {
                        Some((n, v)) => (n, Some(v)),
                        None => (value, None),
                    };
                    if let Some(d) = Direction::parse(name) {
                        match m {
                            Some(m) => m.direction = Some(d),
                            None => sd.direction = Some(d),
                        }
                    } else if let (Some(m), Some(v)) = (m, val) {
                        match name {
                            "rtpmap" => {
                                if let Some(map) = parse_rtpmap(v) {
                                    m.rtpmaps.push(map);
                                }
                            }
                            "ptime" => m.ptime = v.trim().parse().ok(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(SdpError::Malformed("no v= line"));
        }
        Ok(sd)
    }
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.trim().split_once(' ')?;
    let mut parts = rest.trim().split('/');
    Some(RtpMap {
        pt: pt.parse().ok()?,
        encoding: parts.next()?.to_string(),
        clock: parts.next()?.trim().parse().ok()?,
    })
}

/// What both sides agreed on for the audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaParams {
    pub law: Law,
    /// Payload type for audio (0 or 8 in practice).
    pub pt: u8,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub dtmf_pt: Option<u8>,
    pub ptime_ms: u32,
    /// Where to send RTP; `None` when the peer holds with 0.0.0.0 or port 0.
    pub remote: Option<SocketAddr>,
    /// Our direction (send and/or receive).
    pub direction: Direction,
}

impl MediaParams {
    pub fn samples_per_packet(&self) -> u32 {
        8 * self.ptime_ms
    }

    pub fn we_send(&self) -> bool {
        self.direction.we_send() && self.remote.is_some()
    }
}

/// Our side of a negotiation.
#[derive(Debug, Clone)]
pub struct LocalMedia {
    pub address: IpAddr,
    pub port: u16,
    pub session_id: u64,
    pub version: u64,
}

fn ptime_ok(p: u32) -> bool {
    (10..=60).contains(&p) && p.is_multiple_of(10)
}

fn remote_of(sd: &SessionDescription, m: &MediaDescription) -> Option<SocketAddr> {
    let ip = m.connection.or(sd.connection)?;
    if ip.is_unspecified() || m.port == 0 {
        return None;
    }
    Some(SocketAddr::new(ip, m.port))
}

fn write_header(out: &mut String, local: &LocalMedia) {
    let ipv = if local.address.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    };
    let _ = write!(
        out,
        "v=0\r\no=callgate {} {} IN {ipv} {}\r\ns=callgate\r\nc=IN {ipv} {}\r\nt=0 0\r\n",
        local.session_id, local.version, local.address, local.address
    );
}

fn write_audio(
    out: &mut String,
    port: u16,
    law: Law,
    pt: u8,
    dtmf: Option<u8>,
    ptime: u32,
    dir: Direction,
) {
    let _ = write!(out, "m=audio {port} RTP/AVP {pt}");
    if let Some(d) = dtmf {
        let _ = write!(out, " {d}");
    }
    let name = match law {
        Law::Ulaw => "PCMU",
        Law::Alaw => "PCMA",
    };
    let _ = write!(out, "\r\na=rtpmap:{pt} {name}/8000\r\n");
    if let Some(d) = dtmf {
        let _ = write!(
            out,
            "a=rtpmap:{d} telephone-event/8000\r\na=fmtp:{d} 0-16\r\n"
        );
    }
    let _ = write!(out, "a=ptime:{ptime}\r\na={}\r\n", dir.as_str());
}

/// What one audio stream offers that we can use.
struct Formats {
    law: Law,
    pt: u8,
    dtmf_pt: Option<u8>,
    ptime_ms: u32,
}

/// The first G.711 format in the stream's order of preference, its
/// telephone-event format if any, and a usable ptime (else 20 ms).
fn formats(m: &MediaDescription) -> Option<Formats> {
    let (law, pt) = m.payload_types().find_map(|pt| {
        match m.codec_of(pt).as_ref().map(|(e, c)| (e.as_str(), *c)) {
            Some(("pcmu", 8000)) => Some((Law::Ulaw, pt)),
            Some(("pcma", 8000)) => Some((Law::Alaw, pt)),
            _ => None,
        }
    })?;
    let dtmf_pt = m.payload_types().find(|&pt| {
        m.codec_of(pt)
            .is_some_and(|(e, c)| e == "telephone-event" && c == 8000)
    });
    Some(Formats {
        law,
        pt,
        dtmf_pt,
        ptime_ms: m.ptime.filter(|p| ptime_ok(*p)).unwrap_or(20),
    })
}

/// Answers an offer (RFC 3264 §6): the first audio stream with PCMU or
/// PCMA, in the offerer's order of preference; every other stream is
/// refused with port 0. The answer's direction mirrors the offer's.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
) -> Result<(String, MediaParams), SdpError> {
    let mut chosen: Option<(usize, MediaParams)> = None;
    for (i, m) in offer.media.iter().enumerate() {
        if chosen.is_some() || m.media != "audio" || m.port == 0 || !m.proto.starts_with("RTP/AVP")
        {
            continue;
        }
        let Some(Formats {
            law,
            pt,
            dtmf_pt,
            ptime_ms,
        }) = formats(m)
        else {
            continue;
        };
        let offered_dir = m
            .direction
            .or(offer.direction)
            .unwrap_or(Direction::SendRecv);
        let remote = remote_of(offer, m);
        // RFC 3264 §8.4: c=0.0.0.0 is the RFC 2543 way of saying "hold".
        let offered_dir = if remote.is_none() && offered_dir == Direction::SendRecv {
            Direction::SendOnly
        } else {
            offered_dir
        };
        chosen = Some((
            i,
            MediaParams {
                law,
                pt,
                dtmf_pt,
                ptime_ms,
                remote,
                direction: offered_dir.mirror(),
            },
        ));
    }
    let (index, params) = chosen.ok_or(SdpError::NoCommonCodec)?;
    let mut out = String::with_capacity(256);
    write_header(&mut out, local);
    for (i, m) in offer.media.iter().enumerate() {
        if i == index {
            write_audio(
                &mut out,
                local.port,
                params.law,
                params.pt,
                params.dtmf_pt,
                params.ptime_ms,
                params.direction,
            );
        } else {
            // Refused stream: same media and proto, port 0, first format.
            let fmt = m.formats.first().map(String::as_str).unwrap_or("0");
            let _ = write!(out, "m={} 0 {} {fmt}\r\n", m.media, m.proto);
        }
    }
    Ok((out, params))
}

/// Our offer for an outbound call: PCMU, PCMA, telephone-event 101.
pub fn offer(local: &LocalMedia, direction: Direction) -> String {
    let mut out = String::with_capacity(256);
    write_header(&mut out, local);
    let _ = write!(
        out,
        "m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={}\r\n",
        local.port,
        direction.as_str()
    );
    out
}

/// Reads the answer to our `offer` (RFC 3264 §7): the first codec listed
/// is the one to use.
pub fn read_answer(answer: &SessionDescription) -> Result<MediaParams, SdpError> {
    let m = answer
        .media
        .iter()
        .find(|m| m.media == "audio" && m.port != 0)
        .ok_or(SdpError::NoCommonCodec)?;
    let f = formats(m).ok_or(SdpError::NoCommonCodec)?;
    let dir = m
        .direction
        .or(answer.direction)
        .unwrap_or(Direction::SendRecv);
    Ok(MediaParams {
        law: f.law,
        pt: f.pt,
        dtmf_pt: f.dtmf_pt,
        ptime_ms: f.ptime_ms,
        remote: remote_of(answer, m),
        // Their answer's direction, seen from our side.
        direction: dir.mirror(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalMedia {
        LocalMedia {
            address: "10.0.0.1".parse().unwrap(),
            port: 20000,
            session_id: 42,
            version: 1,
        }
    }

    fn sd(s: &str) -> SessionDescription {
        SessionDescription::parse(s.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    #[test]
    fn static_types_without_rtpmap_and_dtmf_at_96() {
        let offer = sd(
            "v=0\no=- 1 1 IN IP4 192.0.2.5\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 4000 RTP/AVP 18 8 0 96\na=rtpmap:96 telephone-event/8000\na=fmtp:96 0-15\n",
        );
        let (text, p) = answer(&offer, &local()).unwrap();
        assert_eq!(p.law, Law::Alaw, "offerer's order: 8 before 0");
        assert_eq!(p.pt, 8);
        assert_eq!(p.dtmf_pt, Some(96));
        assert_eq!(p.remote, Some("192.0.2.5:4000".parse().unwrap()));
        assert!(text.contains("m=audio 20000 RTP/AVP 8 96\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:96 telephone-event/8000"));
        assert!(text.contains("a=sendrecv"));
        assert!(text.contains("c=IN IP4 10.0.0.1"));
    }

    #[test]
    fn no_common_codec_is_refused() {
        let offer = sd(
            "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 4000 RTP/AVP 18 9\na=rtpmap:18 G729/8000\n",
        );
        assert_eq!(
            answer(&offer, &local()).unwrap_err(),
            SdpError::NoCommonCodec
        );
        // PCMU at 16 kHz is not G.711.
        let offer = sd(
            "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 4000 RTP/AVP 97\na=rtpmap:97 PCMU/16000\n",
        );
        assert_eq!(
            answer(&offer, &local()).unwrap_err(),
            SdpError::NoCommonCodec
        );
    }

    #[test]
    fn hold_offers_are_mirrored() {
        let base =
            "v=0\no=- 1 2 IN IP4 h\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
        let (t, p) = answer(&sd(&format!("{base}a=sendonly\n")), &local()).unwrap();
        assert!(t.contains("a=recvonly"));
        assert!(!p.we_send());
        let (t, _) = answer(&sd(&format!("{base}a=inactive\n")), &local()).unwrap();
        assert!(t.contains("a=inactive"));
        let (t, p) = answer(
            &sd(&base.replace("IN IP4 192.0.2.5", "IN IP4 0.0.0.0")),
            &local(),
        )
        .unwrap();
        assert!(t.contains("a=recvonly"), "{t}");
        assert_eq!(p.remote, None);
        let (t, p) = answer(&sd(&format!("{base}a=recvonly\n")), &local()).unwrap();
        assert!(t.contains("a=sendonly"));
        assert!(p.we_send());
    }

    #[test]
    fn other_streams_refused_with_port_zero_and_ptime_honoured() {
        let offer = sd(
            "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=video 5000 RTP/AVP 31\nm=audio 4000 RTP/AVP 0\na=ptime:30\n",
        );
        let (t, p) = answer(&offer, &local()).unwrap();
        assert!(t.starts_with("v=0\r\n"));
        let m_lines: Vec<_> = t.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            vec!["m=video 0 RTP/AVP 31", "m=audio 20000 RTP/AVP 0"]
        );
        assert_eq!(p.ptime_ms, 30);
        assert_eq!(p.samples_per_packet(), 240);
    }

    #[test]
    fn media_level_connection_and_ipv6() {
        let offer =
            sd("v=0\no=- 1 1 IN IP6 h\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\nc=IN IP6 2001:db8::1\n");
        let (_, p) = answer(&offer, &local()).unwrap();
        assert_eq!(p.remote, Some("[2001:db8::1]:4000".parse().unwrap()));
    }

    #[test]
    fn offer_and_answer_round_trip() {
        let o = offer(&local(), Direction::SendRecv);
        let parsed = sd(&o);
        let (a, p) = answer(
            &parsed,
            &LocalMedia {
                port: 30000,
                ..local()
            },
        )
        .unwrap();
        assert_eq!((p.law, p.dtmf_pt), (Law::Ulaw, Some(101)));
        let back = read_answer(&sd(&a)).unwrap();
        assert_eq!(back.law, Law::Ulaw);
        assert_eq!(back.remote, Some("10.0.0.1:30000".parse().unwrap()));
        assert_eq!(back.direction, Direction::SendRecv);
    }

    #[test]
    fn corpus_sdp_never_panics() {
        for body in [
            "",
            "v=1",
            "v=0\nm=audio x RTP/AVP 0",
            "v=0\nc=IN IP4 999.1.1.1",
            "v=0\nm=audio 1",
            "\u{0}\u{ff}",
        ] {
            let _ = SessionDescription::parse(body.as_bytes());
        }
    }
}
