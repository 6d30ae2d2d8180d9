//! SDP offers (RFC 4566 / RFC 3264) through the parser and the answerer.
//! Properties: an answer we write parses, and read back as an answer it
//! negotiates the same codec, telephone-event type and packet time.

#![no_main]

use callgate::media::sdp::{Direction, LocalMedia, SessionDescription, answer, offer, read_answer};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(sd) = SessionDescription::parse(data) else {
        return;
    };
    for m in &sd.media {
        for pt in m.formats.iter().filter_map(|f| f.parse::<u8>().ok()) {
            let _ = m.codec_of(pt);
        }
    }
    let _ = read_answer(&sd);
    let v6 = data.len() % 2 == 0;
    let local = LocalMedia {
        address: if v6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        },
        port: 40_000,
        session_id: 1,
        version: 2,
    };
    let Ok((text, ours)) = answer(&sd, &local) else {
        return;
    };
    let parsed = SessionDescription::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("our answer does not parse ({e}): {text:?}"));
    let back =
        read_answer(&parsed).unwrap_or_else(|e| panic!("our answer is unusable ({e}): {text:?}"));
    assert_eq!(
        (back.law, back.pt, back.dtmf_pt, back.ptime_ms),
        (ours.law, ours.pt, ours.dtmf_pt, ours.ptime_ms),
        "our answer says something else than we negotiated: {text:?}"
    );
    let o = offer(&local, Direction::SendRecv);
    assert!(SessionDescription::parse(o.as_bytes()).is_ok());
});
