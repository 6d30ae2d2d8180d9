//! RTP packets on the wire (RFC 3550 §5.1). Received headers are parsed
//! here by hand; sent headers go through the `rtp` crate's codec. Payloads
//! are borrowed, never copied, on the receive path.
//!
//! Why not `rtp::header::Header::unmarshal` on receive: rtp 0.17.2 checks
//! the extension block's total length but not each element's declared
//! length inside it, and `copy_to_bytes` then panics ("advance out of
//! bounds") on a 20-byte packet anyone can send to an RTP port. Callgate
//! ignores header extensions anyway, so it only needs to skip them.

use rtp::header::Header;
use webrtc_util::marshal::{Marshal, MarshalSize};

/// The fields of a received packet we act on, and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpIn<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

const FIXED_HEADER: usize = 12;

fn be_u16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let hi = be_u16(buf, at)?;
    let lo = be_u16(buf, at.checked_add(2)?)?;
    Some(u32::from(hi) << 16 | u32::from(lo))
}

/// Parses an RTP packet; `None` for anything that is not RTP version 2
/// with a consistent length (RTCP, STUN, garbage).
pub fn parse(buf: &[u8]) -> Option<RtpIn<'_>> {
    let first = *buf.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let second = *buf.get(1)?;
    // RTCP shares ports in RFC 5761 muxing: payload types 64-95 with the
    // marker folded in are RTCP packet types 192-223.
    if (192..=223).contains(&second) {
        return None;
    }
    let padding = first & 0x20 != 0;
    let extension = first & 0x10 != 0;
    let csrc_count = usize::from(first & 0x0F);
    let mut header_len = FIXED_HEADER + 4 * csrc_count;
    if extension {
        // §5.3.1: 16-bit profile, 16-bit length in 32-bit words, then data.
        let words = usize::from(be_u16(buf, header_len + 2)?);
        header_len += 4 + 4 * words;
    }
    if header_len > buf.len() {
        return None;
    }
    let mut end = buf.len();
    if padding {
        let pad = usize::from(*buf.last()?);
        if pad == 0 || header_len + pad > end {
            return None;
        }
        end -= pad;
    }
    Some(RtpIn {
        marker: second & 0x80 != 0,
        payload_type: second & 0x7F,
        seq: be_u16(buf, 2)?,
        timestamp: be_u32(buf, 4)?,
        ssrc: be_u32(buf, 8)?,
        payload: buf.get(header_len..end)?,
    })
}

/// Writes a 12-byte header and `payload` into `out`; returns the length.
pub fn write(
    out: &mut [u8],
    marker: bool,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Option<usize> {
    let header = Header {
        version: 2,
        marker,
        payload_type,
        sequence_number: seq,
        timestamp,
        ssrc,
        ..Default::default()
    };
    let hlen = header.marshal_size();
    let total = hlen + payload.len();
    let dst = out.get_mut(..total)?;
    header.marshal_to(dst).ok()?;
    dst.get_mut(hlen..)?.copy_from_slice(payload);
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 200];
        let n = write(&mut buf, true, 8, 65535, 0xdead_beef, 42, &[1, 2, 3]).unwrap();
        assert_eq!(n, 15);
        let p = parse(&buf[..n]).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.seq, p.timestamp, p.ssrc),
            (8, 65535, 0xdead_beef, 42)
        );
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn rejects_non_rtp_and_handles_padding() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x00; 20]).is_none(), "version 0");
        assert!(
            parse(&[0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_none(),
            "RTCP SR"
        );
        assert!(parse(&[0x80, 0, 0]).is_none(), "short");
        let mut p = vec![0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9, 0, 2];
        assert_eq!(parse(&p).unwrap().payload, &[9, 9]);
        *p.last_mut().unwrap() = 200;
        assert!(parse(&p).is_none(), "padding longer than packet");
        // CSRC count claims more than is there
        assert!(parse(&[0x8F, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]).is_none());
    }

    /// These panicked inside rtp 0.17.2's unmarshal: an extension element
    /// (one-byte 0xBEDE and two-byte 0x1000 profiles) longer than the block.
    #[test]
    fn extension_elements_are_skipped_not_trusted() {
        let one_byte = [
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0,
        ];
        assert_eq!(parse(&one_byte).unwrap().payload, &[] as &[u8]);
        let two_byte = [
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x10, 0x00, 0, 1, 0x01, 0xC8, 0, 0, 7,
        ];
        assert_eq!(parse(&two_byte).unwrap().payload, &[7]);
        // Extension length pointing past the end.
        let long = [0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0, 9, 0];
        assert!(parse(&long).is_none());
        // CSRCs and an extension before the payload.
        let mut both = vec![0x91, 0x60, 0x12, 0x34, 0, 0, 0, 160, 0, 0, 0, 5];
        both.extend([0, 0, 0, 9]);
        both.extend([0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]);
        both.extend([1, 2, 3]);
        let p = parse(&both).unwrap();
        assert_eq!(
            (p.marker, p.payload_type, p.seq, p.timestamp, p.ssrc),
            (false, 96, 0x1234, 160, 5)
        );
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    /// Every header shape with every short length: never a panic, and a
    /// payload only when the header fits.
    #[test]
    fn truncations_of_every_header_shape_are_safe() {
        for first in [0x80u8, 0x90, 0xA0, 0xB0, 0x8F, 0x9F, 0xBF] {
            let mut pkt = vec![first, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
            pkt.extend(std::iter::repeat_n(0xFF, 80));
            for len in 0..pkt.len() {
                if let Some(p) = parse(&pkt[..len]) {
                    assert!(p.payload.len() < len);
                }
            }
        }
    }
}
