//! SIP over UDP (RFC 3261 §18.1.2, §18.2.1): one receive task per socket
//! feeding the SIP core; sends go straight out of the core.

use super::{Inbound, InboundKind, Peer};
use bytes::Bytes;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest datagram we read: anything longer is truncated by the kernel and
/// then refused for its size by the endpoint.
const RECV_BUF: usize = 65_536;

#[derive(Clone)]
pub struct UdpTransport {
    /// Each socket with whether it is IPv4, looked up once here rather
    /// than by a getsockname() per message sent.
    sockets: Vec<(bool, Arc<UdpSocket>)>,
}

impl UdpTransport {
    pub fn new(sockets: Vec<Arc<UdpSocket>>) -> Self {
        let sockets = sockets
            .into_iter()
            .filter_map(|s| Some((s.local_addr().ok()?.is_ipv4(), s)))
            .collect();
        UdpTransport { sockets }
    }

    /// Starts one receive loop per socket.
    pub fn spawn_receivers(&self, inbound: mpsc::Sender<Inbound>) {
        for (_, socket) in &self.sockets {
            let socket = socket.clone();
            let inbound = inbound.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; RECV_BUF];
                loop {
                    match socket.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                            let msg = Inbound {
                                data,
                                peer: Peer::udp(from),
                                kind: InboundKind::Datagram,
                                slot: None,
                            };
                            // Under overload, shed datagrams here rather
                            // than queue without bound: UDP senders retry.
                            if let Err(mpsc::error::TrySendError::Closed(_)) = inbound.try_send(msg)
                            {
                                break;
                            }
                        }
                        // ICMP port unreachable surfaces as an error on some
                        // platforms; it is not fatal for a server socket.
                        Err(e) => debug!(error = %e, "udp recv error"),
                    }
                }
            });
        }
    }

    /// Sends from the socket of the right address family.
    pub async fn send(&self, peer: &Peer, data: &Bytes) {
        let v4 = peer.addr.is_ipv4();
        let Some((_, socket)) = self.sockets.iter().find(|(is_v4, _)| *is_v4 == v4) else {
            warn!(%peer, "no UDP socket for this address family");
            return;
        };
        if let Err(e) = socket.send_to(data, peer.addr).await {
            debug!(%peer, error = %e, "udp send failed");
        }
    }
}
