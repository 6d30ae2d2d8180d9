//! Phone numbers: validation and normalisation to E.164 with a real
//! numbering database (the `phonenumber` port of libphonenumber), and the
//! rules that decide which numbers callgate may ever dial.

use crate::flow::model::PhoneFormat;
use phonenumber::Mode;
use phonenumber::country::Id;
use serde::Deserialize;
use std::fmt;

pub fn country(code: &str) -> Option<Id> {
    code.trim().to_ascii_uppercase().parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("not a valid phone number")]
    Invalid,
}

fn e164(n: &phonenumber::PhoneNumber) -> String {
    n.format().mode(Mode::E164).to_string()
}

/// Digits typed on a keypad → E.164. `Local`: the national number of
/// `country` (a leading trunk prefix such as 0 or 1 is understood);
/// `E164`: the country code followed by the national number.
pub fn normalize_keyed(
    digits: &str,
    format: PhoneFormat,
    country: Option<Id>,
) -> Result<String, PhoneError> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 17 {
        return Err(PhoneError::Invalid);
    }
    let parsed = match format {
        PhoneFormat::Local => phonenumber::parse(Some(country.ok_or(PhoneError::Invalid)?), digits),
        PhoneFormat::E164 => phonenumber::parse(None, format!("+{digits}")),
    }
    .map_err(|_| PhoneError::Invalid)?;
    if !phonenumber::is_valid(&parsed) {
        return Err(PhoneError::Invalid);
    }
    Ok(e164(&parsed))
}

/// A number from signalling (From/P-Asserted-Identity user part, a tel:
/// URI) → E.164, trying the default country for national forms.
pub fn normalize_signalled(raw: &str, default_country: Option<Id>) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    if cleaned.len() < 3 {
        return None;
    }
    let parsed = if cleaned.starts_with('+') {
        phonenumber::parse(None, &cleaned).ok()?
    } else {
        phonenumber::parse(default_country, &cleaned).ok()?
    };
    phonenumber::is_valid(&parsed).then(|| e164(&parsed))
}

/// Parses one number so the numbering database (a large table parsed on
/// first use, ~1 s in debug builds) is ready before the first caller.
pub fn warm_up() {
    let _ = normalize_signalled("+12015550100", None);
}

/// A region numbers may be dialled in (`dialer.allowed_regions`): an ISO
/// 3166 code the numbering database knows, checked when the config loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(pub Id);

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match country(&s) {
            Some(id) if s.trim().len() == 2 => Ok(Region(id)),
            _ => Err(serde::de::Error::custom(format!(
                "unknown region {s:?}: use an ISO 3166 code such as \"US\" or \"CA\""
            ))),
        }
    }
}

/// The types of number the numbering database tells apart
/// (`dialer.blocked_types`). libphonenumber's short-number types
/// (emergency, short codes, carrier services) are not here: no full
/// number has them, and such numbers are never dialled whatever the
/// configuration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberType {
    FixedLine,
    Mobile,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    PersonalNumber,
    Voip,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl NumberType {
    pub const ALL: [NumberType; 12] = [
        NumberType::FixedLine,
        NumberType::Mobile,
        NumberType::FixedLineOrMobile,
        NumberType::TollFree,
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::PersonalNumber,
        NumberType::Voip,
        NumberType::Pager,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Unknown,
    ];

    /// What `dialer.blocked_types` holds unless configured: every type a
    /// caller could use to make the operator pay (premium rate, shared
    /// cost, personal-number and UAN redirection, pager and voicemail
    /// access) or that routes back into a call centre (toll free).
    pub const DEFAULT_BLOCKED: [NumberType; 8] = [
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::TollFree,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::PersonalNumber,
        NumberType::Pager,
        NumberType::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NumberType::FixedLine => "fixed_line",
            NumberType::Mobile => "mobile",
            NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberType::TollFree => "toll_free",
            NumberType::PremiumRate => "premium_rate",
            NumberType::SharedCost => "shared_cost",
            NumberType::PersonalNumber => "personal_number",
            NumberType::Voip => "voip",
            NumberType::Pager => "pager",
            NumberType::Uan => "uan",
            NumberType::Voicemail => "voicemail",
            NumberType::Unknown => "unknown",
        }
    }

    fn of(t: phonenumber::Type) -> NumberType {
        use phonenumber::Type as T;
        match t {
            T::FixedLine => NumberType::FixedLine,
            T::Mobile => NumberType::Mobile,
            T::FixedLineOrMobile => NumberType::FixedLineOrMobile,
            T::TollFree => NumberType::TollFree,
            T::PremiumRate => NumberType::PremiumRate,
            T::SharedCost => NumberType::SharedCost,
            T::PersonalNumber => NumberType::PersonalNumber,
            T::Voip => NumberType::Voip,
            T::Pager => NumberType::Pager,
            T::Uan => NumberType::Uan,
            T::Voicemail => NumberType::Voicemail,
            // Short-number types never come out of the full-number
            // metadata; should one appear, it is not a dialable number.
            _ => NumberType::Unknown,
        }
    }
}

impl fmt::Display for NumberType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for NumberType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(t) = NumberType::ALL.into_iter().find(|t| t.name() == s) {
            return Ok(t);
        }
        let names: Vec<&str> = NumberType::ALL.iter().map(|t| t.name()).collect();
        let extra = if ["emergency", "short_code", "standard_rate", "carrier"].contains(&s.as_str())
        {
            " (emergency numbers and short codes are never dialled; they need no entry)"
        } else {
            ""
        };
        Err(serde::de::Error::custom(format!(
            "unknown number type {s:?}{extra}: one of {}",
            names.join(", ")
        )))
    }
}

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
    /// The rules of `[dialer]`: `allowed_regions` defaults to the
    /// dialer's country.
    pub fn from_config(c: &crate::config::DialerConfig) -> DialRules {
        let allowed_regions = match &c.allowed_regions {
            Some(list) => list.iter().map(|r| r.0).collect(),
            None => country(&c.country).into_iter().collect(),
        };
        DialRules {
            allowed_regions,
            blocked_types: c.blocked_types.clone(),
            allowed_prefixes: c.allowed_prefixes.clone(),
            blocked_prefixes: c.blocked_prefixes.clone(),
        }
    }

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

    #[test]
    fn keyed_numbers() {
        let us = country("us");
        assert_eq!(
            normalize_keyed("2015550123", PhoneFormat::Local, us).as_deref(),
            Ok("+12015550123")
        );
        assert_eq!(
            normalize_keyed("12015550123", PhoneFormat::Local, us).as_deref(),
            Ok("+12015550123")
        );
        assert_eq!(
            normalize_keyed("5551234", PhoneFormat::Local, us),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            normalize_keyed("911", PhoneFormat::Local, us),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            normalize_keyed("442079460000", PhoneFormat::E164, None).as_deref(),
            Ok("+442079460000")
        );
        // ("2015550123" would be +20 15550123, a valid Egyptian number.)
        assert_eq!(
            normalize_keyed("12345", PhoneFormat::E164, None),
            Err(PhoneError::Invalid),
            "too short for any country"
        );
        assert_eq!(
            normalize_keyed("02079460000", PhoneFormat::Local, country("GB")).as_deref(),
            Ok("+442079460000")
        );
        assert_eq!(
            normalize_keyed("20#1", PhoneFormat::Local, us),
            Err(PhoneError::Invalid)
        );
        assert_eq!(
            normalize_keyed("", PhoneFormat::Local, us),
            Err(PhoneError::Invalid)
        );
    }

    #[test]
    fn signalled_numbers() {
        let us = country("US");
        assert_eq!(
            normalize_signalled("+12015550100", us).as_deref(),
            Some("+12015550100")
        );
        assert_eq!(
            normalize_signalled("2015550100", us).as_deref(),
            Some("+12015550100")
        );
        assert_eq!(
            normalize_signalled("+1-201-555-0100", None).as_deref(),
            Some("+12015550100")
        );
        assert_eq!(normalize_signalled("alice", us), None);
        assert_eq!(normalize_signalled("100", us), None);
    }

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

    #[test]
    fn config_names() {
        #[derive(Deserialize)]
        struct T {
            r: Vec<Region>,
            t: Vec<NumberType>,
        }
        let ok: T =
            toml::from_str("r = [\"US\", \"ca\"]\nt = [\"premium_rate\", \"uan\"]").unwrap();
        assert_eq!(ok.r, vec![Region(Id::US), Region(Id::CA)]);
        assert_eq!(ok.t, vec![NumberType::PremiumRate, NumberType::Uan]);
        let e = toml::from_str::<T>("r = [\"XX\"]\nt = []").err().unwrap();
        assert!(e.message().contains("unknown region \"XX\""), "{e}");
        let e = toml::from_str::<T>("r = []\nt = [\"emergency\"]")
            .err()
            .unwrap();
        assert!(e.message().contains("never dialled"), "{e}");
        for t in NumberType::ALL {
            let parsed: T = toml::from_str(&format!("r = []\nt = [\"{t}\"]")).unwrap();
            assert_eq!(parsed.t, vec![t]);
        }
    }
}
