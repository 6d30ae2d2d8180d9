//! Where responses go (RFC 3261 §18.2.2 and RFC 3581): the server transport
//! stamps `received` and `rport` on the top Via of every request, and the
//! response goes back to the source address when `rport` was asked for.

use crate::sip::message::{HeaderName, Host, Request, Via};
use crate::sip::transport::{Peer, TransportKind};
use std::net::SocketAddr;

/// Adds `received` when the sent-by host differs from the source address
/// (§18.2.1) and fills an empty `rport` with the source port (RFC 3581 §4).
/// Returns the top Via as stamped, so the caller needn't parse it again.
pub fn stamp_received(req: &mut Request, source: &Peer) -> Option<Via> {
    let top = req.headers.get_mut(&HeaderName::Via)?;
    let mut via = Via::parse(top).ok()?;
    let ip = source.addr.ip();
    let mut changed = false;
    if via.host != Host::Ip(ip) {
        let received = match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            // RFC 5118 §4.5: no brackets in `received`.
            std::net::IpAddr::V6(v6) => v6.to_string(),
        };
        via.params.set("received", Some(received));
        changed = true;
    }
    if via.params.get("rport") == Some(None) {
        via.params
            .set("rport", Some(source.addr.port().to_string()));
        changed = true;
    }
    if changed {
        *top = via.to_string();
    }
    Some(via)
}

/// The address responses to a request with top Via `via` from `source`
/// must be sent to.
pub fn response_peer(via: Option<&Via>, source: Peer) -> Peer {
    if source.kind == TransportKind::Tcp {
        return source;
    }
    match via {
        Some(v) if !v.params.has("rport") => {
            let port = v.port.unwrap_or(5060);
            Peer::udp(SocketAddr::new(source.addr.ip(), port))
        }
        _ => source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{MessageExt, SipMessage, parse_datagram};

    fn req(via: &str) -> Request {
        let text =
            format!("OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP second\r\n\r\n");
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rport_and_received() {
        let src = Peer::udp("192.0.2.7:40000".parse().unwrap());
        let mut r = req("SIP/2.0/UDP phone.example.com:5062;rport;branch=z9hG4bK1");
        stamp_received(&mut r, &src);
        let via = r.top_via().unwrap();
        assert_eq!(via.params.value("received"), Some("192.0.2.7"));
        assert_eq!(via.params.value("rport"), Some("40000"));
        assert_eq!(response_peer(Some(&via), src).addr, src.addr);
        assert_eq!(r.headers.count(&HeaderName::Via), 2);
    }

    #[test]
    fn no_rport_goes_to_via_port() {
        let src = Peer::udp("192.0.2.7:40000".parse().unwrap());
        let mut r = req("SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1");
        stamp_received(&mut r, &src);
        let via = r.top_via().unwrap();
        assert_eq!(via.params.value("received"), None, "same host: no received");
        assert_eq!(
            response_peer(Some(&via), src).addr,
            "192.0.2.7:5062".parse().unwrap()
        );
    }
}
