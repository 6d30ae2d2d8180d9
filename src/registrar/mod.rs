//! The registrar for agents: REGISTER with digest authentication (RFC 3261
//! §10.3 and §22), bindings with expiry, failure throttling and the rules
//! for what a Contact may point at.

pub mod bindings;
pub mod contact_policy;

pub use bindings::{Binding, Bindings};
pub use contact_policy::ContactPolicy;

use crate::config::{Config, RegistrarConfig};
use crate::security::AuthThrottle;
use crate::sip::auth::{Algorithm, Challenge, Credentials, DigestInput, NonceCheck, Nonces};
use crate::sip::message::validate::Rejection;
use crate::sip::message::{HeaderName, MessageExt, NameAddr, Request, Response};
use crate::sip::transport::{Peer, TransportKind};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, warn};

pub struct Registrar {
    realm: String,
    secrets: HashMap<String, String>,
    /// What an unknown user's digest is computed against, so that a
    /// request for a user who does not exist costs the same time as one
    /// for a user who does (no enumeration by timing).
    dummy_secret: String,
    cfg: RegistrarConfig,
    nonces: Nonces,
    opaque: String,
    throttle: AuthThrottle,
    contacts: ContactPolicy,
    ban_secs: u64,
    algorithms: Vec<Algorithm>,
    bindings: Bindings,
}

enum Auth {
    Ok(String),
    /// Answer with a fresh challenge (no credentials, a nonce not ours or
    /// stale, or a failure: all look alike from outside).
    Challenge {
        stale: bool,
    },
    /// The user name is locked after repeated failures and this source has
    /// not authenticated as it recently.
    Locked,
}

impl Registrar {
    pub fn new(config: &Config, bindings: Bindings, now: Instant) -> Self {
        let sec = &config.security;
        let mut opaque = [0u8; 8];
        rand::fill(&mut opaque);
        let mut dummy = [0u8; 16];
        rand::fill(&mut dummy);
        Registrar {
            realm: config.sip.realm.clone(),
            secrets: config
                .agents
                .iter()
                .map(|a| (a.user.clone(), a.secret.clone()))
                .collect(),
            dummy_secret: hex::encode(dummy),
            cfg: config.registrar.clone(),
            nonces: Nonces::new(Duration::from_secs(config.registrar.nonce_lifetime_s), now),
            opaque: hex::encode(opaque),
            throttle: AuthThrottle::new(
                sec.auth_fail_limit,
                Duration::from_secs(sec.auth_fail_window_s),
                Duration::from_secs(sec.auth_ban_s),
                config.exempt_sources(),
            ),
            contacts: ContactPolicy::new(config.dialer.outbound_targets()),
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

    /// Whether requests from this source should be ignored (responses
    /// never are: they belong to our own transactions).
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

    fn challenge(
        &self,
        req: &Request,
        peer: &Peer,
        tag: &str,
        stale: bool,
        now: Instant,
    ) -> Response {
        let nonce = self.nonces.issue(peer.addr.ip(), now);
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

    /// A failure backed by evidence (see `authenticate`): one stable line
    /// for fail2ban, and the ban and lock counts. The user name is quoted
    /// and escaped (`?`): it is the client's text, and must not be able to
    /// forge a `src_ip=` or a line of its own.
    fn fail(&mut self, peer: &Peer, user: &str, reason: &str, now: Instant) {
        let ip = peer.addr.ip();
        if self.throttle.is_exempt(ip) {
            // Worded differently so that fail2ban does not firewall the
            // trunk or a load tester that callgate itself never bans.
            warn!(target: "callgate::auth", src_ip = %ip, user = ?user, reason = %reason, "auth failure from an exempt source (not counted)");
            return;
        }
        warn!(target: "callgate::auth", src_ip = %ip, user = ?user, reason = %reason, "auth failure");
        let outcome = self.throttle.record_failure(ip, user, now);
        if outcome.ip_banned {
            warn!(target: "callgate::auth", src_ip = %ip, ban_s = self.ban_secs, "source banned after repeated auth failures");
        }
        if outcome.user_locked {
            warn!(target: "callgate::auth", user = ?user, ban_s = self.ban_secs, "user name locked after repeated auth failures (except from its recent addresses)");
        }
    }

    /// A failure that proves nothing about its source (a UDP packet may
    /// carry any source address): logged for debugging only, never
    /// counted and never in the fail2ban line.
    fn unproven(&self, peer: &Peer, user: &str, reason: &str) {
        debug!(target: "callgate::auth", src = %peer, user = ?user, reason = %reason, "auth attempt refused (not counted)");
    }

    /// Digest authentication. What counts as a failure (towards a ban) is
    /// only what a spoofer cannot forge: a wrong response carrying a nonce
    /// this process issued to the request's own source address and still
    /// valid (a spoofer never sees that challenge), or malformed
    /// credentials on a TCP connection (the handshake proved the source).
    /// An unknown nonce (forged, or from before a restart) or a stale one
    /// is simply challenged again. Known and unknown user names go through
    /// the same steps, the same hash work and the same answers: nothing
    /// here tells an outsider which users exist.
    fn authenticate(&mut self, req: &Request, peer: &Peer, now: Instant) -> Auth {
        let ip = peer.addr.ip();
        let mut creds = None;
        for v in req.headers.get_all(&HeaderName::Authorization) {
            match Credentials::parse(v) {
                Ok(Some(c)) if c.realm == self.realm => {
                    creds = Some(c);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    let reason = format!("malformed credentials: {e}");
                    if peer.kind == TransportKind::Tcp {
                        self.fail(peer, "", &reason, now);
                    } else {
                        self.unproven(peer, "", &reason);
                    }
                    return Auth::Challenge { stale: false };
                }
            }
        }
        let Some(c) = creds else {
            return Auth::Challenge { stale: false };
        };
        if self.throttle.is_user_locked(&c.username, ip, now) {
            self.unproven(peer, &c.username, "user name locked");
            return Auth::Locked;
        }
        let algorithm = match Algorithm::parse(c.algorithm.as_deref()) {
            Some(a) if self.algorithms.contains(&a) => a,
            _ => return Auth::Challenge { stale: false },
        };
        match self.nonces.check(&c.nonce, ip, now) {
            NonceCheck::Valid => {}
            NonceCheck::Stale => return Auth::Challenge { stale: true },
            NonceCheck::Invalid => {
                self.unproven(peer, &c.username, "nonce not issued to this address");
                return Auth::Challenge { stale: false };
            }
        }
        // From here on the request came from an address that received our
        // challenge: a failure is real evidence against it.
        let (qop, nc) = match c.qop.as_deref() {
            None => (None, None),
            Some(q) if q.eq_ignore_ascii_case("auth") => match (c.nonce_count(), &c.cnonce) {
                (Some(nc), Some(_)) => (Some("auth"), Some(nc)),
                _ => {
                    self.fail(peer, &c.username, "qop=auth without nc/cnonce", now);
                    return Auth::Challenge { stale: false };
                }
            },
            Some(_) => return Auth::Challenge { stale: false },
        };
        let known = self.secrets.get(&c.username);
        let password = known.unwrap_or(&self.dummy_secret);
        let expected = DigestInput {
            algorithm,
            username: &c.username,
            realm: &self.realm,
            password,
            method: req.method.as_str(),
            uri: &c.uri,
            nonce: &c.nonce,
            qop,
            nc: c.nc.as_deref().unwrap_or_default(),
            cnonce: c.cnonce.as_deref().unwrap_or_default(),
        }
        .response();
        let matches = crate::sip::auth::digest::constant_time_eq(&expected, &c.response);
        let known = known.is_some();
        if !(matches && known) {
            let reason = if known {
                "wrong password"
            } else {
                "unknown user"
            };
            self.fail(peer, &c.username, reason, now);
            return Auth::Challenge { stale: false };
        }
        if !self.nonces.record_use(&c.nonce, nc, now) {
            self.fail(peer, &c.username, "replayed nonce", now);
            return Auth::Challenge { stale: false };
        }
        self.throttle.record_success(ip, &c.username, now);
        Auth::Ok(c.username)
    }

    /// Handles a validated REGISTER. `tag` is the To tag for responses.
    pub fn handle(&mut self, req: &Request, peer: Peer, tag: &str, now: Instant) -> Response {
        // A banned source never gets here: the endpoint drops its requests.
        let reply = |code: u16| Response::to_request(req, code, Some(tag));
        let to = match req.addr_to() {
            Ok(t) if t.uri.is_sip() => t,
            // RFC 4475 §3.3.4: the AOR must be a SIP or SIPS URI.
            _ => {
                return reply(400).with_reason("To must be a SIP or SIPS URI");
            }
        };
        let user = match self.authenticate(req, &peer, now) {
            Auth::Ok(u) => u,
            Auth::Challenge { stale } => {
                return self.challenge(req, &peer, tag, stale, now);
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
        match self.update_bindings(req, &user, peer, now) {
            Ok(()) => {
                let mut resp = reply(200);
                for b in self.bindings.of(&user, now) {
                    let mut c = b.contact.clone();
                    c.params
                        .set("expires", Some(b.remaining_secs(now).to_string()));
                    resp.headers.push(HeaderName::Contact, c.to_string());
                }
                resp
            }
            Err(rej) => rej.respond_to(req, tag),
        }
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
