//! BYEs that must wait for an ACK. RFC 3261 §15: "the callee's UA MUST
//! NOT send a BYE on a confirmed dialog until it has received an ACK for
//! its 2xx response or until the server transaction times out." A flow
//! that answers and hangs up at once (leave a callback, then disconnect)
//! would otherwise send its BYE while the ACK is still in flight; on a
//! lossy link the caller then sees our 2xx retransmitted after the call
//! it already tore down.

use super::tu::CallRef;
use crate::sip::message::Request;
use crate::sip::transaction::ServerTxId;
use crate::sip::transport::Peer;
use std::collections::HashMap;

pub(crate) struct Held {
    pub call: CallRef,
    pub request: Request,
    pub peer: Peer,
    /// The INVITE server transaction whose ACK the BYE waits for.
    pub invite: ServerTxId,
}

/// At most one BYE per dialog: by Call-ID.
#[derive(Default)]
pub(crate) struct HeldByes {
    by_call_id: HashMap<String, Held>,
}

impl HeldByes {
    pub fn hold(&mut self, call_id: &str, held: Held) {
        self.by_call_id.insert(call_id.to_string(), held);
    }

    /// The BYE of the dialog an ACK just confirmed.
    pub fn on_ack(&mut self, call_id: &str) -> Option<Held> {
        self.by_call_id.remove(call_id)
    }

    /// The BYE waiting on an INVITE that was never acknowledged.
    pub fn on_ack_timeout(&mut self, invite: ServerTxId) -> Option<Held> {
        let call_id = self
            .by_call_id
            .iter()
            .find(|(_, h)| h.invite == invite)
            .map(|(k, _)| k.clone())?;
        self.by_call_id.remove(&call_id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tu::Command;
    use super::super::{Endpoint, Output};
    use crate::config::Config;
    use crate::registrar::Bindings;
    use crate::sip::message::{HeaderName, Method, Response};
    use crate::sip::transport::Peer;
    use std::time::{Duration, Instant};

    const INVITE: &str = "INVITE sip:4000@192.0.2.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKinv1\r\n\
        From: <sip:+12015550100@192.0.2.9>;tag=caller\r\n\
        To: <sip:4000@192.0.2.1>\r\nCall-ID: held-bye-1\r\nCSeq: 1 INVITE\r\n\
        Contact: <sip:caller@192.0.2.9:5060>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    fn byes(out: &[Output]) -> usize {
        out.iter()
            .filter(|o| matches!(o, Output::Transmit { data, .. } if data.starts_with(b"BYE ")))
            .count()
    }

    /// The endpoint with an INVITE answered 200 and the call's BYE sent
    /// at once, as a flow that disconnects right after answering does.
    fn answered_then_bye(now: Instant) -> (Endpoint, Vec<Output>, Peer) {
        let mut ep = Endpoint::new(&Config::default(), Bindings::new(), now);
        let peer = Peer::udp("192.0.2.9:5060".parse().unwrap());
        let out = ep.on_datagram(INVITE.as_bytes(), peer, now);
        let Some((call, tx, request)) = out.into_iter().find_map(|o| match o {
            Output::NewCall {
                call, tx, request, ..
            } => Some((call, tx, request)),
            _ => None,
        }) else {
            panic!("the INVITE reaches the application");
        };
        let ok = Response::to_request(&request, 200, Some("gw"))
            .with_header(HeaderName::Contact, "<sip:gw@192.0.2.1:5060>");
        ep.on_command(Command::Respond { tx, response: ok }, now);
        let bye = "BYE sip:caller@192.0.2.9:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye1\r\n\
             From: <sip:4000@192.0.2.1>;tag=gw\r\nTo: <sip:+12015550100@192.0.2.9>;tag=caller\r\n\
             Call-ID: held-bye-1\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let Ok(crate::sip::message::SipMessage::Request(bye)) =
            crate::sip::message::parse_datagram(bye.as_bytes())
        else {
            panic!("BYE parses");
        };
        assert_eq!(bye.method, Method::Bye);
        let out = ep.on_command(
            Command::Request {
                call,
                request: bye,
                peer,
            },
            now,
        );
        (ep, out, peer)
    }

    #[test]
    fn a_bye_waits_for_the_ack_of_our_200() {
        let t0 = Instant::now();
        let (mut ep, out, peer) = answered_then_bye(t0);
        assert_eq!(byes(&out), 0, "no BYE before the ACK (RFC 3261 §15)");
        let ack = "ACK sip:gw@192.0.2.1:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKack1\r\n\
            From: <sip:+12015550100@192.0.2.9>;tag=caller\r\nTo: <sip:4000@192.0.2.1>;tag=gw\r\n\
            Call-ID: held-bye-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let out = ep.on_datagram(ack.as_bytes(), peer, t0 + Duration::from_millis(700));
        assert_eq!(byes(&out), 1, "the BYE goes with the ACK");
        // A retransmitted ACK sends nothing more.
        let out = ep.on_datagram(ack.as_bytes(), peer, t0 + Duration::from_millis(800));
        assert_eq!(byes(&out), 0);
    }

    #[test]
    fn a_bye_goes_when_the_ack_never_comes() {
        let t0 = Instant::now();
        let (mut ep, out, _) = answered_then_bye(t0);
        assert_eq!(byes(&out), 0);
        let mut sent = 0;
        let mut now = t0;
        while let Some(t) = ep.next_timeout() {
            if t > t0 + Duration::from_secs(120) {
                break;
            }
            now = t.max(now);
            sent += byes(&ep.on_timeout(now));
            if sent > 0 {
                break;
            }
        }
        assert_eq!(sent, 1, "the BYE is sent when the 2xx times out");
        // 64·T1 (T1 = 500 ms): not before.
        assert!(now >= t0 + Duration::from_secs(32), "{:?}", now - t0);
    }
}
