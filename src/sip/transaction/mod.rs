//! Transaction layer (RFC 3261 §17, RFC 6026). Each machine is a plain
//! struct fed events and the current time that returns actions: no sockets,
//! no clocks. `layer` matches messages to machines and turns actions into
//! transmissions and events for the transaction user.

pub mod invite_client;
pub mod invite_server;
pub mod key;
pub mod layer;
pub mod non_invite_client;
pub mod non_invite_server;
pub mod timers;

pub use layer::{ClientTxId, Output, ServerTxId, TransactionLayer};
pub use timers::TimerConfig;

use bytes::Bytes;

/// What a transaction machine asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes (a request or response retransmission) to the peer.
    Transmit(Bytes),
    /// Pass the response just received to the transaction user.
    Deliver,
    /// (INVITE client) send, or resend, the ACK for the non-2xx final
    /// response just received (§17.1.1.3).
    SendAck,
    /// The transaction failed by timeout: B or F for clients, H (no ACK) or
    /// L without ACK for an INVITE server (§13.3.1.4).
    Timeout,
    /// The machine is finished and can be dropped.
    Terminated,
}
