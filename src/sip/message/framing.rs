//! Cutting messages out of a byte stream (TCP): RFC 3261 §18.3 frames by
//! Content-Length, and RFC 5626 §3.5.1 uses CRLFCRLF as a keep-alive ping
//! answered with CRLF.

use super::parse::{find_header_end, skip_leading_newlines};

#[derive(Debug, PartialEq, Eq)]
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

pub fn next_frame(buf: &[u8], max_size: usize) -> Frame {
    if buf.is_empty() {
        return Frame::Incomplete;
    }
    let rest = skip_leading_newlines(buf);
    let leading = buf.len() - rest.len();
    if leading > 0 {
        let crlfs = buf.get(..leading).unwrap_or_default();
        let ping = crlfs.windows(4).any(|w| w == b"\r\n\r\n");
        return Frame::KeepAlive {
            consumed: leading,
            ping,
        };
    }
    let Some((body_start, header_len)) = find_header_end(buf) else {
        return if buf.len() > max_size {
            Frame::Error("header section too large")
        } else {
            Frame::Incomplete
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
                return Frame::Error("multiple Content-Length headers");
            }
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) || value.len() > 9 {
                return Frame::Error("bad Content-Length");
            }
            let v = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<usize>().ok());
            match v {
                Some(v) => length = Some(v),
                None => return Frame::Error("bad Content-Length"),
            }
        }
    }
    let total = body_start + length.unwrap_or(0);
    if total > max_size {
        return Frame::Error("message too large");
    }
    if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
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
            next_frame(b"\r\n", 100),
            Frame::KeepAlive {
                consumed: 2,
                ping: false
            }
        );
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
