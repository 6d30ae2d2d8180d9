//! RTP port allocation: even ports from the configured range (RFC 3550
//! §11 pairs RTP on even and RTCP on the next odd port), handed out
//! round-robin so a just-released port is not reused at once and late
//! packets of an old call do not land in a new one.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct PortPool {
    ip: IpAddr,
    min: u16,
    max: u16,
    cursor: AtomicU32,
}

impl PortPool {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> PortPool {
        let min = min + (min % 2);
        PortPool {
            ip,
            min,
            max,
            cursor: AtomicU32::new(0),
        }
    }

    fn slots(&self) -> u32 {
        (u32::from(self.max.saturating_sub(self.min)) / 2) + 1
    }

    /// Binds the next free even port; `None` when the whole range is busy.
    pub fn bind(&self) -> Option<UdpSocket> {
        let slots = self.slots();
        for _ in 0..slots {
            let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % slots;
            let port = u32::from(self.min) + slot * 2;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                return Some(s);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_and_exhaustion() {
        // An address of its own, so other tests' sockets are not in the way.
        let pool = PortPool::new("127.0.0.77".parse().unwrap(), 41001, 41007);
        let mut socks: Vec<_> = (0..3).map(|_| pool.bind().expect("a free port")).collect();
        let mut ports: Vec<u16> = socks
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        ports.sort();
        assert_eq!(
            ports,
            [41002, 41004, 41006],
            "the three even ports of the range"
        );
        assert!(pool.bind().is_none(), "range exhausted");
        // A released port is taken again once the cursor comes round.
        let freed = socks.remove(1).local_addr().unwrap().port();
        let again = pool.bind().expect("the released port");
        assert_eq!(again.local_addr().unwrap().port(), freed);
    }
}
