//! TCP helpers for transport tests: connecting from a chosen loopback
//! address, and raising the test process's open-file limit for tests that
//! hold thousands of sockets.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit and
/// returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// A TCP connection to `target` from `source` (port chosen by the kernel).
pub fn connect_from(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.bind(&SocketAddr::new(source, 0).into())?;
    s.connect_timeout(&target.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// Like `connect_from` with a small receive buffer, so that a peer that
/// does not read fills it quickly.
pub fn connect_small_rcvbuf(target: SocketAddr, bytes: usize) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // Before connect, so the window is advertised small from the start.
    s.set_recv_buffer_size(bytes)?;
    s.connect_timeout(&target.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// Whether `ip` can be bound here (127.0.0.0/8 is all loopback on Linux).
pub fn can_bind(ip: IpAddr) -> bool {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}
