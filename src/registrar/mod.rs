//! The registrar for agents: REGISTER with digest authentication (RFC 3261
//! §10.3 and §22), bindings with expiry, failure throttling and the rules
//! for what a Contact may point at.

pub mod bindings;
pub mod contact_policy;
mod digest_auth;

pub use bindings::{Binding, Bindings};
pub use contact_policy::ContactPolicy;

use crate::config::{Config, RegistrarConfig};
use crate::sip::message::validate::Rejection;
use crate::sip::message::{HeaderName, MessageExt, NameAddr, Request, Response};
use crate::sip::transport::Peer;
use digest_auth::{Auth, Authenticator};
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

pub struct Registrar {
    auth: Authenticator,
    cfg: RegistrarConfig,
    contacts: ContactPolicy,
    bindings: Bindings,
}

impl Registrar {
    pub fn new(config: &Config, bindings: Bindings, now: Instant) -> Self {
        Registrar {
            auth: Authenticator::new(config, now),
            cfg: config.registrar.clone(),
            contacts: ContactPolicy::new(config.dialer.outbound_targets()),
            bindings,
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
        let user = match self.auth.authenticate(req, &peer, now) {
            Auth::Ok(u) => u,
            Auth::Challenge { stale } => {
                return self.auth.challenge(req, &peer, tag, stale, now);
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
