//! A small SIP user agent for tests: sends hand-written requests over UDP
//! or TCP and reads responses. Digest responses are computed here
//! independently of callgate's own code.

use callgate::sip::message::{HeaderName, Response, SipMessage, parse_datagram};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

enum Link {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
}

pub struct Ua {
    link: Link,
    pub local: SocketAddr,
    pub target: SocketAddr,
    counter: u64,
}

impl Ua {
    pub fn udp(target: SocketAddr) -> Ua {
        let bind = if target.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        };
        Self::udp_from(bind, target)
    }

    /// A UA bound to a given local address (another loopback IP, say).
    pub fn udp_from(bind: &str, target: SocketAddr) -> Ua {
        let sock = UdpSocket::bind(bind).expect("bind ua");
        let local = sock.local_addr().expect("local");
        Ua {
            link: Link::Udp(sock),
            local,
            target,
            counter: 0,
        }
    }

    pub fn tcp(target: SocketAddr) -> Ua {
        let s = TcpStream::connect_timeout(&target, Duration::from_secs(5)).expect("connect");
        let local = s.local_addr().expect("local");
        Ua {
            link: Link::Tcp(s, Vec::new()),
            local,
            target,
            counter: 0,
        }
    }

    /// A second handle on the UDP socket (to send from the same address
    /// and port while this UA keeps receiving).
    pub fn udp_clone(&self) -> Option<UdpSocket> {
        match &self.link {
            Link::Udp(s) => s.try_clone().ok(),
            Link::Tcp(..) => None,
        }
    }

    /// A TCP UA connected from a given local address (another loopback
    /// IP); `None` when the connection cannot be made.
    pub fn tcp_from(source: std::net::IpAddr, target: SocketAddr) -> Option<Ua> {
        let s = super::tcp::connect_from(source, target).ok()?;
        let local = s.local_addr().ok()?;
        Some(Ua {
            link: Link::Tcp(s, Vec::new()),
            local,
            target,
            counter: 0,
        })
    }

    pub fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp(..) => "TCP",
        }
    }

    /// A fresh branch / tag / Call-ID suffix.
    pub fn unique(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}x{}", self.local.port(), self.counter)
    }

    /// `host:port` of our end, bracketed for IPv6.
    pub fn local_hostport(&self) -> String {
        self.local.to_string()
    }

    pub fn send_raw(&mut self, data: &[u8]) {
        match &mut self.link {
            Link::Udp(s) => {
                s.send_to(data, self.target).expect("send");
            }
            Link::Tcp(s, _) => s.write_all(data).expect("write"),
        }
    }

    /// Like `send_raw` but tolerates the other side closing mid-write.
    pub fn try_send_raw(&mut self, data: &[u8]) -> bool {
        match &mut self.link {
            Link::Udp(s) => s.send_to(data, self.target).is_ok(),
            Link::Tcp(s, _) => s.write_all(data).is_ok(),
        }
    }

    /// Sends text written with `\n` line ends as CRLF.
    pub fn send(&mut self, text: &str) {
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.send_raw(crlf.as_bytes());
    }

    /// One raw message (UDP datagram, or TCP frame by Content-Length).
    pub fn recv_raw(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        match &mut self.link {
            Link::Udp(s) => {
                s.set_read_timeout(Some(timeout)).ok()?;
                let mut buf = vec![0u8; 65536];
                let (n, _) = s.recv_from(&mut buf).ok()?;
                buf.truncate(n);
                Some(buf)
            }
            Link::Tcp(s, pending) => {
                let deadline = Instant::now() + timeout;
                loop {
                    while pending.starts_with(b"\r\n") {
                        pending.drain(..2);
                    }
                    if let Some(end) = find(pending, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_string();
                        let cl = head
                            .lines()
                            .find_map(|l| {
                                let (n, v) = l.split_once(':')?;
                                let n = n.trim().to_ascii_lowercase();
                                (n == "content-length" || n == "l")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        let total = end + 4 + cl;
                        if pending.len() >= total {
                            return Some(pending.drain(..total).collect());
                        }
                    }
                    let left = deadline.checked_duration_since(Instant::now())?;
                    s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                        .ok()?;
                    let mut buf = [0u8; 8192];
                    match s.read(&mut buf) {
                        Ok(0) => return None,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                        Err(_) => return None,
                    }
                }
            }
        }
    }

    /// Raw bytes as they arrive (no framing), for keep-alive checks.
    pub fn recv_raw_bytes(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        match &mut self.link {
            Link::Tcp(s, pending) => {
                if !pending.is_empty() {
                    return Some(std::mem::take(pending));
                }
                s.set_read_timeout(Some(timeout)).ok()?;
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).ok()?;
                (n > 0).then(|| buf[..n].to_vec())
            }
            Link::Udp(_) => self.recv_raw(timeout),
        }
    }

    /// Whether the TCP connection was closed by the other side.
    pub fn tcp_closed(&mut self, timeout: Duration) -> bool {
        match &mut self.link {
            Link::Tcp(s, _) => {
                let _ = s.set_read_timeout(Some(timeout));
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return true,
                        Ok(_) => continue,
                        Err(e) => {
                            return !matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            );
                        }
                    }
                }
            }
            Link::Udp(_) => false,
        }
    }

    /// The next response, skipping any request that arrives meanwhile.
    pub fn recv_response(&mut self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let raw = self.recv_raw(left)?;
            if let Ok(SipMessage::Response(r)) = parse_datagram(&raw) {
                return Some(r);
            }
        }
    }

    /// The first final response, skipping provisional ones.
    pub fn final_response(&mut self, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let r = self.recv_response(left)?;
            if r.status >= 200 {
                return Some(r);
            }
        }
    }

    /// Sends a request and returns its final response.
    /// `None` also when the request cannot be written (connection closed).
    pub fn request(&mut self, text: &str) -> Option<Response> {
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        if !self.try_send_raw(crlf.as_bytes()) {
            return None;
        }
        self.final_response(Duration::from_secs(5))
    }

    pub fn options(&mut self, extra_headers: &str) -> String {
        let branch = self.unique("z9hG4bKo");
        let tag = self.unique("t");
        let cid = self.unique("opt");
        format!(
            "OPTIONS sip:{target} SIP/2.0\nVia: SIP/2.0/{tr} {local};rport;branch={branch}\nFrom: <sip:tester@{local}>;tag={tag}\nTo: <sip:{target}>\nCall-ID: {cid}\nCSeq: 1 OPTIONS\nMax-Forwards: 70\n{extra_headers}Content-Length: 0\n\n",
            target = self.target,
            tr = self.transport(),
            local = self.local_hostport(),
        )
    }
}

/// An established call from the UA's side.
#[derive(Debug, Clone)]
pub struct UaCall {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub cseq: u32,
    pub remote_target: String,
    pub answer: Response,
}

impl Ua {
    /// Reads until a request arrives (answering nothing), or `None`.
    pub fn recv_request(&mut self, timeout: Duration) -> Option<callgate::sip::message::Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let raw = self.recv_raw(left)?;
            if let Ok(SipMessage::Request(r)) = parse_datagram(&raw) {
                return Some(r);
            }
        }
    }

    /// Sends a response to a request received from the gateway.
    pub fn respond_to(&mut self, req: &callgate::sip::message::Request, status: u16) {
        let r = callgate::sip::message::Response::to_request(req, status, Some("uatag"));
        self.send_raw(&r.encode());
    }

    pub fn invite_text(
        &mut self,
        number: &str,
        sdp: &str,
        call_id: &str,
        from_tag: &str,
    ) -> String {
        let branch = self.unique("z9hG4bKi");
        format!(
            "INVITE sip:{number}@{target} SIP/2.0\nVia: SIP/2.0/{tr} {local};rport;branch={branch}\nFrom: \"Test Caller\" <sip:+12015550100@{local}>;tag={from_tag}\nTo: <sip:{number}@{target}>\nCall-ID: {call_id}\nCSeq: 1 INVITE\nMax-Forwards: 70\nContact: <sip:caller@{local}>\nContent-Type: application/sdp\nContent-Length: {len}\n\n{sdp}",
            target = self.target,
            tr = self.transport(),
            local = self.local_hostport(),
            len = sdp.len(),
        )
    }

    /// INVITE → final response; ACKs a 2xx and returns the call.
    pub fn call(&mut self, number: &str, sdp: &str) -> Result<UaCall, Option<Response>> {
        self.call_as("+12015550100", number, sdp)
    }

    /// Like `call`, from the caller number `from` (the From user).
    pub fn call_as(
        &mut self,
        from: &str,
        number: &str,
        sdp: &str,
    ) -> Result<UaCall, Option<Response>> {
        let call_id = self.unique("call");
        let from_tag = self.unique("ft");
        let text = self.invite_text(number, sdp, &call_id, &from_tag).replacen(
            "<sip:+12015550100@",
            &format!("<sip:{from}@"),
            1,
        );
        // SDP bodies carry their own CRLFs: send as is, only the header
        // part needs \n → \r\n.
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut raw = head.replace('\n', "\r\n").into_bytes();
        raw.extend_from_slice(b"\r\n\r\n");
        raw.extend_from_slice(body.as_bytes());
        self.send_raw(&raw);
        let resp = self.final_response(Duration::from_secs(5)).ok_or(None)?;
        if resp.status >= 300 {
            return Err(Some(resp));
        }
        let to = resp
            .headers
            .get(&HeaderName::To)
            .unwrap_or_default()
            .to_string();
        let remote_target = resp
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
        let call = UaCall {
            call_id,
            from: format!(
                "\"Test Caller\" <sip:{from}@{}>;tag={from_tag}",
                self.local_hostport()
            ),
            to,
            cseq: 1,
            remote_target,
            answer: resp,
        };
        self.ack(&call);
        Ok(call)
    }

    pub fn ack(&mut self, call: &UaCall) {
        let branch = self.unique("z9hG4bKa");
        let text = format!(
            "ACK {rt} SIP/2.0\nVia: SIP/2.0/{tr} {local};rport;branch={branch}\nFrom: {from}\nTo: {to}\nCall-ID: {cid}\nCSeq: {cseq} ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
            rt = call.remote_target,
            tr = self.transport(),
            local = self.local_hostport(),
            from = call.from,
            to = call.to,
            cid = call.call_id,
            cseq = call.cseq,
        );
        self.send(&text);
    }

    /// A request inside the call (BYE, re-INVITE with `body`…); returns its
    /// final response.
    pub fn in_dialog(
        &mut self,
        call: &mut UaCall,
        method: &str,
        body: Option<&str>,
    ) -> Option<Response> {
        call.cseq += 1;
        let branch = self.unique("z9hG4bKd");
        let body = body.unwrap_or("");
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        let head = format!(
            "{method} {rt} SIP/2.0\r\nVia: SIP/2.0/{tr} {local};rport;branch={branch}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: <sip:caller@{local}>\r\n{ct}Content-Length: {len}\r\n\r\n",
            rt = call.remote_target,
            tr = self.transport(),
            local = self.local_hostport(),
            from = call.from,
            to = call.to,
            cid = call.call_id,
            cseq = call.cseq,
            len = body.len(),
        );
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body.as_bytes());
        self.send_raw(&raw);
        self.final_response(Duration::from_secs(5))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An agent registering with digest auth.
pub struct Registration {
    pub user: String,
    pub secret: String,
    pub call_id: String,
    pub cseq: u32,
    pub contact: String,
    pub tag: String,
}

impl Registration {
    pub fn new(ua: &mut Ua, user: &str, secret: &str) -> Registration {
        let contact = format!(
            "<sip:{user}@{};transport={}>",
            ua.local_hostport(),
            ua.transport().to_ascii_lowercase()
        );
        Registration {
            user: user.into(),
            secret: secret.into(),
            call_id: ua.unique("reg"),
            cseq: 0,
            contact,
            tag: ua.unique("rt"),
        }
    }

    /// A REGISTER with the given Contact and Expires header lines (raw),
    /// and an optional Authorization value.
    pub fn request(
        &mut self,
        ua: &mut Ua,
        contact_lines: &str,
        expires: Option<u32>,
        auth: Option<&str>,
    ) -> String {
        self.cseq += 1;
        let branch = ua.unique("z9hG4bKr");
        let mut s = format!(
            "REGISTER sip:{target} SIP/2.0\nVia: SIP/2.0/{tr} {local};rport;branch={branch}\nFrom: <sip:{user}@{target}>;tag={tag}\nTo: <sip:{user}@{target}>\nCall-ID: {cid}\nCSeq: {cseq} REGISTER\nMax-Forwards: 70\n",
            target = ua.target,
            tr = ua.transport(),
            local = ua.local_hostport(),
            user = self.user,
            tag = self.tag,
            cid = self.call_id,
            cseq = self.cseq,
        );
        s.push_str(contact_lines);
        if let Some(e) = expires {
            s.push_str(&format!("Expires: {e}\n"));
        }
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\n"));
        }
        s.push_str("Content-Length: 0\n\n");
        s
    }

    /// Runs REGISTER → 401 → REGISTER with credentials; returns the final
    /// response to the second request.
    pub fn register(&mut self, ua: &mut Ua, expires: u32) -> Option<Response> {
        let contact = format!("Contact: {}\n", self.contact);
        self.register_with(ua, &contact, Some(expires), None)
    }

    pub fn register_with(
        &mut self,
        ua: &mut Ua,
        contact_lines: &str,
        expires: Option<u32>,
        algorithm: Option<&str>,
    ) -> Option<Response> {
        let first = self.request(ua, contact_lines, expires, None);
        let challenge = ua.request(&first)?;
        if challenge.status != 401 {
            return Some(challenge);
        }
        let auth = authorization(
            &challenge,
            algorithm,
            &self.user,
            &self.secret,
            "REGISTER",
            &format!("sip:{}", ua.target),
            1,
        )?;
        let second = self.request(ua, contact_lines, expires, Some(&auth));
        ua.request(&second)
    }
}

/// The parameters of each `WWW-Authenticate` challenge.
pub fn challenges(resp: &Response) -> Vec<HashMap<String, String>> {
    resp.headers
        .get_all(&HeaderName::WwwAuthenticate)
        .map(|v| {
            let v = v.trim_start_matches("Digest").trim();
            v.split(", ")
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((
                        k.trim().to_ascii_lowercase(),
                        v.trim().trim_matches('"').to_string(),
                    ))
                })
                .collect()
        })
        .collect()
}

pub fn hash(algorithm: &str, data: &str) -> String {
    if algorithm.eq_ignore_ascii_case("SHA-256") {
        hex::encode(Sha256::digest(data.as_bytes()))
    } else {
        hex::encode(Md5::digest(data.as_bytes()))
    }
}

/// An `Authorization` value answering the challenge for `algorithm` (the
/// first challenge when `None`), with qop=auth and nonce count `nc`.
pub fn authorization(
    resp: &Response,
    algorithm: Option<&str>,
    user: &str,
    secret: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> Option<String> {
    let all = challenges(resp);
    let c = match algorithm {
        Some(a) => all.into_iter().find(|c| {
            c.get("algorithm")
                .is_some_and(|x| x.eq_ignore_ascii_case(a))
        })?,
        None => all.into_iter().next()?,
    };
    let alg = c.get("algorithm").cloned().unwrap_or_else(|| "MD5".into());
    let realm = c.get("realm")?;
    let nonce = c.get("nonce")?;
    let cnonce = "0a4f113b";
    let nc = format!("{nc:08x}");
    let ha1 = hash(&alg, &format!("{user}:{realm}:{secret}"));
    let ha2 = hash(&alg, &format!("{method}:{uri}"));
    let response = hash(&alg, &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    Some(format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={alg}, cnonce=\"{cnonce}\", qop=auth, nc={nc}, opaque=\"{}\"",
        c.get("opaque").cloned().unwrap_or_default()
    ))
}
