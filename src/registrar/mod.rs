//! The registrar for agents: REGISTER with digest authentication (RFC 3261
//! §10.3 and §22), bindings with expiry, failure throttling and the rules
//! for what a Contact may point at.

mod answered;
pub mod bindings;
pub mod contact_policy;
mod digest_auth;

pub use bindings::{Binding, Bindings};
pub use contact_policy::ContactPolicy;

use crate::config::{Config, RegistrarConfig};
use crate::sip::message::validate::Rejection;
use crate::sip::message::{HeaderName, MessageExt, NameAddr, Request, Response};
use crate::sip::transport::Peer;
use answered::{Answer, Answered};
use digest_auth::{Auth, Authenticator};
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

pub struct Registrar {
    auth: Authenticator,
    cfg: RegistrarConfig,
    contacts: ContactPolicy,
    bindings: Bindings,
    /// What the registrar answered lately (see `answered`).
    answered: Answered,
    /// Set by `answer` for `handle_new`: the challenge's nonce salt.
    challenge_salt: Option<u64>,
    /// About the challenge `handle_new` just returned: it counted no
    /// failure; it was for a stale nonce.
    last_challenge_stateless: bool,
    last_challenge_stale: bool,
}

impl Registrar {
    pub fn new(config: &Config, bindings: Bindings, now: Instant) -> Self {
        Registrar {
            auth: Authenticator::new(config, now),
            cfg: config.registrar.clone(),
            contacts: ContactPolicy::new(config.dialer.outbound_targets()),
            bindings,
            answered: Answered::new(Duration::from_millis(config.sip.t1_ms) * 64),
            challenge_salt: None,
            last_challenge_stateless: false,
            last_challenge_stale: false,
        }
    }

    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Whether requests from this source should be ignored (responses
    /// never are: they belong to our own transactions).
    pub fn is_banned(&self, peer: &Peer, now: Instant) -> bool {
        self.auth.is_banned(peer, now)
    }

    /// Periodic housekeeping: expired bindings and replay state.
    pub fn tick(&mut self, now: Instant) {
        for (agent, contact) in self.bindings.expire(now) {
            info!(agent = %agent, contact = %contact, "binding expired");
        }
        self.auth.tick(now);
        self.answered.prune(now);
    }

    /// Handles a validated REGISTER. `tag` is the To tag for responses.
    pub fn handle(&mut self, req: &Request, peer: Peer, tag: &str, now: Instant) -> Response {
        self.answer(req, peer, tag, now).0
    }

    /// Like `handle`, and says whether the answer was given statelessly
    /// (issue 15: a REGISTER flood must hold no transaction per request).
    /// Challenges that counted no failure and 200s are; a retransmission
    /// of such a request is recognised (`answered`) and gets the same
    /// challenge again, or a 200 with the current bindings, without its
    /// credentials being checked twice. Refusals and counted failures keep
    /// their transaction (and the tag given), so that a retransmission is
    /// absorbed and never counted twice.
    pub fn answer(
        &mut self,
        req: &Request,
        peer: Peer,
        tag: &str,
        now: Instant,
    ) -> (Response, bool) {
        let Some(id) = self.answered.id(req, &peer) else {
            return (self.handle_new(req, peer, tag, now), false);
        };
        let own_tag = Answered::tag(id);
        match self.answered.get(id) {
            Some(Answer::Challenged { issued, stale }) => {
                let r = self
                    .auth
                    .challenge(req, &peer, &own_tag, stale, issued, Some(id));
                return (r, true);
            }
            Some(Answer::Accepted) => {
                let user = req
                    .addr_to()
                    .ok()
                    .and_then(|t| t.uri.user_unescaped())
                    .unwrap_or_default();
                let path = self.check_path(req, &peer).unwrap_or_default();
                return (self.ok(req, &user, &path, &own_tag, now), true);
            }
            None => {}
        }
        self.challenge_salt = Some(id);
        let resp = self.handle_new(req, peer, &own_tag, now);
        self.challenge_salt = None;
        let answer = match resp.status {
            401 if self.last_challenge_stateless => Answer::Challenged {
                issued: now,
                stale: self.last_challenge_stale,
            },
            200 => Answer::Accepted,
            _ => return (resp, false),
        };
        self.answered.insert(id, answer, now);
        (resp, true)
    }

    /// The 200 to a REGISTER (§10.3 step 8): every current binding of
    /// `user` with its remaining time.
    fn ok(&self, req: &Request, user: &str, path: &[String], tag: &str, now: Instant) -> Response {
        let mut resp = Response::to_request(req, 200, Some(tag));
        for b in self.bindings.of(user, now) {
            let mut c = b.contact.clone();
            c.params
                .set("expires", Some(b.remaining_secs(now).to_string()));
            resp.headers.push(HeaderName::Contact, c.to_string());
        }
        // RFC 3327 §5.3: the Path is returned to a UA that said it
        // understands it, so it can see the route it is reached by.
        if supports(req, "path") {
            for p in path {
                resp.headers.push(HeaderName::Path, p.clone());
            }
        }
        resp.headers.push(HeaderName::Supported, "path");
        resp
    }

    fn handle_new(&mut self, req: &Request, peer: Peer, tag: &str, now: Instant) -> Response {
        self.last_challenge_stateless = false;
        // A banned source never gets here: the endpoint drops its requests.
        let reply = |code: u16| Response::to_request(req, code, Some(tag));
        let to = match req.addr_to() {
            Ok(t) if t.uri.is_sip() => t,
            // RFC 4475 §3.3.4: the AOR must be a SIP or SIPS URI.
            _ => {
                return reply(400).with_reason("To must be a SIP or SIPS URI");
            }
        };
        let user = match self.auth.authenticate(req, &peer, now) {
            Auth::Ok(u) => u,
            Auth::Challenge { stale, counted } => {
                self.last_challenge_stateless = !counted;
                self.last_challenge_stale = stale;
                return self
                    .auth
                    .challenge(req, &peer, tag, stale, now, self.challenge_salt);
            }
            Auth::Locked => {
                return reply(403).with_reason("Too many authentication failures for this user");
            }
        };
        let aor_user = to.uri.user_unescaped().unwrap_or_default();
        if aor_user != user {
            warn!(target: "callgate::auth", src_ip = %peer.addr.ip(), user = ?user, aor = ?aor_user, "authenticated user may not register this AOR");
            return reply(403).with_reason("Authenticated user does not match To");
        }
        if let Err(why) = self.check_contacts(req, &user, &peer) {
            warn!(target: "callgate::auth", src_ip = %peer.addr.ip(), user = ?user, reason = %why, "registration refused");
            return reply(403).with_reason("Contact not allowed");
        }
        let path = match self.check_path(req, &peer) {
            Ok(p) => p,
            Err((rej, why)) => {
                if let Some(why) = why {
                    warn!(target: "callgate::auth", src_ip = %peer.addr.ip(), user = ?user, reason = %why, "registration refused");
                }
                return rej.respond_to(req, tag);
            }
        };
        match self.update_bindings(req, &user, peer, &path, now) {
            Ok(()) => self.ok(req, &user, &path, tag, now),
            Err(rej) => rej.respond_to(req, tag),
        }
    }

    /// The REGISTER's Path values, top first, if each is a name-addr
    /// (else 400) and the Contact policy allows them (else 403, and why).
    fn check_path(
        &self,
        req: &Request,
        peer: &Peer,
    ) -> Result<Vec<String>, (Rejection, Option<String>)> {
        let values: Vec<String> = req
            .headers
            .get_all(&HeaderName::Path)
            .map(|v| v.trim().to_string())
            .collect();
        let mut hops = Vec::with_capacity(values.len());
        for v in &values {
            match NameAddr::parse(v) {
                Ok(n) => hops.push(n.uri),
                Err(_) => return Err((Rejection::new(400, "Malformed Path"), None)),
            }
        }
        self.contacts
            .check_path(&hops, peer)
            .map(|()| values)
            .map_err(|why| (Rejection::new(403, "Path not allowed"), Some(why)))
    }

    /// The Contact policy (see `contact_policy`), for every Contact of the
    /// request (malformed ones are refused later with 400).
    fn check_contacts(&self, req: &Request, user: &str, peer: &Peer) -> Result<(), String> {
        self.contacts.check_source(peer)?;
        for v in req.headers.get_all(&HeaderName::Contact) {
            if v.trim() == "*" {
                continue;
            }
            if let Ok(c) = NameAddr::parse(v) {
                self.contacts.check(&c.uri, user, peer)?;
            }
        }
        Ok(())
    }

    fn update_bindings(
        &mut self,
        req: &Request,
        user: &str,
        peer: Peer,
        path: &[String],
        now: Instant,
    ) -> Result<(), Rejection> {
        let values: Vec<&str> = req.headers.get_all(&HeaderName::Contact).collect();
        let header_expires = req.header_u32(&HeaderName::Expires).ok().flatten();
        let call_id = req.call_id().unwrap_or_default().to_string();
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);

        if values.iter().any(|v| v.trim() == "*") {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if values.len() != 1 || header_expires != Some(0) {
                return Err(Rejection::new(
                    400,
                    "Contact * requires Expires: 0 and no other Contact",
                ));
            }
            let removed = self.bindings.with_mut(user, std::mem::take);
            for b in removed {
                info!(agent = %user, contact = %b.contact.uri, "binding removed");
            }
            return Ok(());
        }
        let mut contacts = Vec::with_capacity(values.len());
        for v in &values {
            match NameAddr::parse(v) {
                Ok(c) if c.uri.is_sip() => contacts.push(c),
                _ => {
                    return Err(Rejection::new(400, "Malformed Contact"));
                }
            }
        }
        let cfg = &self.cfg;
        let mut plans = Vec::with_capacity(contacts.len());
        for c in contacts {
            let expires = c
                .params
                .value("expires")
                .and_then(crate::sip::message::parse_u32_saturating)
                .or(header_expires)
                .unwrap_or(cfg.default_expires_s);
            if expires != 0 && expires < cfg.min_expires_s {
                let mut rej = Rejection::new(423, "Interval Too Brief");
                rej.headers
                    .push((HeaderName::MinExpires, cfg.min_expires_s.to_string()));
                return Err(rej);
            }
            plans.push((c, expires.min(cfg.max_expires_s)));
        }
        let max = cfg.max_contacts_per_agent;
        let out_of_order = self.bindings.with_mut(user, |list| {
            for (c, expires) in plans {
                let instance = c.params.value("+sip.instance").map(str::to_string);
                let existing = list.iter().position(|b| {
                    b.contact.uri.equivalent(&c.uri)
                        || (instance.is_some() && b.instance == instance)
                });
                if let Some(i) = existing {
                    let Some(b) = list.get(i) else { continue };
                    // §10.3 step 7: same Call-ID with an old CSeq is stale.
                    if b.call_id == call_id && cseq <= b.cseq {
                        return true;
                    }
                    if expires == 0 {
                        info!(agent = %user, contact = %c.uri, "binding removed");
                        list.remove(i);
                        continue;
                    }
                }
                if expires == 0 {
                    continue;
                }
                let binding = Binding {
                    instance,
                    contact: c,
                    expires_at: now + Duration::from_secs(u64::from(expires)),
                    call_id: call_id.clone(),
                    cseq,
                    source: peer,
                    path: path.to_vec(),
                    registered_at: SystemTime::now(),
                };
                match existing.and_then(|i| list.get_mut(i)) {
                    Some(slot) => {
                        info!(agent = %user, contact = %binding.contact.uri, expires, source = %peer, path = ?binding.path, "binding refreshed");
                        *slot = binding;
                    }
                    None => {
                        if list.len() >= max {
                            // Evict the binding closest to expiry: usually a
                            // phone that rebooted and forgot its old one.
                            if let Some(i) = list
                                .iter()
                                .enumerate()
                                .min_by_key(|(_, b)| b.expires_at)
                                .map(|(i, _)| i)
                            {
                                let old = list.remove(i);
                                info!(agent = %user, contact = %old.contact.uri, "binding replaced (contact limit)");
                            }
                        }
                        info!(agent = %user, contact = %binding.contact.uri, expires, source = %peer, path = ?binding.path, "binding added");
                        list.push(binding);
                    }
                }
            }
            false
        });
        if out_of_order {
            return Err(Rejection::new(400, "CSeq out of order for this binding"));
        }
        Ok(())
    }
}

/// Whether the request lists `option` in Supported (RFC 3261 §20.37).
pub fn supports(req: &Request, option: &str) -> bool {
    req.headers
        .get_all(&HeaderName::Supported)
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(option)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::sip::auth::credentials::parse_auth_params;
    use crate::sip::auth::{Algorithm, DigestInput};
    use crate::sip::message::{SipMessage, parse_datagram};

    fn agent(user: &str, algorithms: Option<&[&str]>) -> AgentConfig {
        AgentConfig {
            user: user.into(),
            secret: format!("{user}-secret"),
            name: None,
            routing_profile: None,
            after_contact_work_s: 0,
            digest_algorithms: algorithms.map(|l| l.iter().map(|a| a.to_string()).collect()),
        }
    }

    fn registrar() -> Registrar {
        let mut config = Config {
            agents: vec![agent("alice", None), agent("carol", Some(&["SHA-256"]))],
            ..Config::default()
        };
        config.dialer.target = "192.0.2.99:5080".parse().unwrap();
        Registrar::new(&config, Bindings::new(), Instant::now())
    }

    fn register(user: &str, extra: &str) -> Request {
        static CSEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let cseq = CSEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = format!(
            "REGISTER sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKk1\r\n\
             Via: SIP/2.0/TCP 10.0.0.7:5062;branch=z9hG4bKu1\r\nFrom: <sip:{user}@gw>;tag=f\r\n\
             To: <sip:{user}@gw>\r\nCall-ID: r-{user}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@10.0.0.7:5062;transport=tcp>\r\nMax-Forwards: 69\r\n{extra}\r\n"
        );
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn challenges(r: &Response) -> Vec<Vec<(String, String)>> {
        r.headers
            .get_all(&HeaderName::WwwAuthenticate)
            .map(|v| parse_auth_params(v).unwrap().1)
            .collect()
    }

    fn get<'a>(params: &'a [(String, String)], k: &str) -> &'a str {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// Answers the first challenge of `r401` for `user`.
    fn authorized(user: &str, extra: &str, r401: &Response) -> Request {
        let c = &challenges(r401)[0];
        let algorithm = Algorithm::parse(Some(get(c, "algorithm"))).unwrap();
        let password = format!("{user}-secret");
        let response = DigestInput {
            algorithm,
            username: user,
            realm: get(c, "realm"),
            password: &password,
            method: "REGISTER",
            uri: "sip:gw",
            nonce: get(c, "nonce"),
            qop: Some("auth"),
            nc: "00000001",
            cnonce: "abc",
        }
        .response();
        let auth = format!(
            "Authorization: Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"sip:gw\", response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"abc\", opaque=\"{}\"\r\n",
            get(c, "realm"),
            get(c, "nonce"),
            algorithm.as_str(),
            get(c, "opaque"),
        );
        register(user, &format!("{extra}{auth}"))
    }

    fn proxy() -> Peer {
        Peer::udp("192.0.2.10:5060".parse().unwrap())
    }

    /// Issue 13 item 1: one MD5 challenge unless configured otherwise
    /// (baresip refuses a 401 with any challenge it cannot do); an agent
    /// may have SHA-256 alone, and its MD5 answer is then refused.
    #[test]
    fn one_md5_challenge_by_default_sha256_per_agent() {
        let mut reg = registrar();
        let now = Instant::now();
        for user in ["alice", "nobody"] {
            let r = reg.handle(&register(user, ""), proxy(), "t", now);
            assert_eq!(r.status, 401);
            let c = challenges(&r);
            assert_eq!(c.len(), 1, "{user}: one challenge");
            assert_eq!(get(&c[0], "algorithm"), "MD5");
        }
        let r = reg.handle(&register("carol", ""), proxy(), "t", now);
        let c = challenges(&r);
        assert_eq!(c.len(), 1);
        assert_eq!(get(&c[0], "algorithm"), "SHA-256");
        let ok = reg.handle(&authorized("carol", "", &r), proxy(), "t", now);
        assert_eq!(ok.status, 200, "{ok}");
        // An MD5 answer from carol is challenged again, never accepted.
        let mut md5 = r.clone();
        let v = md5
            .headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap()
            .replace("SHA-256", "MD5");
        md5.headers.set(HeaderName::WwwAuthenticate, v);
        let again = reg.handle(&authorized("carol", "", &md5), proxy(), "t", now);
        assert_eq!(again.status, 401);
    }

    /// Issue 13 item 4: the Path is stored with the binding, echoed to a
    /// UA that supports it, `Supported: path` advertised; offers then go
    /// to the first Path hop with the Path as Route set.
    #[test]
    fn path_is_stored_echoed_and_routes_offers() {
        let mut reg = registrar();
        let now = Instant::now();
        let path =
            "Path: <sip:192.0.2.10:5060;lr;received=sip:198.51.100.3:41000%3Btransport%3Dtcp>\r\n";
        let extra = format!("{path}Supported: path, outbound\r\n");
        let r401 = reg.handle(&register("alice", &extra), proxy(), "t", now);
        let ok = reg.handle(&authorized("alice", &extra, &r401), proxy(), "t", now);
        assert_eq!(ok.status, 200, "{ok}");
        let echoed: Vec<&str> = ok.headers.get_all(&HeaderName::Path).collect();
        assert_eq!(
            echoed,
            vec!["<sip:192.0.2.10:5060;lr;received=sip:198.51.100.3:41000%3Btransport%3Dtcp>"]
        );
        assert_eq!(ok.headers.get(&HeaderName::Supported), Some("path"));
        let b = reg.bindings().of("alice", now).pop().unwrap();
        assert_eq!(b.path, echoed);
        let (peer, route) = b.next_hop();
        assert_eq!(peer, proxy(), "UDP to the proxy, not the TCP Contact");
        assert_eq!(route, echoed);

        // Without Supported: path, stored but not echoed.
        let r401 = reg.handle(&register("alice", path), proxy(), "t", now);
        let ok = reg.handle(&authorized("alice", path, &r401), proxy(), "t", now);
        assert_eq!(ok.status, 200);
        assert_eq!(ok.headers.count(&HeaderName::Path), 0);
        assert_eq!(reg.bindings().of("alice", now)[0].path.len(), 1);
    }

    /// Issue 15: a REGISTER flood holds no transaction. Challenges that
    /// count nothing and 200s are stateless; a retransmission gets the
    /// very same 401 (byte for byte), or the 200 again without passing
    /// the nonce count twice (which would be a "replay"), even after a
    /// newer REGISTER replaced the binding. Refusals and counted failures
    /// keep their transaction. After 64·T1 nothing is remembered.
    #[test]
    fn stateless_challenges_and_retransmitted_registers() {
        let mut reg = registrar();
        let now = Instant::now();
        let first = register("alice", "");
        let (r401, stateless) = reg.answer(&first, proxy(), "t", now);
        assert_eq!((r401.status, stateless), (401, true));
        let later = now + Duration::from_millis(500);
        let (again, stateless) = reg.answer(&first, proxy(), "t", later);
        assert!(stateless);
        assert_eq!(again.encode(), r401.encode(), "the same 401 again");
        // Another request from the same phone gets another challenge.
        let (other, _) = reg.answer(&register("alice", ""), proxy(), "t", later);
        assert_ne!(
            other.headers.get(&HeaderName::WwwAuthenticate),
            r401.headers.get(&HeaderName::WwwAuthenticate)
        );

        let authed = authorized("alice", "", &r401);
        let (ok, stateless) = reg.answer(&authed, proxy(), "t", now);
        assert_eq!((ok.status, stateless), (200, true), "{ok}");
        // A newer registration replaces the binding…
        let r401b = reg.handle(&register("alice", ""), proxy(), "t", now);
        let newer = authorized("alice", "", &r401b);
        assert_eq!(reg.handle(&newer, proxy(), "t", now).status, 200);
        // …and the first one's retransmission still gets its 200.
        let t = now + Duration::from_secs(2);
        let (again, stateless) = reg.answer(&authed, proxy(), "t", t);
        assert_eq!((again.status, stateless), (200, true), "{again}");
        assert_eq!(reg.bindings().of("alice", t).len(), 1);
        // From another source it is not the same request: the nonce was
        // not issued there, so it is challenged.
        let elsewhere = Peer::udp("192.0.2.11:5060".parse().unwrap());
        assert_eq!(reg.answer(&authed, elsewhere, "t", t).0.status, 401);

        // A wrong password is a counted failure: stateful.
        let r401 = reg.handle(&register("alice", ""), proxy(), "t", now);
        let wrong = authorized("alice", "", &r401);
        let text = wrong.encode();
        let text = core::str::from_utf8(&text).unwrap();
        let at = text.find("response=\"").unwrap() + 10;
        let mut bad = text.to_string();
        let digit = if &text[at..at + 1] == "0" { "1" } else { "0" };
        bad.replace_range(at..at + 1, digit);
        let Ok(SipMessage::Request(bad)) = parse_datagram(bad.as_bytes()) else {
            panic!()
        };
        let (r, stateless) = reg.answer(&bad, proxy(), "t", now);
        assert_eq!((r.status, stateless), (401, false));

        // 64·T1 after the last answer the client has given up (Timer F):
        // all forgotten.
        assert!(reg.answered.len() > 0);
        reg.tick(now + Duration::from_secs(35));
        assert_eq!(reg.answered.len(), 0);
    }

    #[test]
    fn forged_or_malformed_paths_are_refused() {
        let mut reg = registrar();
        let now = Instant::now();
        for (path, status) in [
            // Not the proxy that sent it.
            ("Path: <sip:203.0.113.50;lr>\r\n", 403),
            // Through the trunk.
            (
                "Path: <sip:192.0.2.10;lr>\r\nPath: <sip:192.0.2.99:5080;lr>\r\n",
                403,
            ),
            ("Path: <sip:192.0.2.10;lr\r\n", 400),
        ] {
            let r401 = reg.handle(&register("alice", path), proxy(), "t", now);
            let r = reg.handle(&authorized("alice", path, &r401), proxy(), "t", now);
            assert_eq!(r.status, status, "{path}");
            assert!(reg.bindings().of("alice", now).is_empty());
        }
    }
}
