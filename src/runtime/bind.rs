//! Binding the SIP sockets. UDP and TCP share a port number per listen
//! address; with port 0 we pick one that is free for both.

use crate::config::{Config, Transport};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};

pub struct SipSockets {
    pub udp: Vec<Arc<UdpSocket>>,
    pub tcp: Vec<TcpListener>,
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Bursts of REGISTERs or INVITEs (SIPp at thousands per second)
    // overflow the default buffers; ask for 4 MiB and take what we get.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

pub async fn bind_sip(config: &Config) -> anyhow::Result<SipSockets> {
    let want_udp = config.sip.transports.contains(&Transport::Udp);
    let want_tcp = config.sip.transports.contains(&Transport::Tcp);
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for &addr in &config.sip.listen {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let u = if want_udp {
                Some(udp_socket(addr).with_context(|| format!("binding SIP UDP on {addr}"))?)
            } else {
                None
            };
            let port = match &u {
                Some(s) => s.local_addr()?.port(),
                None => addr.port(),
            };
            let t = if want_tcp {
                match tcp_listener(SocketAddr::new(addr.ip(), port)) {
                    Ok(l) => Some(l),
                    // Port 0: the UDP port we got may be taken for TCP; retry.
                    Err(_) if addr.port() == 0 && attempt < 20 => continue,
                    Err(e) => return Err(e).with_context(|| format!("binding SIP TCP on {addr}")),
                }
            } else {
                None
            };
            udp.extend(u.map(Arc::new));
            tcp.extend(t);
            break;
        }
    }
    Ok(SipSockets { udp, tcp })
}
