//! One UDP datagram through the SIP parser, every typed header accessor,
//! request validation and the 4xx/5xx builder; then the encoder's output
//! must parse again to the same encoding (what we send is what we mean).

#![no_main]

use callgate::sip::message::build::sanitize_reason;
use callgate::sip::message::validate::validate_request;
use callgate::sip::message::{HeaderName, MessageExt, Response, SipMessage, parse_datagram};
use libfuzzer_sys::fuzz_target;

fn exercise(m: &impl MessageExt) {
    let _ = m
        .top_via()
        .map(|v| (v.branch().map(str::len), v.sent_by(), v.to_string()));
    let _ = m.top_branch();
    let _ = m.cseq();
    let _ = m
        .addr_from()
        .map(|a| (a.tag().map(str::len), a.to_string()));
    let _ = m.addr_to().map(|a| a.to_string());
    let _ = m
        .contacts()
        .map(|cs| cs.iter().map(|c| c.to_string()).count());
    let _ = m.call_id();
    let _ = m.content_type();
    for h in [
        HeaderName::Expires,
        HeaderName::MaxForwards,
        HeaderName::ContentLength,
    ] {
        let _ = m.header_u32(&h);
    }
}

fuzz_target!(|data: &[u8]| {
    let msg = match parse_datagram(data) {
        Ok(m) => m,
        Err(bad) => {
            // What the endpoint answers a malformed request with.
            if let Some(headers) = bad.request_headers {
                let resp = Response::for_headers(&headers, 400, Some("fuzz"))
                    .with_reason(sanitize_reason(&bad.reason));
                let wire = resp.encode();
                assert!(
                    parse_datagram(&wire).is_ok(),
                    "our own 400 does not parse: {:?}",
                    String::from_utf8_lossy(&wire)
                );
            }
            return;
        }
    };
    match &msg {
        SipMessage::Request(req) => {
            exercise(req);
            let _ = req.uri.to_string();
            let _ = req.uri.user_unescaped();
            let _ = req.uri.transport();
            let _ = req.uri.equivalent(&req.uri);
            if let Err(rejection) = validate_request(req) {
                let resp = rejection.respond_to(req, "fuzz");
                let wire = resp.encode();
                assert!(
                    matches!(parse_datagram(&wire), Ok(SipMessage::Response(_))),
                    "our own {} to a request does not parse: {:?}",
                    resp.status,
                    String::from_utf8_lossy(&wire)
                );
            }
            let ok = Response::to_request(req, 200, Some("fuzz")).encode();
            assert!(
                parse_datagram(&ok).is_ok(),
                "our own 200 does not parse: {:?}",
                String::from_utf8_lossy(&ok)
            );
        }
        SipMessage::Response(resp) => exercise(resp),
    }
    let wire = msg.encode();
    let again = parse_datagram(&wire).unwrap_or_else(|e| {
        panic!(
            "re-encoded message does not parse ({e:?}): {:?}",
            String::from_utf8_lossy(&wire)
        )
    });
    assert_eq!(again.encode(), wire, "encoding is not stable");
});
