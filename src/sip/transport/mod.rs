//! UDP and TCP transports (RFC 3261 §18) and the peer addressing shared
//! with the transaction layer.

pub mod peer;

pub use peer::{ConnId, Peer, TransportKind};
