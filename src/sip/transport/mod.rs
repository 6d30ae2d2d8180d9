//! UDP and TCP transports (RFC 3261 §18) and the peer addressing shared
//! with the transaction layer.

pub mod admission;
pub mod hop;
pub mod outbox;
pub mod peer;
pub mod tcp;
pub mod tcp_conn;
pub mod udp;

pub use peer::{ConnId, Peer, TransportKind};

use bytes::Bytes;

/// What a transport hands the SIP core.
#[derive(Debug)]
pub struct Inbound {
    pub data: Bytes,
    pub peer: Peer,
    pub kind: InboundKind,
    /// For a stream message: one of its connection's in-flight slots,
    /// given back when the core drops the message after handling it.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKind {
    /// A UDP datagram.
    Datagram,
    /// A message framed from a TCP stream.
    Stream,
    /// `data` (ours) could not be sent to `peer`: no connection could be
    /// opened (RFC 3261 §18.4: a transport error for the transaction).
    Undeliverable,
}
