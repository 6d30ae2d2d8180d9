//! RTP packets on the wire (RFC 3550 §5.1), through the `rtp` crate's
//! header codec. Payloads are borrowed, never copied, on the receive path.

use bytes::Buf;
use rtp::header::Header;
use webrtc_util::marshal::{Marshal, MarshalSize, Unmarshal};

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

/// Parses an RTP packet; `None` for anything that is not RTP version 2
/// with a consistent length (RTCP, STUN, garbage).
pub fn parse(buf: &[u8]) -> Option<RtpIn<'_>> {
    let first = *buf.first()?;
    if first >> 6 != 2 {
        return None;
    }
    // RTCP shares ports in RFC 5761 muxing: payload types 64-95 with the
    // marker folded in are RTCP packet types 192-223.
    let pt_byte = *buf.get(1)?;
    if (192..=223).contains(&pt_byte) {
        return None;
    }
    let mut cursor = buf;
    let header = Header::unmarshal(&mut cursor).ok()?;
    let header_len = buf.len() - cursor.remaining();
    let mut end = buf.len();
    if header.padding {
        let pad = usize::from(*buf.last()?);
        if pad == 0 || header_len + pad > end {
            return None;
        }
        end -= pad;
    }
    Some(RtpIn {
        marker: header.marker,
        payload_type: header.payload_type,
        seq: header.sequence_number,
        timestamp: header.timestamp,
        ssrc: header.ssrc,
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
}
