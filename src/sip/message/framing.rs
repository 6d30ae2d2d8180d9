//! Cutting messages out of a byte stream (TCP): RFC 3261 §18.3 frames by
//! Content-Length, and RFC 5626 §3.5.1 uses CRLFCRLF as a keep-alive ping
//! answered with CRLF.

use super::parse::{find_header_end_from, skip_leading_newlines};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Need more bytes.
    Incomplete,
    /// Consume `consumed` bytes of CR/LF; `ping` means a CRLFCRLF keep-alive
    /// that must be answered with a single CRLF.
    KeepAlive { consumed: usize, ping: bool },
    /// A whole message of this many bytes is at the start of the buffer.
    Message(usize),
    /// The stream can't be framed any more (bad or oversized
    /// Content-Length): the connection must be closed.
    Error(&'static str),
}

const PING: &[u8] = b"\r\n\r\n";

/// Whether `s` is CR/LF bytes that may still become a ping.
fn ping_prefix(s: &[u8]) -> bool {
    s.len() < PING.len() && PING.starts_with(s)
}

/// Keep-alive bytes at the start of `buf`. Every CRLFCRLF is a ping and
/// gets its own pong; other CR/LF bytes are skipped. The result must not
/// depend on how TCP cut the stream into reads (a ping split across two
/// segments is still a ping), so CR/LF that could be the start of a ping
/// waits for the next bytes.
fn keepalive(buf: &[u8]) -> Option<Frame> {
    if buf.starts_with(PING) {
        return Some(Frame::KeepAlive {
            consumed: PING.len(),
            ping: true,
        });
    }
    let run = buf.len() - skip_leading_newlines(buf).len();
    if run == 0 {
        return None;
    }
    // Skip up to where a ping starts or may start.
    let skip = (0..run)
        .find(|&i| {
            let tail = buf.get(i..).unwrap_or_default();
            tail.starts_with(PING) || ping_prefix(tail)
        })
        .unwrap_or(run);
    Some(if skip == 0 {
        Frame::Incomplete
    } else {
        Frame::KeepAlive {
            consumed: skip,
            ping: false,
        }
    })
}

/// Frames the start of `buf` on its own (no memory of earlier calls).
pub fn next_frame(buf: &[u8], max_size: usize) -> Frame {
    Framer::default().next(buf, max_size)
}

/// Framing for one stream that remembers how far an incomplete message
/// was examined. Re-examining the whole buffer at every read makes a
/// message that trickles in a byte per segment cost time quadratic in its
/// size (a 64 KiB header: ~2·10⁹ byte comparisons); with this it is linear.
///
/// Contract: between calls the caller only appends to `buf`, or removes
/// exactly the bytes a returned `KeepAlive` or `Message` covers.
#[derive(Debug, Default)]
pub struct Framer {
    /// No header terminator starts before this offset.
    scanned: usize,
    /// The header section is complete and the message this long.
    total: Option<usize>,
}

enum Step {
    Done(Frame),
    NeedHeader,
    NeedBody(usize),
}

impl Framer {
    pub fn next(&mut self, buf: &[u8], max_size: usize) -> Frame {
        if let Some(total) = self.total {
            if buf.len() < total {
                return Frame::Incomplete;
            }
            *self = Framer::default();
            return Frame::Message(total);
        }
        match step(buf, max_size, self.scanned) {
            Step::Done(frame) => {
                if frame != Frame::Incomplete {
                    *self = Framer::default();
                }
                frame
            }
            Step::NeedHeader => {
                // A terminator ("\n\n" or "\n\r\n") may end in the next
                // bytes: resume two bytes back.
                self.scanned = buf.len().saturating_sub(2);
                Frame::Incomplete
            }
            Step::NeedBody(total) => {
                self.total = Some(total);
                Frame::Incomplete
            }
        }
    }
}

fn step(buf: &[u8], max_size: usize, scanned: usize) -> Step {
    if buf.is_empty() {
        return Step::Done(Frame::Incomplete);
    }
    if let Some(frame) = keepalive(buf) {
        return Step::Done(frame);
    }
    let Some((body_start, header_len)) = find_header_end_from(buf, scanned) else {
        return if buf.len() > max_size {
            Step::Done(Frame::Error("header section too large"))
        } else {
            Step::NeedHeader
        };
    };
    let head = buf.get(..header_len).unwrap_or_default();
    let mut length: Option<usize> = None;
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line.get(..colon).unwrap_or_default().trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = line.get(colon + 1..).unwrap_or_default().trim_ascii();
            if length.is_some() {
                return Step::Done(Frame::Error("multiple Content-Length headers"));
            }
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 9 {
                return Step::Done(Frame::Error("bad Content-Length"));
            }
            let v = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<usize>().ok());
            match v {
                Some(v) => length = Some(v),
                None => return Step::Done(Frame::Error("bad Content-Length")),
            }
        }
    }
    let total = body_start + length.unwrap_or(0);
    if total > max_size {
        return Step::Done(Frame::Error("message too large"));
    }
    if buf.len() < total {
        Step::NeedBody(total)
    } else {
        Step::Done(Frame::Message(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_by_content_length() {
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcNEXT";
        assert_eq!(next_frame(m, 1000), Frame::Message(m.len() - 4));
        assert_eq!(next_frame(&m[..20], 1000), Frame::Incomplete);
        assert_eq!(next_frame(&m[..m.len() - 6], 1000), Frame::Incomplete);
        assert_eq!(next_frame(m, 10), Frame::Error("message too large"));
    }

    #[test]
    fn keepalives() {
        assert_eq!(
            next_frame(b"\r\n\r\nOPTIONS", 100),
            Frame::KeepAlive {
                consumed: 4,
                ping: true
            }
        );
        assert_eq!(
            next_frame(b"\r\nOPTIONS", 100),
            Frame::KeepAlive {
                consumed: 2,
                ping: false
            }
        );
        assert_eq!(
            next_frame(b"\n\r\r\n\r\n", 100),
            Frame::KeepAlive {
                consumed: 2,
                ping: false
            }
        );
    }

    /// Every frame of `stream` fed in reads of `cut` bytes through one
    /// `Framer`, and the verdict at the end.
    fn frames_in_reads(stream: &[u8], cut: usize, max: usize) -> (Vec<Frame>, Frame) {
        let mut framer = Framer::default();
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for read in stream.chunks(cut) {
            buf.extend_from_slice(read);
            loop {
                match framer.next(&buf, max) {
                    Frame::Incomplete => break,
                    Frame::Error(e) => return (frames, Frame::Error(e)),
                    f @ (Frame::KeepAlive { consumed: n, .. } | Frame::Message(n)) => {
                        buf.drain(..n);
                        frames.push(f);
                    }
                }
            }
        }
        (frames, Frame::Incomplete)
    }

    /// The incremental framer agrees with framing the whole buffer at
    /// once, for every way of cutting the stream into reads.
    #[test]
    fn a_framer_resumes_where_it_left_off() {
        let one = b"MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\nX: y\r\n\r\nhello";
        let two = b"OPTIONS sip:a@b SIP/2.0\nCSeq: 1 OPTIONS\n\n";
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(one);
        stream.extend_from_slice(two);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(one);
        let expected = vec![
            Frame::KeepAlive {
                consumed: 4,
                ping: true,
            },
            Frame::Message(one.len()),
            Frame::Message(two.len()),
            Frame::KeepAlive {
                consumed: 2,
                ping: false,
            },
            Frame::Message(one.len()),
        ];
        for cut in 1..=stream.len() {
            assert_eq!(
                frames_in_reads(&stream, cut, 1000),
                (expected.clone(), Frame::Incomplete),
                "reads of {cut}"
            );
        }
        // Limits hold however the bytes arrive.
        let long = [b'x'; 300];
        for cut in [1, 7, 300] {
            assert_eq!(
                frames_in_reads(&long, cut, 100).1,
                Frame::Error("header section too large")
            );
        }
    }

    /// Frames a stream fed in reads of `cut` bytes; counts the pings.
    fn pings_in_reads(stream: &[u8], cut: usize) -> usize {
        let mut buf = Vec::new();
        let mut pings = 0;
        for read in stream.chunks(cut) {
            buf.extend_from_slice(read);
            while let Frame::KeepAlive { consumed, ping } = next_frame(&buf, 100) {
                pings += usize::from(ping);
                buf.drain(..consumed);
            }
        }
        pings
    }

    /// Found by the `sip_stream` fuzz target: a CRLFCRLF ping cut in two
    /// by TCP was framed as two plain CRLFs and never answered (RFC 5626
    /// §3.5.1 clients then declare the flow dead). Each ping is answered
    /// however the stream is cut.
    #[test]
    fn a_ping_split_across_reads_is_still_a_ping() {
        for stream in [&b"\r\n\r\n"[..], b"\r\n\r\n\r\n\r\n", b"\n\r\n\r\n\r"] {
            let whole = pings_in_reads(stream, stream.len());
            for cut in 1..stream.len() {
                assert_eq!(
                    pings_in_reads(stream, cut),
                    whole,
                    "{stream:?} cut every {cut}"
                );
            }
        }
        assert_eq!(pings_in_reads(b"\r\n\r\n\r\n\r\n", 8), 2);
        // Whatever might still become a ping waits for more bytes.
        assert_eq!(next_frame(b"\r\n", 100), Frame::Incomplete);
        assert_eq!(next_frame(b"\r\n\r", 100), Frame::Incomplete);
    }

    #[test]
    fn broken_lengths_close() {
        assert_eq!(
            next_frame(b"A sip:a SIP/2.0\r\nContent-Length: -5\r\n\r\n", 100),
            Frame::Error("bad Content-Length")
        );
        assert_eq!(
            next_frame(b"A sip:a SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\n", 100),
            Frame::Error("multiple Content-Length headers")
        );
        assert_eq!(
            next_frame(&[b'x'; 200], 100),
            Frame::Error("header section too large")
        );
    }
}
