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

/// What an `AnsweringTrunk` saw: each INVITE's number and Call-ID, in
/// order, and the Call-IDs whose 200 was acknowledged (the customer
/// "answered" and callgate took the call).
#[derive(Debug, Clone, Default)]
pub struct TrunkLog {
    pub invites: Vec<(String, String)>,
    pub answered: Vec<(String, String)>,
}

/// A trunk that answers every call: 180 at once, 200 (with an SDP offer
/// answer) after `ring`, retransmitted until ACKed; BYE and CANCEL get 200
/// (and the INVITE a 487). Serves in a thread until dropped, at most
/// `limit` in time.
pub struct AnsweringTrunk {
    pub addr: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<TrunkLog>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AnsweringTrunk {
    pub fn start(ring: Duration, limit: Duration) -> AnsweringTrunk {
        use callgate::sip::message::{HeaderName, MessageExt};
        use std::collections::HashMap;
        use std::sync::atomic::Ordering;
        let sock = UdpSocket::bind("127.0.0.1:0").expect("trunk socket");
        let addr = sock.local_addr().expect("trunk address");
        let log = std::sync::Arc::new(std::sync::Mutex::new(TrunkLog::default()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + limit;
            // Call-ID → (when to send or resend the 200, the 200, where,
            // number, the 487 should a CANCEL come first).
            type Ringing = (Instant, Vec<u8>, SocketAddr, String, Vec<u8>);
            let mut ringing: HashMap<String, Ringing> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            let mut n_call = 0u32;
            while !s.load(Ordering::Relaxed) && Instant::now() < until {
                let now = Instant::now();
                for (when, ok, to, _, _) in ringing.values_mut() {
                    if *when <= now {
                        let _ = sock.send_to(ok, *to);
                        *when = now + Duration::from_millis(500);
                    }
                }
                sock.set_read_timeout(Some(Duration::from_millis(20))).ok();
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(SipMessage::Request(req)) = parse_datagram(&buf[..n]) else {
                    continue;
                };
                let call_id = req.call_id().unwrap_or_default().to_string();
                match req.method {
                    Method::Invite => {
                        if ringing.contains_key(&call_id) {
                            continue; // a retransmission
                        }
                        n_call += 1;
                        let number = req.uri.user.clone().unwrap_or_default();
                        let tag = format!("trunk{n_call}");
                        let ringing_resp = Response::to_request(&req, 180, Some(&tag));
                        let _ = sock.send_to(&ringing_resp.encode(), from);
                        let sdp = format!(
                            "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                            9 // discard: nobody listens, callgate sends into the void
                        );
                        let ok = Response::to_request(&req, 200, Some(&tag))
                            .with_header(HeaderName::Contact, format!("<sip:trunk@{addr}>"))
                            .with_body("application/sdp", bytes::Bytes::from(sdp));
                        l.lock()
                            .unwrap()
                            .invites
                            .push((number.clone(), call_id.clone()));
                        let terminated = Response::to_request(&req, 487, Some(&tag));
                        ringing.insert(
                            call_id,
                            (
                                Instant::now() + ring,
                                ok.encode().to_vec(),
                                from,
                                number,
                                terminated.encode().to_vec(),
                            ),
                        );
                    }
                    Method::Ack => {
                        if let Some((_, _, _, number, _)) = ringing.remove(&call_id) {
                            l.lock().unwrap().answered.push((number, call_id));
                        }
                    }
                    Method::Cancel => {
                        let _ = sock.send_to(&Response::to_request(&req, 200, None).encode(), from);
                        if let Some((_, _, to, _, terminated)) = ringing.remove(&call_id) {
                            let _ = sock.send_to(&terminated, to);
                        }
                    }
                    _ => {
                        let _ = sock.send_to(&Response::to_request(&req, 200, None).encode(), from);
                    }
                }
            }
        });
        AnsweringTrunk { addr, log, stop }
    }

    pub fn log(&self) -> TrunkLog {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for AnsweringTrunk {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
