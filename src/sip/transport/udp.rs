//! SIP over UDP (RFC 3261 §18.1.2, §18.2.1): one receive task per socket
//! feeding the SIP core; sends go straight out of the core.

use super::{Inbound, Peer};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest datagram we read: anything longer is truncated by the kernel and
/// then refused for its size by the endpoint.
const RECV_BUF: usize = 65_536;

#[derive(Clone)]
pub struct UdpTransport {
    sockets: Vec<Arc<UdpSocket>>,
}

impl UdpTransport {
    pub fn new(sockets: Vec<Arc<UdpSocket>>) -> Self {
        UdpTransport { sockets }
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Starts one receive loop per socket.
    pub fn spawn_receivers(&self, inbound: mpsc::Sender<Inbound>) {
        for socket in &self.sockets {
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
                                stream: false,
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
        let socket = self.sockets.iter().find(|s| {
            s.local_addr()
                .is_ok_and(|a| a.is_ipv4() == peer.addr.is_ipv4())
        });
        let Some(socket) = socket else {
            warn!(%peer, "no UDP socket for this address family");
            return;
        };
        if let Err(e) = socket.send_to(data, peer.addr).await {
            debug!(%peer, error = %e, "udp send failed");
        }
    }
}
