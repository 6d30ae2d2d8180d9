//! RTP packets (RFC 3550) through the receive-path header parser, and
//! telephone-events (RFC 4733) through the DTMF receiver.
//!
//! Input: a sequence of records `[length][milliseconds to advance][packet]`.
//! Properties: a parsed payload lies inside the packet; a header we write
//! parses back to the same fields; the packets our own sender emits for a
//! key press are reported by a fresh receiver exactly once.

#![no_main]

use callgate::media::dtmf::{DtmfReceiver, char_to_event, event_packets, event_to_char};
use callgate::media::rtp_packet;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

const DTMF_PT: u8 = 101;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut receiver = DtmfReceiver::new();
    let mut rest = data;
    while let [len, advance, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (packet, after) = tail.split_at(n);
        rest = after;
        now += Duration::from_millis(u64::from(*advance));
        let Some(p) = rtp_packet::parse(packet) else {
            continue;
        };
        assert!(p.payload.len() + 12 <= packet.len());
        // Every packet, not only PT 101, so that events with any
        // header shape reach the receiver.
        let _ = receiver.on_packet(p.ssrc, p.timestamp, p.marker, p.payload, now);
        if p.payload_type == DTMF_PT {
            let _ = receiver.on_packet(p.ssrc, p.timestamp, p.marker, p.payload, now);
        }
        let mut out = [0u8; 1500];
        if let Some(w) = rtp_packet::write(
            &mut out,
            p.marker,
            p.payload_type,
            p.seq,
            p.timestamp,
            p.ssrc,
            p.payload,
        ) {
            let again = rtp_packet::parse(&out[..w]).expect("our own packet parses");
            assert_eq!(
                (
                    again.marker,
                    again.payload_type,
                    again.seq,
                    again.timestamp,
                    again.ssrc,
                    again.payload
                ),
                (
                    p.marker,
                    p.payload_type,
                    p.seq,
                    p.timestamp,
                    p.ssrc,
                    p.payload
                )
            );
        }
    }

    // Our sender against our receiver: one key press, reported once.
    if let [event, d0, d1, ptime, ssrc @ ..] = data {
        let Some(digit) = event_to_char(event % 16) else {
            return;
        };
        assert_eq!(char_to_event(digit), Some(event % 16));
        let duration = u16::from_be_bytes([*d0, *d1]);
        let ptime = u16::from(*ptime).max(1) * 8;
        let ssrc = ssrc
            .iter()
            .fold(0u32, |a, b| a.rotate_left(8) ^ u32::from(*b));
        let mut rx = DtmfReceiver::new();
        let mut t = start;
        let mut heard = Vec::new();
        for (marker, payload) in event_packets(digit, duration, ptime, 10) {
            let mut b = [0u8; 4];
            payload.write(&mut b);
            heard.extend(rx.on_packet(ssrc, 4242, marker, &b, t).map(|d| d.digit));
            t += Duration::from_millis(u64::from(ptime / 8));
        }
        assert_eq!(heard, vec![digit], "duration {duration}, ptime {ptime}");
    }
});
