//! Digest authentication of agents' REGISTERs (RFC 3261 §22, RFC 7616)
//! and what counts as a failure: only what a spoofer cannot forge (see
//! `authenticate`). Known and unknown user names look the same from
//! outside.

use crate::config::Config;
use crate::security::AuthThrottle;
use crate::sip::auth::{Algorithm, Challenge, Credentials, DigestInput, NonceCheck, Nonces};
use crate::sip::message::{HeaderName, MessageExt, Request, Response};
use crate::sip::transport::{Peer, TransportKind};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

pub(super) enum Auth {
    Ok(String),
    /// Answer with a fresh challenge (no credentials, a nonce not ours or
    /// stale, or a failure: all look alike from outside).
    Challenge {
        stale: bool,
        /// A failure was counted against the source: answer statefully,
        /// so that a retransmission of the same request is absorbed
        /// rather than counted again.
        counted: bool,
    },
    /// The user name is locked after repeated failures and this source has
    /// not authenticated as it recently.
    Locked,
}

pub(super) struct Authenticator {
    realm: String,
    secrets: HashMap<String, String>,
    /// What an unknown user's digest is computed against, so that a
    /// request for a user who does not exist costs the same time as one
    /// for a user who does (no enumeration by timing).
    dummy_secret: String,
    nonces: Nonces,
    opaque: String,
    throttle: AuthThrottle,
    ban_secs: u64,
    /// Challenges for everyone, unknown names included.
    algorithms: Vec<Algorithm>,
    /// Agents with their own list (`agents[].digest_algorithms`).
    per_agent: HashMap<String, Vec<Algorithm>>,
}

fn parse_algorithms(list: &[String]) -> Vec<Algorithm> {
    list.iter()
        .filter_map(|a| Algorithm::parse(Some(a)))
        .collect()
}

impl Authenticator {
    pub(super) fn new(config: &Config, now: Instant) -> Self {
        let sec = &config.security;
        let mut opaque = [0u8; 8];
        rand::fill(&mut opaque);
        let mut dummy = [0u8; 16];
        rand::fill(&mut dummy);
        Authenticator {
            realm: config.sip.realm.clone(),
            secrets: config
                .agents
                .iter()
                .map(|a| (a.user.clone(), a.secret.clone()))
                .collect(),
            dummy_secret: hex::encode(dummy),
            nonces: Nonces::new(Duration::from_secs(config.registrar.nonce_lifetime_s), now),
            opaque: hex::encode(opaque),
            throttle: AuthThrottle::new(
                sec.auth_fail_limit,
                Duration::from_secs(sec.auth_fail_window_s),
                Duration::from_secs(sec.auth_ban_s),
                config.exempt_sources(),
            ),
            ban_secs: sec.auth_ban_s,
            algorithms: parse_algorithms(&config.registrar.digest_algorithms),
            per_agent: config
                .agents
                .iter()
                .filter_map(|a| {
                    let list = a.digest_algorithms.as_ref()?;
                    Some((a.user.clone(), parse_algorithms(list)))
                })
                .collect(),
        }
    }

    /// The algorithms `user` may use, in order of preference. An agent
    /// with a list of its own gets a challenge that tells it apart from an
    /// unknown name; everyone else (and every unknown name) gets the
    /// shared one.
    fn algorithms_for(&self, user: &str) -> &[Algorithm] {
        self.per_agent
            .get(user)
            .filter(|l| !l.is_empty())
            .unwrap_or(&self.algorithms)
    }

    pub(super) fn is_banned(&self, peer: &Peer, now: Instant) -> bool {
        self.throttle.is_banned(peer.addr.ip(), now)
    }

    /// Housekeeping: replay and ban state.
    pub(super) fn tick(&mut self, now: Instant) {
        self.nonces.prune(now);
        self.throttle.prune(now);
    }

    /// A 401 with a nonce issued at `issued`; `salt` makes it
    /// reproducible (see `Nonces::issue_with`), else it is random.
    pub(super) fn challenge(
        &self,
        req: &Request,
        peer: &Peer,
        tag: &str,
        stale: bool,
        issued: Instant,
        salt: Option<u64>,
    ) -> Response {
        let nonce = match salt {
            Some(salt) => self.nonces.issue_with(peer.addr.ip(), issued, salt),
            None => self.nonces.issue(peer.addr.ip(), issued),
        };
        let mut resp = Response::to_request(req, 401, Some(tag));
        // Whose REGISTER it is: the AOR's user (RFC 3261 §10.2 puts the
        // AOR in To); credentials carry the same name.
        let user = req
            .addr_to()
            .ok()
            .and_then(|t| t.uri.user_unescaped())
            .unwrap_or_default();
        // One challenge per configured algorithm, in preference order
        // (RFC 8760 §2.4).
        for &algorithm in self.algorithms_for(&user) {
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
    pub(super) fn authenticate(&mut self, req: &Request, peer: &Peer, now: Instant) -> Auth {
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
                    return Auth::Challenge {
                        stale: false,
                        counted: peer.kind == TransportKind::Tcp,
                    };
                }
            }
        }
        let Some(c) = creds else {
            return Auth::Challenge {
                stale: false,
                counted: false,
            };
        };
        if self.throttle.is_user_locked(&c.username, ip, now) {
            self.unproven(peer, &c.username, "user name locked");
            return Auth::Locked;
        }
        let algorithm = match Algorithm::parse(c.algorithm.as_deref()) {
            Some(a) if self.algorithms_for(&c.username).contains(&a) => a,
            _ => {
                return Auth::Challenge {
                    stale: false,
                    counted: false,
                };
            }
        };
        match self.nonces.check(&c.nonce, ip, now) {
            NonceCheck::Valid => {}
            NonceCheck::Stale => {
                return Auth::Challenge {
                    stale: true,
                    counted: false,
                };
            }
            NonceCheck::Invalid => {
                self.unproven(peer, &c.username, "nonce not issued to this address");
                return Auth::Challenge {
                    stale: false,
                    counted: false,
                };
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
                    return Auth::Challenge {
                        stale: false,
                        counted: true,
                    };
                }
            },
            Some(_) => {
                return Auth::Challenge {
                    stale: false,
                    counted: false,
                };
            }
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
            return Auth::Challenge {
                stale: false,
                counted: true,
            };
        }
        if !self.nonces.record_use(&c.nonce, nc, now) {
            self.fail(peer, &c.username, "replayed nonce", now);
            return Auth::Challenge {
                stale: false,
                counted: true,
            };
        }
        self.throttle.record_success(ip, &c.username, now);
        Auth::Ok(c.username)
    }
}
