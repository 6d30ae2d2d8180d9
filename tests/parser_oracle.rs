//! The parser against rsip (a differential oracle) and against mutated
//! corpus messages (it must never panic, whatever the bytes).

mod common;

use callgate::sip::message::{MessageExt, SipMessage, parse_datagram, parse_stream_message};
use rsip::prelude::*;

fn corpus_messages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["rfc4475", "rfc5118", "fuzz/pjsip-fuzz-sip-seed"] {
        let path = common::corpus_dir().join(dir);
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .expect("corpus")
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".sha256") {
                continue;
            }
            out.push((
                format!("{dir}/{name}"),
                std::fs::read(e.path()).expect("read"),
            ));
        }
    }
    out
}

#[test]
fn agrees_with_rsip_where_both_accept() {
    let mut compared = 0;
    for (name, data) in corpus_messages() {
        let (Ok(ours), Ok(theirs)) = (
            parse_datagram(&data),
            rsip::SipMessage::try_from(data.as_slice()),
        ) else {
            continue;
        };
        match (&ours, &theirs) {
            (SipMessage::Request(a), rsip::SipMessage::Request(b)) => {
                assert_eq!(a.method.as_str(), b.method.to_string(), "{name}: method");
            }
            (SipMessage::Response(a), rsip::SipMessage::Response(b)) => {
                assert_eq!(a.status, u16::from(b.status_code.clone()), "{name}: status");
            }
            _ => panic!("{name}: request/response disagreement"),
        }
        let (call_id, cseq) = match &ours {
            SipMessage::Request(r) => (
                r.call_id().map(str::to_string),
                r.cseq().ok().map(|c| c.seq),
            ),
            SipMessage::Response(r) => (
                r.call_id().map(str::to_string),
                r.cseq().ok().map(|c| c.seq),
            ),
        };
        if let Ok(cid) = theirs.call_id_header() {
            assert_eq!(
                call_id.as_deref(),
                Some(cid.value().trim()),
                "{name}: Call-ID"
            );
        }
        if let Some(Ok(theirs_cseq)) = theirs.cseq_header().ok().map(|c| c.typed()) {
            assert_eq!(cseq, Some(theirs_cseq.seq), "{name}: CSeq");
        }
        compared += 1;
    }
    assert!(compared >= 30, "only {compared} messages compared");
}

/// A small deterministic PRNG so failures reproduce.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_messages_never_panic() {
    let seeds = corpus_messages();
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    let tokens: &[&[u8]] = &[
        b"\r\n",
        b" ",
        b":",
        b";",
        b",",
        b"<",
        b">",
        b"\"",
        b"\\",
        b"[",
        b"]",
        b"%",
        b"\0",
        b"\xff",
        b"\r\n ",
        b"Content-Length: 99999999999\r\n",
        b"v: ",
        b"SIP/2.0 ",
    ];
    let mut runs = 0;
    for (_, seed) in &seeds {
        for _ in 0..300 {
            let mut m = seed.clone();
            for _ in 0..=rng.below(4) {
                match rng.below(5) {
                    0 if !m.is_empty() => {
                        let i = rng.below(m.len());
                        m[i] ^= 1 << rng.below(8);
                    }
                    1 if !m.is_empty() => {
                        let cut = rng.below(m.len());
                        m.truncate(cut);
                    }
                    2 => {
                        let i = rng.below(m.len() + 1);
                        let t = tokens[rng.below(tokens.len())];
                        m.splice(i..i, t.iter().copied());
                    }
                    3 if m.len() > 2 => {
                        let a = rng.below(m.len());
                        let b = (a + rng.below(40)).min(m.len());
                        m.drain(a..b);
                    }
                    _ => {
                        let i = rng.below(m.len() + 1);
                        let dup: Vec<u8> = m[i..(i + rng.below(60)).min(m.len())].to_vec();
                        m.splice(i..i, dup);
                    }
                }
            }
            if let Ok(msg) = parse_datagram(&m) {
                // Typed accessors and re-encoding must not panic either.
                if let SipMessage::Request(r) = &msg {
                    let _ = callgate::sip::message::validate::validate_request(r);
                    let _ = r.contacts();
                    let _ = r.top_via();
                }
                let _ = msg.encode();
            }
            let _ = parse_stream_message(&m);
            let _ = callgate::sip::message::framing::next_frame(&m, 65535);
            runs += 1;
        }
    }
    assert!(runs > 10_000);
}
