//! A stand-in for the carrier trunk callgate dials callbacks through: a
//! UDP socket that records every INVITE's Request-URI and answers with a
//! status of the test's choosing.

use callgate::sip::message::{Method, Request, Response, SipMessage, parse_datagram};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub struct Trunk {
    sock: UdpSocket,
    pub addr: SocketAddr,
    /// Request-URIs of the INVITEs received so far.
    pub invites: Vec<String>,
}

impl Trunk {
    pub fn bind() -> Trunk {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("trunk socket");
        let addr = sock.local_addr().expect("trunk address");
        Trunk {
            sock,
            addr,
            invites: Vec::new(),
        }
    }

    /// Serves until an INVITE arrives (answered `status`; ACK and BYE get
    /// nothing and 200), or `timeout`.
    pub fn next_invite(&mut self, status: u16, timeout: Duration) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                if Instant::now() >= deadline {
                    return None;
                }
                continue;
            };
            let Ok(SipMessage::Request(req)) = parse_datagram(&buf[..n]) else {
                continue;
            };
            match req.method {
                Method::Invite => {
                    let r = Response::to_request(&req, status, Some("trunk"));
                    let _ = self.sock.send_to(&r.encode(), from);
                    self.invites.push(req.uri.to_string());
                    return Some(req);
                }
                Method::Ack => {}
                _ => {
                    let r = Response::to_request(&req, 200, Some("trunk"));
                    let _ = self.sock.send_to(&r.encode(), from);
                }
            }
        }
    }
}
