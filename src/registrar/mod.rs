//! The registrar for agents: REGISTER with digest authentication (RFC 3261
//! §10.3 and §22), bindings with expiry, and failure throttling.

pub mod bindings;

pub use bindings::{Binding, Bindings};

use crate::config::{Config, RegistrarConfig};
use crate::security::AuthThrottle;
use crate::security::throttle::FailureOutcome;
use crate::sip::auth::{Algorithm, Challenge, Credentials, DigestInput, NonceCheck, Nonces};
use crate::sip::message::validate::Rejection;
use crate::sip::message::{HeaderName, MessageExt, NameAddr, Request, Response};
use crate::sip::transport::Peer;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

pub enum RegisterOutcome {
    Respond(Response),
    /// The source is banned: no answer at all.
    Drop,
}

pub struct Registrar {
    realm: String,
    secrets: HashMap<String, String>,
    cfg: RegistrarConfig,
    nonces: Nonces,
    opaque: String,
    throttle: AuthThrottle,
    ban_secs: u64,
    algorithms: Vec<Algorithm>,
    bindings: Bindings,
}

enum Auth {
    Ok(String),
    Challenge { stale: bool },
    Failed,
}

impl Registrar {
    pub fn new(config: &Config, bindings: Bindings, now: Instant) -> Self {
        let sec = &config.security;
        let trusted = sec.trusted_cidrs();
        let mut opaque = [0u8; 8];
        rand::fill(&mut opaque);
        Registrar {
            realm: config.sip.realm.clone(),
            secrets: config
                .agents
                .iter()
                .map(|a| (a.user.clone(), a.secret.clone()))
                .collect(),
            cfg: config.registrar.clone(),
            nonces: Nonces::new(Duration::from_secs(config.registrar.nonce_lifetime_s), now),
            opaque: hex::encode(opaque),
            throttle: AuthThrottle::new(
                sec.auth_fail_limit,
                Duration::from_secs(sec.auth_fail_window_s),
                Duration::from_secs(sec.auth_ban_s),
                trusted,
            ),
            ban_secs: sec.auth_ban_s,
            algorithms: config
                .registrar
                .digest_algorithms
                .iter()
                .filter_map(|a| Algorithm::parse(Some(a)))
                .collect(),
            bindings,
        }
    }

    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Whether requests from this source should be ignored.
    pub fn is_banned(&self, peer: &Peer, now: Instant) -> bool {
        self.throttle.is_banned(peer.addr.ip(), now)
    }

    /// Periodic housekeeping: expired bindings and replay state.
    pub fn tick(&mut self, now: Instant) {
        for (agent, contact) in self.bindings.expire(now) {
            info!(agent = %agent, contact = %contact, "binding expired");
        }
        self.nonces.prune(now);
        self.throttle.prune(now);
    }

    fn challenge(&self, req: &Request, tag: &str, stale: bool, now: Instant) -> Response {
        let nonce = self.nonces.issue(now);
        let mut resp = Response::to_request(req, 401, Some(tag));
        // One challenge per configured algorithm, in preference order
        // (RFC 8760 §2.4).
        for &algorithm in &self.algorithms {
            let c = Challenge {
                realm: &self.realm,
                nonce: &nonce,
                opaque: &self.opaque,
                algorithm,
                stale,
            };
            resp.headers
                .push(HeaderName::WwwAuthenticate, c.header_value());
        }
        resp
    }

    fn fail(&mut self, peer: &Peer, user: &str, reason: &str, now: Instant) {
        let ip = peer.addr.ip();
        // One stable line per failure for fail2ban-style tooling.
        warn!(target: "callgate::auth", src_ip = %ip, user = %user, reason = %reason, "auth failure");
        if self.throttle.record_failure(ip, now) == FailureOutcome::Banned {
            warn!(target: "callgate::auth", src_ip = %ip, ban_s = self.ban_secs, "source banned after repeated auth failures");
        }
    }

    fn authenticate(&mut self, req: &Request, peer: &Peer, now: Instant) -> Auth {
        let mut creds = None;
        for v in req.headers.get_all(&HeaderName::Authorization) {
            match Credentials::parse(v) {
                Ok(Some(c)) if c.realm == self.realm => {
                    creds = Some(c);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    self.fail(peer, "", &format!("malformed credentials: {e}"), now);
                    return Auth::Failed;
                }
            }
        }
        let Some(c) = creds else {
            return Auth::Challenge { stale: false };
        };
        let Some(secret) = self.secrets.get(&c.username).cloned() else {
            self.fail(peer, &c.username, "unknown user", now);
            return Auth::Failed;
        };
        let algorithm = match Algorithm::parse(c.algorithm.as_deref()) {
            Some(a) if self.algorithms.contains(&a) => a,
            _ => return Auth::Challenge { stale: false },
        };
        match self.nonces.check(&c.nonce, now) {
            NonceCheck::Valid => {}
            NonceCheck::Stale => return Auth::Challenge { stale: true },
            // A nonce from before a restart, or forged: challenge afresh.
            NonceCheck::Invalid => return Auth::Challenge { stale: false },
        }
        let (qop, nc) = match c.qop.as_deref() {
            None => (None, None),
            Some(q) if q.eq_ignore_ascii_case("auth") => match (c.nonce_count(), &c.cnonce) {
                (Some(nc), Some(_)) => (Some("auth"), Some(nc)),
                _ => {
                    self.fail(peer, &c.username, "qop=auth without nc/cnonce", now);
                    return Auth::Failed;
                }
            },
            Some(_) => return Auth::Challenge { stale: false },
        };
        let expected = DigestInput {
            algorithm,
            username: &c.username,
            realm: &self.realm,
            password: &secret,
            method: req.method.as_str(),
            uri: &c.uri,
            nonce: &c.nonce,
            qop,
            nc: c.nc.as_deref().unwrap_or_default(),
            cnonce: c.cnonce.as_deref().unwrap_or_default(),
        }
        .response();
        if !crate::sip::auth::digest::constant_time_eq(&expected, &c.response) {
            self.fail(peer, &c.username, "wrong password", now);
            return Auth::Failed;
        }
        if !self.nonces.record_use(&c.nonce, nc, now) {
            self.fail(peer, &c.username, "replayed nonce", now);
            return Auth::Failed;
        }
        self.throttle.record_success(peer.addr.ip());
        Auth::Ok(c.username)
    }

    /// Handles a validated REGISTER. `tag` is the To tag for responses.
    pub fn handle(
        &mut self,
        req: &Request,
        peer: Peer,
        tag: &str,
        now: Instant,
    ) -> RegisterOutcome {
        // A banned source never gets here: the endpoint drops everything
        // from it before parsing.
        let reply = |code: u16| Response::to_request(req, code, Some(tag));
        let to = match req.addr_to() {
            Ok(t) if t.uri.is_sip() => t,
            // RFC 4475 §3.3.4: the AOR must be a SIP or SIPS URI.
            _ => {
                return RegisterOutcome::Respond(
                    reply(400).with_reason("To must be a SIP or SIPS URI"),
                );
            }
        };
        let user = match self.authenticate(req, &peer, now) {
            Auth::Ok(u) => u,
            Auth::Challenge { stale } => {
                return RegisterOutcome::Respond(self.challenge(req, tag, stale, now));
            }
            Auth::Failed => {
                if self.is_banned(&peer, now) {
                    return RegisterOutcome::Drop;
                }
                return RegisterOutcome::Respond(self.challenge(req, tag, false, now));
            }
        };
        let aor_user = to.uri.user_unescaped().unwrap_or_default();
        if aor_user != user {
            warn!(target: "callgate::auth", src_ip = %peer.addr.ip(), user = %user, aor = %aor_user, "authenticated user may not register this AOR");
            return RegisterOutcome::Respond(
                reply(403).with_reason("Authenticated user does not match To"),
            );
        }
        match self.update_bindings(req, &user, peer, now) {
            Ok(()) => {
                let mut resp = reply(200);
                for b in self.bindings.of(&user, now) {
                    let mut c = b.contact.clone();
                    c.params
                        .set("expires", Some(b.remaining_secs(now).to_string()));
                    resp.headers.push(HeaderName::Contact, c.to_string());
                }
                RegisterOutcome::Respond(resp)
            }
            Err(rej) => RegisterOutcome::Respond(rej.respond_to(req, tag)),
        }
    }

    fn update_bindings(
        &mut self,
        req: &Request,
        user: &str,
        peer: Peer,
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
                    registered_at: SystemTime::now(),
                };
                match existing.and_then(|i| list.get_mut(i)) {
                    Some(slot) => {
                        info!(agent = %user, contact = %binding.contact.uri, expires, source = %peer, "binding refreshed");
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
                        info!(agent = %user, contact = %binding.contact.uri, expires, source = %peer, "binding added");
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
