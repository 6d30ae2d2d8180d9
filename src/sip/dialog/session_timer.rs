//! SIP session timers (RFC 4028): how long a session lives without a
//! refresh, and who refreshes it. Pure negotiation over headers; the call
//! that owns the dialog keeps the clock (`call::liveness`).

use crate::sip::message::{HeaderName, MessageExt, Request, Response};

/// The smallest interval RFC 4028 §4 allows anyone to ask for.
pub const MIN_SE_FLOOR: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: `1800;refresher=uac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub interval: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    pub fn parse(value: &str) -> Option<SessionExpires> {
        let mut parts = value.split(';');
        let interval = crate::sip::message::parse_u32_saturating(parts.next()?)?;
        let mut refresher = None;
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            if k.trim().eq_ignore_ascii_case("refresher") {
                refresher = match v.trim().to_ascii_lowercase().as_str() {
                    "uac" => Some(Refresher::Uac),
                    "uas" => Some(Refresher::Uas),
                    _ => None,
                };
            }
        }
        Some(SessionExpires {
            interval,
            refresher,
        })
    }

    pub fn header_value(&self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.interval, r.as_str()),
            None => self.interval.to_string(),
        }
    }
}

/// Whether a message lists `option` in Supported (or Require).
pub fn lists_option(headers: &crate::sip::message::Headers, option: &str) -> bool {
    [HeaderName::Supported, HeaderName::Require]
        .iter()
        .flat_map(|h| headers.get_all(h))
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(option)))
}

/// Our limits: the longest interval we let a session run unrefreshed
/// (0: we do not use session timers) and the shortest we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub session_expires: u32,
    pub min_se: u32,
}

/// What a UAS does with an INVITE or UPDATE, initial or refresh
/// (RFC 4028 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasTimer {
    /// Refuse with 422 and this Min-SE: the interval asked for is shorter
    /// than we accept.
    TooSmall(u32),
    /// No session timer for this session.
    Off,
    /// Run the timer: the 2xx carries `Session-Expires` with the
    /// refresher and, when the UAC supports timers, `Require: timer`.
    On { se: SessionExpires, require: bool },
}

impl UasTimer {
    pub fn negotiate(req: &Request, limits: Limits) -> UasTimer {
        if limits.session_expires == 0 {
            return UasTimer::Off;
        }
        let uac_supports = lists_option(&req.headers, "timer");
        let asked = req
            .headers
            .get(&HeaderName::SessionExpires)
            .and_then(SessionExpires::parse);
        let their_min = req
            .header_u32(&HeaderName::MinSe)
            .ok()
            .flatten()
            .unwrap_or(MIN_SE_FLOOR);
        let floor = limits.min_se.max(their_min).max(MIN_SE_FLOOR);
        let se = match asked {
            Some(se) if se.interval < limits.min_se.max(MIN_SE_FLOOR) => {
                return UasTimer::TooSmall(limits.min_se.max(MIN_SE_FLOOR));
            }
            Some(se) => SessionExpires {
                // §9: the UAS may shorten the interval, not below Min-SE.
                interval: se.interval.min(limits.session_expires).max(floor),
                // A UAC that does not support timers cannot refresh (a
                // proxy asked for the timer): then we do.
                refresher: Some(match (se.refresher, uac_supports) {
                    (_, false) => Refresher::Uas,
                    (Some(r), true) => r,
                    (None, true) => Refresher::Uac,
                }),
            },
            // §9: a UAS may start the timer itself when the UAC supports it.
            None if uac_supports => SessionExpires {
                interval: limits.session_expires.max(floor),
                refresher: Some(Refresher::Uac),
            },
            None => return UasTimer::Off,
        };
        UasTimer::On {
            se,
            require: uac_supports,
        }
    }

    /// Adds the headers this decision puts in the 2xx.
    pub fn apply(self, resp: Response) -> Response {
        match self {
            UasTimer::On { se, require } => {
                let r = resp.with_header(HeaderName::SessionExpires, se.header_value());
                if require {
                    r.with_header(HeaderName::Require, "timer")
                } else {
                    r
                }
            }
            UasTimer::TooSmall(min) => resp.with_header(HeaderName::MinSe, min.to_string()),
            UasTimer::Off => resp,
        }
    }

    /// (interval in seconds, whether we refresh) when the timer runs.
    pub fn running(self) -> Option<(u32, bool)> {
        match self {
            UasTimer::On { se, .. } => Some((se.interval, se.refresher == Some(Refresher::Uas))),
            _ => None,
        }
    }
}

/// A UAC's reading of a 2xx (RFC 4028 §7.2): the session runs with a
/// timer only if the 2xx has Session-Expires; we refresh unless it names
/// the UAS. Returns (interval, whether we refresh).
pub fn uac_timer(resp: &Response) -> Option<(u32, bool)> {
    let se = resp
        .headers
        .get(&HeaderName::SessionExpires)
        .and_then(SessionExpires::parse)?;
    if se.interval == 0 {
        return None;
    }
    Some((se.interval, se.refresher != Some(Refresher::Uas)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{SipMessage, parse_datagram};

    const LIMITS: Limits = Limits {
        session_expires: 1800,
        min_se: 90,
    };

    fn invite(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:1000@gw SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:1000@gw>\r\nCall-ID: s\r\nCSeq: 1 INVITE\r\nContact: <sip:a@b>\r\nMax-Forwards: 70\r\n{extra}\r\n"
        );
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_and_prints() {
        let se = SessionExpires::parse("1800;refresher=UAS").unwrap();
        assert_eq!(se.interval, 1800);
        assert_eq!(se.refresher, Some(Refresher::Uas));
        assert_eq!(se.header_value(), "1800;refresher=uas");
        assert_eq!(SessionExpires::parse(" 90 ").unwrap().refresher, None);
        assert!(SessionExpires::parse("soon").is_none());
    }

    #[test]
    fn uas_negotiation() {
        // No timer asked for or supported: none.
        assert_eq!(UasTimer::negotiate(&invite(""), LIMITS), UasTimer::Off);
        // Too short: 422 with our Min-SE.
        let t = UasTimer::negotiate(
            &invite("Supported: timer\r\nSession-Expires: 60\r\n"),
            LIMITS,
        );
        assert_eq!(t, UasTimer::TooSmall(90));
        let r = t.apply(Response::to_request(&invite(""), 422, Some("x")));
        assert_eq!(r.headers.get(&HeaderName::MinSe), Some("90"));
        // The UAC supports timers and leaves the refresher to us: it
        // refreshes; the interval is capped at ours.
        let t = UasTimer::negotiate(
            &invite("Supported: timer, 100rel\r\nSession-Expires: 7200\r\n"),
            LIMITS,
        );
        assert_eq!(t.running(), Some((1800, false)));
        let r = t.apply(Response::to_request(&invite(""), 200, Some("x")));
        assert_eq!(
            r.headers.get(&HeaderName::SessionExpires),
            Some("1800;refresher=uac")
        );
        assert_eq!(r.headers.get(&HeaderName::Require), Some("timer"));
        // It asks us to refresh.
        let t = UasTimer::negotiate(
            &invite("Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n"),
            LIMITS,
        );
        assert_eq!(t.running(), Some((600, true)));
        // A proxy asked for the timer, the UAC can't refresh: we do, and
        // no Require (the UAC would not understand it).
        let t = UasTimer::negotiate(&invite("Session-Expires: 600\r\n"), LIMITS);
        assert_eq!(t.running(), Some((600, true)));
        let r = t.apply(Response::to_request(&invite(""), 200, Some("x")));
        assert_eq!(r.headers.get(&HeaderName::Require), None);
        // Supported without Session-Expires: we may start it (§9).
        let t = UasTimer::negotiate(&invite("Supported: timer\r\n"), LIMITS);
        assert_eq!(t.running(), Some((1800, false)));
        // Their Min-SE is honoured when we shorten.
        let t = UasTimer::negotiate(
            &invite("Supported: timer\r\nSession-Expires: 7200\r\nMin-SE: 3600\r\n"),
            LIMITS,
        );
        assert_eq!(t.running(), Some((3600, false)));
        // Turned off in the config.
        let off = Limits {
            session_expires: 0,
            min_se: 90,
        };
        let t = UasTimer::negotiate(&invite("Supported: timer\r\nSession-Expires: 90\r\n"), off);
        assert_eq!(t, UasTimer::Off);
    }

    #[test]
    fn uac_reads_the_2xx() {
        let ok = |se: &str| {
            let text = format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nCall-ID: s\r\nCSeq: 1 INVITE\r\n{se}\r\n"
            );
            match parse_datagram(text.as_bytes()) {
                Ok(SipMessage::Response(r)) => r,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(uac_timer(&ok("")), None);
        assert_eq!(
            uac_timer(&ok("Session-Expires: 900;refresher=uac\r\n")),
            Some((900, true))
        );
        assert_eq!(
            uac_timer(&ok("x: 900;refresher=uas\r\n")),
            Some((900, false)),
            "compact form"
        );
        assert_eq!(
            uac_timer(&ok("Session-Expires: 900\r\n")),
            Some((900, true))
        );
    }
}
