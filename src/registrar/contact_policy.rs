//! Which Contacts an agent may register. Offers go to the address a
//! REGISTER came from (`centre::offer::binding_peer`), but the Contact is
//! still their Request-URI, and a proxy or a trunk in front of that
//! address would route on it. An agent with valid credentials must not be
//! able to turn callgate's offers into calls of its choosing (issue 9: a
//! Contact `sip:+19005550100@<trunk>;user=phone` made callgate place a
//! premium-rate call through the trunk). So a REGISTER is refused (403)
//! when:
//! - it came from one of callgate's outbound targets (the trunk), or
//! - a Contact's host:port is one of them, or
//! - a Contact's user part is a phone number (E.164, or seven or more
//!   digits) while its host is not the address the REGISTER came from:
//!   a number "routed elsewhere". A phone's own account name is allowed
//!   whatever it looks like (it is configured, not chosen by the phone);
//! - its Path (RFC 3327) does not begin at the address the REGISTER came
//!   from (the first Path entry is the proxy that forwarded it, §4.2), or
//!   names an outbound target anywhere: offers follow the Path, so a
//!   forged one would be the same attack as a forged Contact.

use crate::sip::message::{Scheme, Uri};
use crate::sip::transport::Peer;
use std::net::SocketAddr;

#[derive(Debug, Clone, Default)]
pub struct ContactPolicy {
    outbound: Vec<SocketAddr>,
}

impl ContactPolicy {
    pub fn new(outbound: Vec<SocketAddr>) -> Self {
        ContactPolicy {
            outbound: outbound.into_iter().map(canonical).collect(),
        }
    }

    fn is_outbound(&self, a: SocketAddr) -> bool {
        self.outbound.contains(&canonical(a))
    }

    /// Why a REGISTER from `source` may not register at all.
    pub fn check_source(&self, source: &Peer) -> Result<(), String> {
        if self.is_outbound(source.addr) {
            return Err(format!(
                "REGISTER from an outbound target ({})",
                source.addr
            ));
        }
        Ok(())
    }

    /// Why `contact`, registered by `user` from `source`, is refused.
    pub fn check(&self, contact: &Uri, user: &str, source: &Peer) -> Result<(), String> {
        let ip = contact.host.as_ref().and_then(|h| h.ip());
        if let Some(ip) = ip {
            let port = contact.port.unwrap_or(match contact.scheme {
                Scheme::Sips => 5061,
                _ => 5060,
            });
            let at = SocketAddr::new(ip, port);
            if self.is_outbound(at) {
                return Err(format!("Contact at an outbound target ({at})"));
            }
        }
        let contact_user = contact.user_unescaped().unwrap_or_default();
        let from_source = ip.is_some_and(|ip| ip.to_canonical() == source.addr.ip().to_canonical());
        if contact_user != user && is_phone_number(&contact_user) && !from_source {
            return Err(format!(
                "Contact user {contact_user:?} is a phone number at another host"
            ));
        }
        Ok(())
    }
}

impl ContactPolicy {
    /// Why the Path `hops` (top first) of a REGISTER from `source` are
    /// refused.
    pub fn check_path(&self, hops: &[Uri], source: &Peer) -> Result<(), String> {
        let Some(top) = hops.first() else {
            return Ok(());
        };
        let top_ip = top.host.as_ref().and_then(|h| h.ip());
        if top_ip.map(|ip| ip.to_canonical()) != Some(source.addr.ip().to_canonical()) {
            return Err(format!(
                "Path {top} does not begin at the proxy that sent the REGISTER ({})",
                source.addr.ip()
            ));
        }
        for hop in hops {
            if !hop.is_sip() {
                return Err(format!("Path {hop} is not a SIP URI"));
            }
            if let Some(ip) = hop.host.as_ref().and_then(|h| h.ip()) {
                let at = SocketAddr::new(ip, hop.port.unwrap_or(5060));
                if self.is_outbound(at) {
                    return Err(format!("Path through an outbound target ({at})"));
                }
            }
        }
        Ok(())
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// E.164 (`+` and digits) or seven or more digits, ignoring the visual
/// separators of RFC 3966 (`-`, `.`, `(`, `)`) and any `;` parameters.
pub fn is_phone_number(user: &str) -> bool {
    let number = user.split(';').next().unwrap_or_default();
    let cleaned: String = number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    let (plus, digits) = match cleaned.strip_prefix('+') {
        Some(d) => (true, d),
        None => (false, cleaned.as_str()),
    };
    let all_digits = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    all_digits && (plus || digits.len() >= 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> Peer {
        Peer::udp(s.parse().unwrap())
    }

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    #[test]
    fn phone_numbers() {
        for n in [
            "+19005550100",
            "19005550100",
            "5550100",
            "+1-900-555-0100",
            "+44(20)79460000",
            "+1900;npdi",
        ] {
            assert!(is_phone_number(n), "{n}");
        }
        for n in ["alice", "1001", "555010", "", "+", "+1x", "agent7"] {
            assert!(!is_phone_number(n), "{n}");
        }
    }

    #[test]
    fn contacts_refused_and_allowed() {
        let p = ContactPolicy::new(vec![
            "192.0.2.10:5080".parse().unwrap(),
            "192.0.2.11:5060".parse().unwrap(),
        ]);
        let src = peer("203.0.113.5:5070");
        // Issue 9's attack, and its variants.
        assert!(
            p.check(
                &uri("sip:+19005550100@192.0.2.10:5080;user=phone"),
                "alice",
                &src
            )
            .is_err()
        );
        assert!(
            p.check(&uri("sip:alice@192.0.2.10:5080"), "alice", &src)
                .is_err(),
            "any user at the trunk"
        );
        assert!(
            p.check(&uri("sip:alice@192.0.2.11"), "alice", &src)
                .is_err(),
            "default port"
        );
        assert!(
            p.check(&uri("sip:%2B19005550100@192.0.2.10:5081"), "alice", &src)
                .is_err(),
            "escaped, near the trunk"
        );
        assert!(
            p.check(&uri("sip:19005550100@carrier.example"), "alice", &src)
                .is_err()
        );
        // Ordinary phones: behind NAT, by name, own number at own address.
        assert!(
            p.check(&uri("sip:alice@10.1.2.3:5060;transport=udp"), "alice", &src)
                .is_ok()
        );
        assert!(
            p.check(&uri("sip:alice@phone.example"), "alice", &src)
                .is_ok()
        );
        assert!(
            p.check(&uri("sip:+12015550100@203.0.113.5:5070"), "alice", &src)
                .is_ok()
        );
        assert!(
            p.check(&uri("sip:12015550100@10.1.2.3"), "12015550100", &src)
                .is_ok(),
            "the account name"
        );
        assert!(
            p.check(&uri("sip:1001@10.1.2.3"), "alice", &src).is_ok(),
            "an extension"
        );
    }

    #[test]
    fn paths_must_begin_at_the_sending_proxy_and_avoid_the_trunk() {
        let p = ContactPolicy::new(vec!["192.0.2.10:5080".parse().unwrap()]);
        let proxy = peer("198.51.100.2:5060");
        let ok = [
            uri("sip:198.51.100.2:5060;lr;received=sip:10.0.0.7:5062"),
            uri("sip:edge.example.com;lr"),
        ];
        assert!(p.check_path(&ok, &proxy).is_ok());
        assert!(p.check_path(&[], &proxy).is_ok(), "no Path");
        // A phone writing a Path to elsewhere (or by name) is refused.
        assert!(p.check_path(&[uri("sip:203.0.113.9;lr")], &proxy).is_err());
        assert!(
            p.check_path(&[uri("sip:edge.example.com;lr")], &proxy)
                .is_err()
        );
        // Through the trunk, even when the trunk shares the source's host.
        let local = peer("192.0.2.10:40000");
        assert!(
            p.check_path(&[uri("sip:192.0.2.10:5080;lr")], &local)
                .is_err()
        );
        assert!(
            p.check_path(
                &[uri("sip:198.51.100.2;lr"), uri("sip:192.0.2.10:5080;lr")],
                &proxy
            )
            .is_err()
        );
        assert!(p.check_path(&[uri("tel:+15550100")], &proxy).is_err());
    }

    #[test]
    fn registering_from_the_trunk_is_refused() {
        let p = ContactPolicy::new(vec!["192.0.2.10:5080".parse().unwrap()]);
        assert!(p.check_source(&peer("192.0.2.10:5080")).is_err());
        assert!(p.check_source(&peer("[::ffff:192.0.2.10]:5080")).is_err());
        assert!(p.check_source(&peer("192.0.2.10:5081")).is_ok());
    }
}
