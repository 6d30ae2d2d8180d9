//! Where a request physically goes: the next hop named by a URI (a Route,
//! a Path or a Contact), anchored to the flow we already have with the
//! peer (RFC 3261 §8.1.2 and §18.1.1, RFC 3263 §4 without DNS, RFC 5626
//! §5.3 flows).
//!
//! The rule, for every request callgate sends towards a registered agent
//! or inside a dialog: the hop's *host* must be the address of the flow
//! (the proxy or phone we already exchange messages with); its *port* and
//! *transport* come from the URI. A URI naming any other host (or a name,
//! which we do not resolve) is not followed and the flow is used as it
//! is. That keeps issue 9's rule (an offer never goes to a host a phone
//! merely wrote down, such as the trunk) and stops anyone from turning
//! callgate's BYEs, pings and refreshes against a third party, while
//! honouring what proxies and phones ask for: Kamailio's Path and
//! Record-Route carry its listening port and `transport=tcp`; a phone
//! registered over UDP with a `;transport=tcp` Contact is called over TCP
//! (at the address it registered from: `contact_flow`).

use super::{Peer, TransportKind};
use crate::sip::message::{Scheme, Uri};
use std::net::SocketAddr;

/// The transport `uri` asks for: its `transport` parameter; without one
/// `default` (RFC 3263 §4.1 makes it UDP for a `sip:` Route; for a Contact
/// callers pass the flow's, so a phone that registered over TCP without
/// saying so is still reached over its connection). `None` for what
/// callgate does not speak (TLS, SCTP, WebSocket, `sips:`).
pub fn uri_transport(uri: &Uri, default: TransportKind) -> Option<TransportKind> {
    if uri.scheme == Scheme::Sips {
        return None;
    }
    match uri.transport().as_deref() {
        Some("tcp") => Some(TransportKind::Tcp),
        Some("udp") => Some(TransportKind::Udp),
        Some(_) => None,
        None => Some(default),
    }
}

/// The peer for a request whose next hop is `hop`, sent over `flow`
/// unless the hop says otherwise (see the module comment). `default` is
/// the transport when the URI names none.
pub fn anchored(hop: &Uri, flow: Peer, default: TransportKind) -> Peer {
    let Some(ip) = hop.host.as_ref().and_then(|h| h.ip()) else {
        return flow;
    };
    if ip.to_canonical() != flow.addr.ip().to_canonical() {
        return flow;
    }
    let Some(kind) = uri_transport(hop, default) else {
        return flow;
    };
    let port = hop.port.unwrap_or(5060);
    let addr = SocketAddr::new(flow.addr.ip(), port);
    match (kind, flow.kind) {
        // The connection the flow runs on while it lives; a new one to
        // the hop's listening port once it has closed (the flow's own
        // port is an ephemeral one nobody listens on).
        (TransportKind::Tcp, TransportKind::Tcp) => Peer::tcp(addr, flow.conn),
        (TransportKind::Tcp, TransportKind::Udp) => Peer::tcp(addr, None),
        (TransportKind::Udp, _) => Peer::udp(addr),
    }
}

/// The way back to a phone that sent `contact` from `source` (a REGISTER,
/// or a dialog-creating request or response) when no proxy asked to be
/// in the path: the source itself, its address and port (issue 9: never
/// the host or port the phone merely wrote in its Contact; behind NAT
/// that is a private address anyway). Only the transport may come from
/// the Contact: a phone that sent over UDP but asks for TCP
/// (`;transport=tcp`) gets a TCP connection to the same address (phones
/// listen on one port for both). A TCP flow stays on its connection;
/// once that has closed, the flow is gone (RFC 5626 §5.3) and the request
/// fails instead of going elsewhere.
pub fn contact_flow(contact: &Uri, source: Peer) -> Peer {
    match (source.kind, uri_transport(contact, source.kind)) {
        (TransportKind::Udp, Some(TransportKind::Tcp)) => Peer::tcp(source.addr, None),
        _ => source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    fn udp(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    fn tcp(s: &str, conn: u64) -> Peer {
        Peer::tcp(s.parse().unwrap(), Some(conn))
    }

    #[test]
    fn route_port_and_transport_at_the_flows_host() {
        let flow = udp("192.0.2.10:5060");
        // Kamailio's double Record-Route: the TCP side of the proxy.
        let p = anchored(
            &uri("sip:192.0.2.10:5070;transport=tcp;r2=on;lr"),
            flow,
            TransportKind::Udp,
        );
        assert_eq!(p, Peer::tcp("192.0.2.10:5070".parse().unwrap(), None));
        let p = anchored(&uri("sip:192.0.2.10;lr"), flow, TransportKind::Udp);
        assert_eq!(p, udp("192.0.2.10:5060"));
    }

    #[test]
    fn a_tcp_flow_is_kept_and_reconnects_to_the_listening_port() {
        let flow = tcp("192.0.2.10:41234", 7);
        let p = anchored(
            &uri("sip:192.0.2.10:5060;transport=tcp;lr"),
            flow,
            TransportKind::Udp,
        );
        assert_eq!(p.kind, TransportKind::Tcp);
        assert_eq!(p.conn, Some(7), "same connection while it lives");
        assert_eq!(p.addr, "192.0.2.10:5060".parse().unwrap());
    }

    #[test]
    fn other_hosts_and_names_are_never_followed() {
        let flow = udp("203.0.113.5:40000");
        for hop in [
            "sip:198.51.100.7:5062;transport=tcp;lr",
            "sip:127.0.0.1:5080;lr",
            "sip:proxy.example.com;lr",
            "sip:+19005550100@10.0.0.1:5080;user=phone",
            // Same host, a transport we don't speak: the flow.
            "sip:203.0.113.5:5061;transport=tls;lr",
            "sips:203.0.113.5;lr",
        ] {
            assert_eq!(anchored(&uri(hop), flow, TransportKind::Udp), flow, "{hop}");
        }
    }

    #[test]
    fn contact_transport_only_the_address_is_the_sources() {
        let src = udp("192.0.2.20:5060");
        // Registered over UDP, asks for TCP: TCP to the same address.
        let p = contact_flow(&uri("sip:alice@192.0.2.20:5062;transport=tcp"), src);
        assert_eq!(p, Peer::tcp("192.0.2.20:5060".parse().unwrap(), None));
        // The Contact's port or host is never followed.
        for c in [
            "sip:alice@192.0.2.20:5062",
            "sip:alice@192.0.2.20:5062;transport=udp",
            "sip:alice@10.0.0.5:5060;transport=tls",
            "sip:+19005550100@127.0.0.1:5080;user=phone",
        ] {
            assert_eq!(contact_flow(&uri(c), src), src, "{c}");
        }
        // Registered over TCP: its connection, whatever the Contact says.
        let t = tcp("192.0.2.20:50000", 3);
        for c in [
            "sip:alice@192.0.2.20:5062",
            "sip:alice@192.0.2.20:5062;transport=tcp",
            "sip:alice@10.0.0.5:5060;transport=udp",
        ] {
            assert_eq!(contact_flow(&uri(c), t), t, "{c}");
        }
    }
}
