//! An agent's softphone for tests: registers, then answers, declines or
//! ignores the offers callgate sends, with real RTP.

use super::rtp::RtpPeer;
use super::ua::{Registration, Ua};
use callgate::sip::message::{HeaderName, MessageExt, Method, Request, Response};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Agent {
    pub ua: Ua,
    pub rtp: RtpPeer,
    pub user: String,
    reg: Registration,
}

/// An offer the agent's phone received (and answered as told).
pub struct Offered {
    pub invite: Request,
    pub to_tag: String,
    /// Where callgate wants our RTP.
    pub media: SocketAddr,
}

pub enum Answer {
    /// 180, then 200 with an SDP answer in the given codec (0 or 8).
    Accept(u8),
    /// 180 then 486.
    Decline,
    /// 180 and nothing else: the offer rings out (or is cancelled).
    Ring,
}

impl Agent {
    pub fn register(target: SocketAddr, user: &str, secret: &str) -> Agent {
        Self::register_on(Ua::udp(target), user, secret)
    }

    /// Registers from a socket bound to `bind` (another loopback address).
    pub fn register_from(bind: &str, target: SocketAddr, user: &str, secret: &str) -> Agent {
        Self::register_on(Ua::udp_from(bind, target), user, secret)
    }

    /// Registers over a TCP connection (kept open for the offers).
    pub fn register_tcp(target: SocketAddr, user: &str, secret: &str) -> Agent {
        Self::register_on(Ua::tcp(target), user, secret)
    }

    fn register_on(mut ua: Ua, user: &str, secret: &str) -> Agent {
        let mut reg = Registration::new(&mut ua, user, secret);
        let r = reg.register(&mut ua, 600).expect("register answered");
        assert_eq!(r.status, 200, "{user} registers");
        Agent {
            ua,
            rtp: RtpPeer::new(),
            user: user.into(),
            reg,
        }
    }

    pub fn unregister(&mut self) {
        let contact = format!("Contact: {}\n", self.reg.contact);
        let r = self
            .reg
            .register_with(&mut self.ua, &contact, Some(0), None)
            .expect("answer");
        assert_eq!(r.status, 200);
    }

    /// Waits for an INVITE and answers it as told. `None` only when no
    /// offer arrived in time: a declined or ringing offer is still an
    /// offer, so a test that expects one cannot pass without it.
    pub fn offer(&mut self, timeout: Duration, answer: Answer) -> Option<Offered> {
        let deadline = Instant::now() + timeout;
        let invite = loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let req = self.ua.recv_request(left)?;
            if req.method == Method::Invite {
                break req;
            }
            self.ua.respond_to(&req, 200);
        };
        let tag = format!("ag{}", rand_tag());
        let ringing = Response::to_request(&invite, 180, Some(&tag));
        self.ua.send_raw(&ringing.encode());
        let offer = callgate::media::sdp::SessionDescription::parse(&invite.body).expect("offer");
        let m = &offer.media[0];
        let media = SocketAddr::new(m.connection.or(offer.connection).expect("c="), m.port);
        match answer {
            Answer::Ring => {}
            Answer::Decline => {
                std::thread::sleep(Duration::from_millis(100));
                let r = Response::to_request(&invite, 486, Some(&tag));
                self.ua.send_raw(&r.encode());
            }
            Answer::Accept(pt) => {
                let name = if pt == 8 { "PCMA" } else { "PCMU" };
                let sdp = self.rtp.offer(&[(pt, name), (101, "telephone-event")]);
                let contact = format!("<sip:{}@{}>", self.user, self.ua.local_hostport());
                let r = Response::to_request(&invite, 200, Some(&tag))
                    .with_header(HeaderName::Contact, contact)
                    .with_body("application/sdp", bytes::Bytes::from(sdp));
                self.ua.send_raw(&r.encode());
            }
        }
        Some(Offered {
            invite,
            to_tag: tag,
            media,
        })
    }

    /// The contact an offer is for (callgate's `X-Callgate-Contact`).
    pub fn contact_of(o: &Offered) -> String {
        o.invite
            .headers
            .get(&HeaderName::Other("X-Callgate-Contact".into()))
            .unwrap_or_default()
            .to_string()
    }

    /// Reads SIP until a request of `method` arrives; answers it 200 (a
    /// CANCEL also gets the INVITE's 487).
    pub fn expect(
        &mut self,
        method: Method,
        timeout: Duration,
        ringing: Option<&Request>,
    ) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let req = self.ua.recv_request(left)?;
            self.ua.respond_to(&req, 200);
            if req.method == Method::Cancel
                && let Some(inv) = ringing
            {
                let r = Response::to_request(inv, 487, Some("agx"));
                self.ua.send_raw(&r.encode());
            }
            if req.method == method {
                return Some(req);
            }
        }
    }

    /// BYE to callgate for an answered offer.
    pub fn hang_up(&mut self, o: &Offered) {
        let contact = o
            .invite
            .headers
            .get(&HeaderName::Contact)
            .map(|c| {
                c.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default();
        let text = format!(
            "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {local};rport;branch=z9hG4bKbye{tag}\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            local = self.ua.local_hostport(),
            tag = o.to_tag,
            to = o.invite.headers.get(&HeaderName::To).unwrap_or_default(),
            from = o.invite.headers.get(&HeaderName::From).unwrap_or_default(),
            cid = o.invite.call_id().unwrap_or_default(),
        );
        self.ua.send_raw(text.as_bytes());
    }
}

fn rand_tag() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}
