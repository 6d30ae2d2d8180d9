//! UDP and TCP transports (RFC 3261 §18) and the peer addressing shared
//! with the transaction layer.

pub mod hop;
pub mod peer;
pub mod tcp;
pub mod udp;

pub use peer::{ConnId, Peer, TransportKind};

use bytes::Bytes;

/// A message (datagram or framed stream message) for the SIP core.
#[derive(Debug)]
pub struct Inbound {
    pub data: Bytes,
    pub peer: Peer,
    pub stream: bool,
}
