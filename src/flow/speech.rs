//! Turning prompt items into audio: prompt files, digits spoken one by one
//! and whole numbers ("forty five" from number_40 + number_5).

use super::context::Contact;
use super::load::{PromptRef, parse_item};
use crate::media::prompt::{Prompt, PromptLibrary};
use std::sync::Arc;

/// Values a `number:` item can name besides attributes.
pub struct Variables {
    pub wait_minutes: u64,
    pub queue_position: Option<u64>,
    pub contacts_in_queue: Option<u64>,
}

/// Prompt names for `n`: words up to sixty, then digit by digit.
pub fn number_names(n: u64) -> Vec<String> {
    match n {
        0 => vec!["digit_0".into()],
        1..=20 => vec![format!("number_{n}")],
        21..=60 => {
            let tens = n / 10 * 10;
            let unit = n % 10;
            let mut v = vec![format!("number_{tens}")];
            if unit > 0 {
                v.push(format!("number_{unit}"));
            }
            v
        }
        _ => n.to_string().chars().map(digit_name).collect(),
    }
}

fn digit_name(d: char) -> String {
    format!("digit_{d}")
}

/// Every prompt a `digits:` item can play.
pub fn digit_prompt_names() -> Vec<String> {
    ('0'..='9').map(digit_name).collect()
}

/// Every prompt a `number:` item can play, so a flow is checked (and the
/// prompts loaded) for any value, not just the ones seen in testing.
pub fn number_prompt_names() -> Vec<String> {
    let mut v: Vec<String> = (1..=60).flat_map(number_names).collect();
    v.extend(digit_prompt_names());
    v.extend(minutes_names(u64::MAX));
    v.sort();
    v.dedup();
    v
}

fn minutes_names(m: u64) -> Vec<String> {
    if m > 60 {
        vec!["more_than_an_hour".into()]
    } else {
        number_names(m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpeechError(pub String);

/// Resolves prompt items into audio to play.
pub fn resolve(
    items: &[String],
    lib: &PromptLibrary,
    contact: &Contact,
    vars: &Variables,
) -> Result<Vec<Arc<Prompt>>, SpeechError> {
    let mut names: Vec<String> = Vec::new();
    for item in items {
        match parse_item(item).map_err(SpeechError)? {
            PromptRef::File(f) => names.push(f.to_string()),
            PromptRef::Digits(attr) => {
                let value = contact
                    .attributes
                    .get(attr)
                    .ok_or_else(|| SpeechError(format!("attribute {attr:?} is not set")))?;
                names.extend(value.chars().filter(char::is_ascii_digit).map(digit_name));
            }
            PromptRef::Number(var) => {
                let n = match var {
                    "wait_minutes" => {
                        names.extend(minutes_names(vars.wait_minutes));
                        continue;
                    }
                    "queue_position" => vars.queue_position,
                    "contacts_in_queue" => vars.contacts_in_queue,
                    attr => contact.attributes.get(attr).and_then(|v| v.parse().ok()),
                }
                .ok_or_else(|| SpeechError(format!("{var:?} has no numeric value")))?;
                names.extend(number_names(n));
            }
        }
    }
    names
        .iter()
        .map(|n| {
            lib.get(n)
                .ok_or_else(|| SpeechError(format!("prompt {n:?} is not loaded")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_words() {
        assert_eq!(number_names(0), vec!["digit_0"]);
        assert_eq!(number_names(12), vec!["number_12"]);
        assert_eq!(number_names(45), vec!["number_40", "number_5"]);
        assert_eq!(number_names(30), vec!["number_30"]);
        assert_eq!(number_names(123), vec!["digit_1", "digit_2", "digit_3"]);
        assert_eq!(minutes_names(90), vec!["more_than_an_hour"]);
    }

    #[test]
    fn every_number_spoken_uses_only_declared_prompts() {
        let declared = number_prompt_names();
        let probes = (0..=1000).chain([9_999, 65_536, u64::MAX]);
        for n in probes {
            for name in number_names(n).into_iter().chain(minutes_names(n)) {
                assert!(declared.contains(&name), "{n} needs {name}");
            }
        }
    }
}
