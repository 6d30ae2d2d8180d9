//! A TCP byte stream through the framer (RFC 3261 §18.3 Content-Length
//! framing, RFC 5626 CRLF keep-alives) exactly as the transport drives it,
//! and every framed message through the stream parser.
//!
//! Property: how the stream is cut into reads must not change what is
//! framed. The same bytes are framed whole by the stateless `next_frame`,
//! and in reads of pseudo-random sizes and of one byte by the incremental
//! `Framer` the transport uses; all must yield the same messages, the same
//! keep-alive pings and the same verdict on whether framing was lost.

#![no_main]

use callgate::sip::message::framing::{Frame, Framer, next_frame};
use callgate::sip::message::parse_stream_message;
use libfuzzer_sys::fuzz_target;

/// Small enough that fuzz inputs reach the size limits.
const MAX_MESSAGE: usize = 1024;

#[derive(Debug, Default, PartialEq, Eq)]
struct Framed {
    messages: Vec<Vec<u8>>,
    pings: usize,
    lost: bool,
}

fn frame(data: &[u8], incremental: bool, mut read_sizes: impl FnMut() -> usize) -> Framed {
    let mut framer = Framer::default();
    let mut out = Framed::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = read_sizes().clamp(1, rest.len());
        let (read, tail) = rest.split_at(n);
        buf.extend_from_slice(read);
        rest = tail;
        loop {
            let frame = if incremental {
                framer.next(&buf, MAX_MESSAGE)
            } else {
                next_frame(&buf, MAX_MESSAGE)
            };
            match frame {
                Frame::Incomplete => break,
                Frame::KeepAlive { consumed, ping } => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    out.pings += usize::from(ping);
                    buf.drain(..consumed);
                }
                Frame::Message(len) => {
                    assert!(len > 0 && len <= buf.len() && len <= MAX_MESSAGE);
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    let _ = parse_stream_message(&msg);
                    out.messages.push(msg);
                }
                Frame::Error(_) => {
                    out.lost = true;
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = frame(data, false, || usize::MAX);
    // xorshift seeded from the input: reproducible, varied cut points.
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ data.len() as u64;
    for &b in data.iter().take(8) {
        state = state.rotate_left(8) ^ u64::from(b);
    }
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 64) as usize + 1
    };
    let chunked = frame(data, true, &mut next);
    assert_eq!(
        whole, chunked,
        "framing depends on how reads cut the stream"
    );
    let bytewise = frame(data, true, || 1);
    assert_eq!(
        whole, bytewise,
        "framing depends on how reads cut the stream"
    );
});
