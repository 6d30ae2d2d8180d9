//! The asynchronous edge: binds sockets, runs the SIP core task and wires
//! the sans-IO parts to the network and the clock.

pub mod bind;
pub mod sip_core;

use crate::config::Config;
use crate::registrar::Bindings;
use std::net::SocketAddr;

/// Addresses actually bound (ports may have been 0 in the config).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub sip_udp: Vec<SocketAddr>,
    pub sip_tcp: Vec<SocketAddr>,
}

impl Bound {
    /// The line printed on stdout once callgate is ready; tests wait for it.
    pub fn ready_line(&self) -> String {
        let join = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "callgate ready sip_udp={} sip_tcp={}",
            join(&self.sip_udp),
            join(&self.sip_tcp)
        )
    }
}

/// A running gateway.
pub struct Running {
    pub bound: Bound,
    pub bindings: Bindings,
    pub core: tokio::task::JoinHandle<()>,
}

/// Binds everything and starts the tasks.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let sockets = bind::bind_sip(&config).await?;
    let bindings = Bindings::new();
    let bound = Bound {
        sip_udp: sockets
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect(),
        sip_tcp: sockets
            .tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect(),
    };
    let core = sip_core::spawn(&config, sockets, bindings.clone());
    Ok(Running {
        bound,
        bindings,
        core,
    })
}
