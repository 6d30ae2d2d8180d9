//! The SIP core task: owns the endpoint (transaction layer, registrar,
//! call routing) and is the only place that touches it, so no locks are
//! needed on the hot path. Datagrams and stream frames come in over one
//! channel, call commands over another; transmissions go out through the
//! transports; timers are one `sleep_until`.

use super::bind::SipSockets;
use crate::app::App;
use crate::call::{CallEvent, CallRef, Command};
use crate::config::Config;
use crate::endpoint::{Endpoint, Output};
use crate::sip::transport::tcp::{TcpLimits, TcpTransport};
use crate::sip::transport::udp::UdpTransport;
use crate::sip::transport::{Inbound, InboundKind, TransportKind};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Inbound queue depth: at ~10 µs per message this is under 0.2 s of work,
/// and beyond it datagrams are shed rather than queued without bound.
const INBOUND_QUEUE: usize = 16_384;

pub fn spawn(
    config: &Config,
    sockets: SipSockets,
    endpoint: Endpoint,
    commands: mpsc::UnboundedReceiver<Command>,
    app: Arc<App>,
) -> tokio::task::JoinHandle<()> {
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let udp = UdpTransport::new(sockets.udp);
    udp.spawn_receivers(in_tx.clone());
    let tcp = TcpTransport::new(
        TcpLimits {
            max_connections: config.sip.max_tcp_connections,
            max_per_source: config.sip.max_tcp_connections_per_source,
            trusted: config.security.trusted.clone(),
            idle_timeout: Duration::from_secs(config.sip.tcp_idle_timeout_s),
            message_timeout: Duration::from_secs(config.sip.tcp_message_timeout_s),
            send_timeout: Duration::from_secs(config.sip.tcp_send_timeout_s),
            max_message: config.sip.max_message_bytes,
        },
        in_tx,
    );
    for l in sockets.tcp {
        tcp.spawn_listener(l);
    }
    let core = Core {
        endpoint,
        udp,
        tcp,
        app,
        calls: HashMap::new(),
        max_calls: config.sip.max_calls,
    };
    tokio::spawn(core.run(in_rx, commands))
}

struct Core {
    endpoint: Endpoint,
    udp: UdpTransport,
    tcp: TcpTransport,
    app: Arc<App>,
    calls: HashMap<CallRef, mpsc::UnboundedSender<CallEvent>>,
    max_calls: usize,
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = Duration::from_secs(3600);
        loop {
            let deadline = self
                .endpoint
                .next_timeout()
                .unwrap_or_else(|| Instant::now() + far);
            let outputs = tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    let now = Instant::now();
                    let mut outputs = self.received(msg, now);
                    // Drain what is already queued before going back to
                    // select: fewer wake-ups under load.
                    for _ in 0..64 {
                        match inbound.try_recv() {
                            Ok(msg) => outputs.extend(self.received(msg, now)),
                            Err(_) => break,
                        }
                    }
                    outputs
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    let now = Instant::now();
                    let mut outputs = self.command(cmd, now);
                    for _ in 0..64 {
                        match commands.try_recv() {
                            Ok(cmd) => outputs.extend(self.command(cmd, now)),
                            Err(_) => break,
                        }
                    }
                    outputs
                }
                _ = tokio::time::sleep_until(deadline.into()) => self.endpoint.on_timeout(Instant::now()),
                _ = housekeeping.tick() => {
                    self.endpoint.housekeeping(Instant::now());
                    self.calls.retain(|_, tx| !tx.is_closed());
                    Vec::new()
                }
            };
            self.dispatch(outputs).await;
            self.endpoint.update_gauges();
            self.app.stats.calls_active.store(
                self.calls.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    fn handle(&mut self, msg: Inbound, now: Instant) -> Vec<Output> {
        match msg.kind {
            InboundKind::Stream => self.endpoint.on_stream_message(&msg.data, msg.peer, now),
            InboundKind::Datagram => self.endpoint.on_datagram(&msg.data, msg.peer, now),
            InboundKind::Undeliverable => self.endpoint.on_undeliverable(&msg.data, msg.peer, now),
        }
    }

    /// Every message as it arrives, at TRACE (`RUST_LOG=callgate::sip::wire=trace`).
    fn received(&mut self, msg: Inbound, now: Instant) -> Vec<Output> {
        tracing::trace!(target: "callgate::sip::wire", peer = %msg.peer, "received\n{}", String::from_utf8_lossy(&msg.data));
        self.handle(msg, now)
    }

    fn command(&mut self, cmd: Command, now: Instant) -> Vec<Output> {
        match &cmd {
            Command::Attach { call, events } => {
                self.calls.insert(*call, events.clone());
            }
            Command::Ended { call } => {
                self.calls.remove(call);
            }
            _ => {}
        }
        self.endpoint.on_command(cmd, now)
    }

    async fn dispatch(&mut self, mut outputs: Vec<Output>) {
        // New calls may produce more outputs (a refusal): loop until done.
        while !outputs.is_empty() {
            let mut more = Vec::new();
            for o in outputs {
                match o {
                    Output::Transmit { peer, data } => {
                        tracing::trace!(target: "callgate::sip::wire", %peer, "sent\n{}", String::from_utf8_lossy(&data));
                        match peer.kind {
                            TransportKind::Udp => self.udp.send(&peer, &data).await,
                            TransportKind::Tcp => self.tcp.send(&peer, data),
                        }
                    }
                    Output::NewCall {
                        call,
                        tx,
                        request,
                        peer,
                    } => {
                        if self.calls.len() >= self.max_calls {
                            tracing::warn!(
                                calls = self.calls.len(),
                                "at capacity: refusing call with 503"
                            );
                            more.extend(self.endpoint.refuse_call(
                                call,
                                tx,
                                &request,
                                503,
                                Some(10),
                                Instant::now(),
                            ));
                        } else {
                            let events = self.app.start_inbound(call, tx, request, peer);
                            self.calls.insert(call, events);
                        }
                    }
                    Output::ToCall { call, event } => {
                        if let Some(tx) = self.calls.get(&call) {
                            let _ = tx.send(event);
                        }
                    }
                }
            }
            outputs = more;
        }
    }
}
