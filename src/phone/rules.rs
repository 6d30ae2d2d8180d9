//! Which numbers callgate may ever dial (`DialRules`), whatever a flow or
//! an API call asks for.

use super::{NumberType, e164};
use phonenumber::country::Id;

/// Emergency and service numbers of the world's numbering plans. A
/// national number this short is never a subscriber (the shortest full
/// numbers, Niue's, have four digits and are not worth the risk), but a
/// trunk may still route `+1911` or `+44999` to the emergency services.
const EMERGENCY: &[&str] = &[
    "000", "08", "100", "101", "102", "103", "104", "108", "110", "111", "112", "113", "114",
    "115", "117", "118", "119", "122", "123", "190", "191", "192", "193", "194", "197", "199",
    "911", "933", "995", "997", "998", "999", "15", "17", "18", "10111", "10177",
];

/// A full national number has at least this many digits; shorter ones are
/// short codes (service, carrier and emergency numbers).
const MIN_NATIONAL_DIGITS: usize = 6;

/// Which E.164 numbers may be dialled: callgate must never become an open
/// relay for toll fraud, whatever a flow or an API call asks for. Built
/// once from `[dialer]`; checked when a callback is created and again
/// right before every dial (the rules may have changed since).
#[derive(Debug, Clone)]
pub struct DialRules {
    /// A number's region (libphonenumber's, not merely its country
    /// calling code: +1 is 25 countries) must be one of these.
    pub allowed_regions: Vec<Id>,
    /// Types never dialled.
    pub blocked_types: Vec<NumberType>,
    /// If non-empty, a number must also start with one of these.
    pub allowed_prefixes: Vec<String>,
    /// Never dialled, e.g. "+1900".
    pub blocked_prefixes: Vec<String>,
}

impl Default for DialRules {
    /// The rules of an unconfigured dialer: US numbers that cost the
    /// operator nothing out of the ordinary.
    fn default() -> Self {
        DialRules {
            allowed_regions: vec![Id::US],
            blocked_types: NumberType::DEFAULT_BLOCKED.to_vec(),
            allowed_prefixes: Vec::new(),
            blocked_prefixes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialRefusal {
    #[error("{0} is not a valid E.164 number")]
    Invalid(String),
    #[error("{0} is an emergency number")]
    Emergency(String),
    #[error("{0} is a short code")]
    ShortCode(String),
    #[error("{0} is in region {1}, not in dialer.allowed_regions")]
    Region(String, String),
    #[error("{0} is a {1} number (dialer.blocked_types)")]
    BlockedType(String, NumberType),
    #[error("{0} is not in an allowed prefix")]
    NotAllowed(String),
    #[error("{0} is in a blocked prefix")]
    Blocked(String),
}

impl DialRules {
    /// Whether `number` (E.164) may be dialled. (The rules of `[dialer]`
    /// are built by `DialerConfig::dial_rules`.)
    pub fn check(&self, number: &str) -> Result<(), DialRefusal> {
        let invalid = || DialRefusal::Invalid(number.to_string());
        let well_formed = number.starts_with('+')
            && number.len() <= 16
            && number.len() >= 3
            && number[1..].chars().all(|c| c.is_ascii_digit());
        if !well_formed {
            return Err(invalid());
        }
        let parsed = phonenumber::parse(None, number).map_err(|_| invalid())?;
        // The parser drops an extension or stray characters it can make
        // sense of; the number dialled must be exactly the one checked.
        if e164(&parsed) != number {
            return Err(invalid());
        }
        let national = parsed.national().to_string();
        if EMERGENCY.contains(&national.as_str()) {
            return Err(DialRefusal::Emergency(number.to_string()));
        }
        if national.len() < MIN_NATIONAL_DIGITS {
            return Err(DialRefusal::ShortCode(number.to_string()));
        }
        if !phonenumber::is_valid(&parsed) {
            return Err(invalid());
        }
        match parsed.country().id() {
            Some(id) if self.allowed_regions.contains(&id) => {}
            other => {
                let region = other.map_or_else(
                    || "none (non-geographic)".to_string(),
                    |id| id.as_ref().to_string(),
                );
                return Err(DialRefusal::Region(number.to_string(), region));
            }
        }
        let kind = NumberType::of(parsed.number_type(&phonenumber::metadata::DATABASE));
        if kind == NumberType::Unknown || self.blocked_types.contains(&kind) {
            return Err(DialRefusal::BlockedType(number.to_string(), kind));
        }
        if self
            .blocked_prefixes
            .iter()
            .any(|p| number.starts_with(p.as_str()))
        {
            return Err(DialRefusal::Blocked(number.to_string()));
        }
        if !self.allowed_prefixes.is_empty()
            && !self
                .allowed_prefixes
                .iter()
                .any(|p| number.starts_with(p.as_str()))
        {
            return Err(DialRefusal::NotAllowed(number.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> DialRules {
        DialRules {
            allowed_prefixes: vec!["+1".into()],
            blocked_prefixes: vec!["+1900".into(), "+1976".into()],
            ..DialRules::default()
        }
    }

    #[test]
    fn nanp_regions_are_told_apart() {
        let r = shipped();
        assert_eq!(r.check("+12015550123"), Ok(()));
        // Issue 9: +1 is the whole NANP; these passed a "+1" prefix rule.
        for (n, region) in [
            ("+18766012345", "JM"),
            ("+18092201234", "DO"),
            ("+12844941234", "VG"),
            ("+14734401234", "GD"),
            ("+17672351234", "DM"),
            ("+14165550123", "CA"),
        ] {
            assert_eq!(
                r.check(n),
                Err(DialRefusal::Region(n.into(), region.into())),
                "{n}"
            );
        }
        let us_ca = DialRules {
            allowed_regions: vec![Id::US, Id::CA],
            ..shipped()
        };
        assert_eq!(us_ca.check("+14165550123"), Ok(()));
        assert!(us_ca.check("+18766012345").is_err());
    }

    #[test]
    fn types_prefixes_and_short_codes() {
        let r = shipped();
        assert_eq!(
            r.check("+19005550123"),
            Err(DialRefusal::BlockedType(
                "+19005550123".into(),
                NumberType::PremiumRate
            ))
        );
        assert!(matches!(
            r.check("+18005550123"),
            Err(DialRefusal::BlockedType(_, NumberType::TollFree))
        ));
        let gb = DialRules {
            allowed_regions: vec![Id::GB],
            ..DialRules::default()
        };
        assert_eq!(gb.check("+442079460000"), Ok(()));
        assert!(matches!(
            gb.check("+449098790000"),
            Err(DialRefusal::BlockedType(_, NumberType::PremiumRate))
        ));
        // 084x: shared cost, which libphonenumber's GB data also lists as
        // premium rate (and checks first).
        assert!(matches!(
            gb.check("+448431234567"),
            Err(DialRefusal::BlockedType(
                _,
                NumberType::PremiumRate | NumberType::SharedCost
            ))
        ));
        assert!(matches!(
            gb.check("+447012345678"),
            Err(DialRefusal::BlockedType(_, NumberType::PersonalNumber))
        ));
        assert!(matches!(
            r.check("+442079460000"),
            Err(DialRefusal::Region(..))
        ));
        // Nothing configured can make an emergency number or a short code
        // dialable.
        let anything = DialRules {
            allowed_regions: vec![Id::US, Id::GB, Id::FR, Id::ZA],
            blocked_types: Vec::new(),
            allowed_prefixes: Vec::new(),
            blocked_prefixes: Vec::new(),
        };
        for n in ["+1911", "+44999", "+44112", "+33112", "+2710111"] {
            assert_eq!(
                anything.check(n),
                Err(DialRefusal::Emergency(n.into())),
                "{n}"
            );
        }
        assert_eq!(
            anything.check("+4412345"),
            Err(DialRefusal::ShortCode("+4412345".into()))
        );
        assert_eq!(anything.check("+18005550123"), Ok(()), "types unblocked");
        for bad in [
            "12015550123",
            "+1201555012;x",
            "+1201555012",
            "+120155501234567",
            "+",
            "",
            "+12015550123 ",
        ] {
            assert!(
                matches!(anything.check(bad), Err(DialRefusal::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
