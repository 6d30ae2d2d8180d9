//! Phone numbers: validation and normalisation to E.164 with a real
//! numbering database (the `phonenumber` port of libphonenumber), and the
//! rules that decide which numbers callgate may ever dial.

mod kinds;
mod rules;

pub use kinds::{NumberType, Region};
pub use rules::DialRules;

use phonenumber::Mode;
use phonenumber::country::Id;
use serde::Deserialize;

/// How a caller keys a phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PhoneFormat {
    /// The national number of `country` (what a caller naturally types).
    #[default]
    Local,
    /// Country code included (a caller types e.g. 44 20 7946 0000).
    E164,
}

pub fn country(code: &str) -> Option<Id> {
    code.trim().to_ascii_uppercase().parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("not a valid phone number")]
    Invalid,
}

pub(crate) fn e164(n: &phonenumber::PhoneNumber) -> String {
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
}
