//! SIP over TCP (RFC 3261 §18.3): Content-Length framing, CRLF keep-alives
//! (RFC 5626 §3.5.1), responses on the connection the request came in on,
//! limits on connection count, idle time and message size.

use super::{ConnId, Inbound, InboundKind, Peer};
use crate::sip::message::framing::{Frame, next_frame};
use bytes::{Buf, Bytes, BytesMut};
use dashmap::DashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub max_message: usize,
}

struct Conn {
    remote: SocketAddr,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Clone)]
pub struct TcpTransport {
    conns: Arc<DashMap<ConnId, Conn>>,
    next_id: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
    limits: TcpLimits,
    inbound: mpsc::Sender<Inbound>,
}

impl TcpTransport {
    pub fn new(limits: TcpLimits, inbound: mpsc::Sender<Inbound>) -> Self {
        TcpTransport {
            conns: Arc::new(DashMap::new()),
            next_id: Arc::new(AtomicU64::new(1)),
            open: Arc::new(AtomicUsize::new(0)),
            limits,
            inbound,
        }
    }

    pub fn spawn_listener(&self, listener: TcpListener) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        if this.open.load(Ordering::Relaxed) >= this.limits.max_connections {
                            warn!(%remote, "TCP connection limit reached; refusing");
                            drop(stream);
                            continue;
                        }
                        this.spawn_connection(stream, remote);
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    fn spawn_connection(&self, stream: TcpStream, remote: SocketAddr) -> ConnId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        self.conns.insert(id, Conn { remote, tx });
        self.open.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(reason) = this.serve(stream, remote, id, rx).await {
                debug!(%remote, %reason, "TCP connection closed");
            }
            this.conns.remove(&id);
            this.open.fetch_sub(1, Ordering::Relaxed);
        });
        id
    }

    async fn serve(
        &self,
        mut stream: TcpStream,
        remote: SocketAddr,
        id: ConnId,
        mut outgoing: mpsc::Receiver<Bytes>,
    ) -> Result<(), String> {
        let _ = stream.set_nodelay(true);
        let mut buf = BytesMut::with_capacity(8192);
        let peer = Peer::tcp(remote, Some(id));
        loop {
            tokio::select! {
                read = tokio::time::timeout(self.limits.idle_timeout, stream.read_buf(&mut buf)) => {
                    match read {
                        Err(_) => return Err("idle timeout".into()),
                        Ok(Err(e)) => return Err(e.to_string()),
                        Ok(Ok(0)) => return Err("closed by peer".into()),
                        Ok(Ok(_)) => {}
                    }
                    loop {
                        match next_frame(&buf, self.limits.max_message) {
                            Frame::Incomplete => break,
                            Frame::KeepAlive { consumed, ping } => {
                                buf.advance(consumed);
                                if ping {
                                    stream.write_all(b"\r\n").await.map_err(|e| e.to_string())?;
                                }
                            }
                            Frame::Message(len) => {
                                let data = buf.split_to(len).freeze();
                                let msg = Inbound { data, peer, kind: InboundKind::Stream };
                                // Backpressure: a stream can wait for the core.
                                self.inbound.send(msg).await.map_err(|_| "core gone".to_string())?;
                            }
                            // RFC 4475 §3.1.2.3/§3.3.9: framing is lost; the
                            // only safe thing is to close.
                            Frame::Error(reason) => return Err(reason.to_string()),
                        }
                    }
                }
                Some(data) = outgoing.recv() => {
                    stream.write_all(&data).await.map_err(|e| e.to_string())?;
                }
            }
        }
    }

    /// Sends on the peer's connection: the one it came in on, or any open
    /// one to the same address, or a new one.
    pub fn send(&self, peer: &Peer, data: Bytes) {
        let sender = peer
            .conn
            .and_then(|id| self.conns.get(&id).map(|c| c.tx.clone()))
            .or_else(|| {
                self.conns
                    .iter()
                    .find(|c| c.remote == peer.addr)
                    .map(|c| c.tx.clone())
            });
        match sender {
            Some(s) => {
                if s.try_send(data).is_err() {
                    debug!(%peer, "TCP connection backlog full or closed; message dropped");
                }
            }
            // Connecting can take seconds: never inside the caller's task.
            // If it fails the core hears of it, so a request's transaction
            // ends at once (§17.1.4) instead of waiting out Timer B or F.
            None => {
                let this = self.clone();
                let peer = *peer;
                tokio::spawn(async move {
                    match this.connect(peer.addr).await {
                        Some(s) => {
                            let _ = s.send(data).await;
                        }
                        None => {
                            let failed = Inbound {
                                data,
                                peer,
                                kind: InboundKind::Undeliverable,
                            };
                            let _ = this.inbound.send(failed).await;
                        }
                    }
                });
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Option<mpsc::Sender<Bytes>> {
        if self.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            return None;
        }
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let id = self.spawn_connection(stream, addr);
                self.conns.get(&id).map(|c| c.tx.clone())
            }
            Ok(Err(e)) => {
                debug!(%addr, error = %e, "TCP connect failed");
                None
            }
            Err(_) => {
                debug!(%addr, "TCP connect timed out");
                None
            }
        }
    }
}
