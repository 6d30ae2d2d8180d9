//! The SIP core task: owns the endpoint (transaction layer, registrar) and
//! is the only place that touches it, so no locks are needed on the hot
//! path. Datagrams and stream frames come in over a channel, transmissions
//! go out through the transports, timers are one `sleep_until`.

use super::bind::SipSockets;
use crate::config::Config;
use crate::endpoint::{Endpoint, Output};
use crate::registrar::Bindings;
use crate::sip::transport::tcp::{TcpLimits, TcpTransport};
use crate::sip::transport::udp::UdpTransport;
use crate::sip::transport::{Inbound, TransportKind};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Inbound queue depth: at ~10 µs per message this is under 0.2 s of work,
/// and beyond it datagrams are shed rather than queued without bound.
const INBOUND_QUEUE: usize = 16_384;

pub fn spawn(
    config: &Config,
    sockets: SipSockets,
    bindings: Bindings,
) -> tokio::task::JoinHandle<()> {
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let udp = UdpTransport::new(sockets.udp);
    udp.spawn_receivers(in_tx.clone());
    let tcp = TcpTransport::new(
        TcpLimits {
            max_connections: config.sip.max_tcp_connections,
            idle_timeout: Duration::from_secs(config.sip.tcp_idle_timeout_s),
            max_message: config.sip.max_message_bytes,
        },
        in_tx,
    );
    for l in sockets.tcp {
        tcp.spawn_listener(l);
    }
    let endpoint = Endpoint::new(config, bindings, Instant::now());
    tokio::spawn(run(endpoint, in_rx, udp, tcp))
}

async fn run(
    mut endpoint: Endpoint,
    mut inbound: mpsc::Receiver<Inbound>,
    udp: UdpTransport,
    tcp: TcpTransport,
) {
    let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let far = Duration::from_secs(3600);
    loop {
        let deadline = endpoint
            .next_timeout()
            .unwrap_or_else(|| Instant::now() + far);
        let outputs = tokio::select! {
            msg = inbound.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                let mut outputs = handle(&mut endpoint, msg, now);
                // Drain what is already queued before going back to select:
                // fewer wake-ups under load.
                for _ in 0..64 {
                    match inbound.try_recv() {
                        Ok(msg) => outputs.extend(handle(&mut endpoint, msg, now)),
                        Err(_) => break,
                    }
                }
                outputs
            }
            _ = tokio::time::sleep_until(deadline.into()) => endpoint.on_timeout(Instant::now()),
            _ = housekeeping.tick() => {
                endpoint.housekeeping(Instant::now());
                Vec::new()
            }
        };
        for o in outputs {
            match o {
                Output::Transmit { peer, data } => match peer.kind {
                    TransportKind::Udp => udp.send(&peer, &data).await,
                    TransportKind::Tcp => tcp.send(&peer, data),
                },
            }
        }
    }
}

fn handle(endpoint: &mut Endpoint, msg: Inbound, now: Instant) -> Vec<Output> {
    if msg.stream {
        endpoint.on_stream_message(&msg.data, msg.peer, now)
    } else {
        endpoint.on_datagram(&msg.data, msg.peer, now)
    }
}
