//! UDP and TCP transports (RFC 3261 §18) and the peer addressing shared
//! with the transaction layer.

pub mod admission;
pub mod outbox;
pub mod peer;
pub mod tcp;
pub mod tcp_conn;
pub mod udp;

pub use peer::{ConnId, Peer, TransportKind};

use bytes::Bytes;

/// A message (datagram or framed stream message) for the SIP core.
#[derive(Debug)]
pub struct Inbound {
    pub data: Bytes,
    pub peer: Peer,
    pub stream: bool,
    /// For a stream message: one of its connection's in-flight slots,
    /// given back when the core drops the message after handling it.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
}
