//! Where a message came from or goes to.

use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// Reliable transports switch off retransmission timers (§17).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }

    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }
}

/// Identifies one accepted or opened TCP connection.
pub type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub kind: TransportKind,
    pub addr: SocketAddr,
    /// For TCP: the connection the message arrived on, so that responses
    /// go back over it (RFC 3261 §18.2.2).
    pub conn: Option<ConnId>,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            kind: TransportKind::Udp,
            addr,
            conn: None,
        }
    }

    pub fn tcp(addr: SocketAddr, conn: Option<ConnId>) -> Peer {
        Peer {
            kind: TransportKind::Tcp,
            addr,
            conn,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.kind.via_name().to_ascii_lowercase(),
            self.addr
        )
    }
}
