//! The typed values of the dial rules' configuration: regions and number
//! types, parsed (and refused with a located error) when the config loads.

use super::country;
use phonenumber::country::Id;
use serde::Deserialize;
use std::fmt;

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

    pub(super) fn of(t: phonenumber::Type) -> NumberType {
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

#[cfg(test)]
mod tests {
    use super::*;

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
