//! Store customer input: plays a prompt and collects several keys (up to
//! `max_digits`, ended by the terminator or an inter-digit timeout). In
//! phone-number mode the keys are validated as a number in the
//! configured format and stored in E.164.

use super::get_input::default_timeout;
use super::{Branches, Cx, Event, Problems, Step, Waiting};
use crate::flow::model::{InputMode, PromptItem};
use crate::phone::{self, PhoneFormat};
use serde::Deserialize;
use std::time::Duration;
use tracing::info;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreInput {
    pub prompts: Vec<PromptItem>,
    /// Attribute that receives the input (normalised to E.164 in
    /// phone-number mode); `<attribute>_keyed` keeps the keys as typed.
    pub attribute: String,
    #[serde(default)]
    pub mode: InputMode,
    #[serde(default)]
    pub format: PhoneFormat,
    /// ISO 3166 country for local format, e.g. "US".
    pub country: Option<String>,
    #[serde(default = "default_max_digits")]
    pub max_digits: usize,
    /// Ends the input; empty for none.
    #[serde(default = "default_terminator")]
    pub terminator: String,
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    #[serde(default = "default_inter_digit")]
    pub inter_digit_timeout_s: u64,
    pub next: String,
    pub on_invalid: Option<String>,
    pub on_timeout: String,
    pub on_error: Option<String>,
}

fn default_max_digits() -> usize {
    20
}
fn default_terminator() -> String {
    "#".into()
}
fn default_inter_digit() -> u64 {
    5
}

/// The keys collected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    typed: String,
    /// Still in the prompt (the first key stops it).
    prompting: bool,
}

impl StoreInput {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.opt("on_invalid", &self.on_invalid);
        v.opt("on_error", &self.on_error);
        v.one("next", &self.next);
        v.one("on_timeout", &self.on_timeout);
    }

    pub(super) fn check(&self, p: &mut Problems<'_>) {
        if !(1..=32).contains(&self.max_digits) {
            p.at("max_digits", "max_digits must be 1..=32");
        }
        if !(self.terminator.is_empty() || self.terminator == "#" || self.terminator == "*") {
            p.at("terminator", "terminator must be \"#\", \"*\" or \"\"");
        }
        if self.timeout_s == 0 || self.inter_digit_timeout_s == 0 {
            p.at("timeout_s", "timeouts must be at least 1 s");
        }
        if self.attribute.is_empty() {
            p.at("attribute", "attribute must be named");
        }
        if self.mode == InputMode::PhoneNumber {
            if self.on_invalid.is_none() {
                p.block("phone_number mode needs an on_invalid branch");
            }
            if self.format == PhoneFormat::Local {
                match &self.country {
                    None => p.block("local format needs a country (e.g. \"US\")"),
                    Some(c) if phone::country(c).is_none() => {
                        p.at("country", format!("unknown country {c:?}"));
                    }
                    Some(_) => {}
                }
            }
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let audio = match cx.audio(&self.prompts) {
            Ok(a) => a,
            Err(e) => return cx.error(&self.on_error, &e),
        };
        cx.clear_digits();
        if cx.play(audio, false) {
            return Step::Wait(Waiting::Store(Entry {
                typed: String::new(),
                prompting: true,
            }));
        }
        self.wait_first(Entry::default(), cx)
    }

    /// The prompt is over: keys typed during it, else the first key's wait.
    fn wait_first(&self, entry: Entry, cx: &mut Cx<'_>) -> Step {
        if let Some(k) = cx.take_digit() {
            return self.key(entry, k, cx);
        }
        cx.arm(Duration::from_secs(self.timeout_s));
        Step::Wait(Waiting::Store(entry))
    }

    fn key(&self, mut entry: Entry, k: char, cx: &mut Cx<'_>) -> Step {
        entry.prompting = false;
        if self.terminator.starts_with(k) {
            return self.finish(entry.typed, true, cx);
        }
        // Other keys (*, A–D) are not part of a number: ignored.
        if k.is_ascii_digit() {
            entry.typed.push(k);
        }
        if entry.typed.len() >= self.max_digits {
            return self.finish(entry.typed, false, cx);
        }
        cx.arm(Duration::from_secs(self.inter_digit_timeout_s));
        Step::Wait(Waiting::Store(entry))
    }

    pub(super) fn on(&self, entry: Entry, ev: Event, cx: &mut Cx<'_>) -> Step {
        match ev {
            Event::Digit(k) => {
                if entry.prompting {
                    cx.stop_playback();
                }
                self.key(entry, k, cx)
            }
            Event::PlaybackDone if entry.prompting => self.wait_first(
                Entry {
                    prompting: false,
                    ..entry
                },
                cx,
            ),
            Event::Timeout if !entry.prompting => self.finish(entry.typed, false, cx),
            _ => Step::Wait(Waiting::Store(entry)),
        }
    }

    fn finish(&self, typed: String, terminated: bool, cx: &mut Cx<'_>) -> Step {
        info!(
            block = %cx.block,
            digits = typed.len(),
            terminated,
            "input stored"
        );
        if typed.is_empty() {
            // Only the terminator: the caller answered "nothing".
            return Step::Next(match (terminated, &self.on_invalid) {
                (true, Some(inv)) => inv.clone(),
                _ => self.on_timeout.clone(),
            });
        }
        // The keys as typed, for reading back (the stored value may be
        // normalised to E.164).
        cx.contact
            .attributes
            .insert(format!("{}_keyed", self.attribute), typed.clone());
        let value = match self.mode {
            InputMode::Digits => typed,
            InputMode::PhoneNumber => {
                let country = self.country.as_deref().and_then(phone::country);
                // A number callgate would never dial is invalid here
                // already: the caller hears so before confirming it, not
                // after.
                let checked = phone::normalize_keyed(&typed, self.format, country)
                    .map_err(|e| e.to_string())
                    .and_then(|n| {
                        cx.env.dial_rules().check(&n).map_err(|e| e.to_string())?;
                        Ok(n)
                    });
                match checked {
                    Ok(n) => n,
                    Err(reason) => {
                        info!(block = %cx.block, %reason, "invalid phone number");
                        return Step::Next(
                            self.on_invalid
                                .clone()
                                .unwrap_or_else(|| self.on_timeout.clone()),
                        );
                    }
                }
            }
        };
        cx.contact.attributes.insert(self.attribute.clone(), value);
        Step::Next(self.next.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{Run, flow};
    use std::time::Duration;

    fn number(extra: &str) -> String {
        format!(
            r#"
start = "ask"
[blocks.ask]
type = "store_input"
prompts = ["enter_number"]
attribute = "n"
mode = "phone_number"
format = "local"
country = "US"
max_digits = 15
timeout_s = 8
inter_digit_timeout_s = 3
next = "ok"
on_invalid = "invalid"
on_timeout = "timeout"
{extra}
[blocks.ok]
type = "disconnect"
[blocks.invalid]
type = "disconnect"
[blocks.timeout]
type = "disconnect"
"#
        )
    }

    #[test]
    fn a_number_ended_by_the_terminator_is_stored_in_e164() {
        let mut run = Run::start(flow(&number("")));
        run.playback_done();
        run.keys("2015550123#");
        assert_eq!(run.path(), ["ask", "ok"]);
        assert_eq!(run.attr("n"), Some("+12015550123"));
        assert_eq!(run.attr("n_keyed"), Some("2015550123"));
    }

    #[test]
    fn the_first_key_barges_in() {
        let mut run = Run::start(flow(&number("")));
        run.keys("201");
        assert_eq!(run.stops, 1);
        run.keys("5550123#");
        assert_eq!(run.attr("n"), Some("+12015550123"));
    }

    #[test]
    fn the_inter_digit_timeout_ends_the_input() {
        let mut run = Run::start(flow(&number("")));
        run.playback_done();
        run.advance_secs(7);
        run.keys("2015550123");
        assert_eq!(run.timer_in(), Some(Duration::from_secs(3)));
        run.advance_secs(3);
        assert_eq!(run.path(), ["ask", "ok"], "no terminator needed");
    }

    #[test]
    fn max_digits_ends_the_input() {
        let text = number("").replace("max_digits = 15", "max_digits = 10");
        let mut run = Run::start(flow(&text));
        run.playback_done();
        run.keys("2015550123");
        assert_eq!(run.path(), ["ask", "ok"]);
    }

    #[test]
    fn silence_is_a_timeout_and_a_bare_terminator_is_invalid() {
        let mut run = Run::start(flow(&number("")));
        run.playback_done();
        run.advance_secs(8);
        assert_eq!(run.path(), ["ask", "timeout"]);
        let mut run = Run::start(flow(&number("")));
        run.playback_done();
        run.key('#');
        assert_eq!(run.path(), ["ask", "invalid"]);
    }

    #[test]
    fn numbers_that_are_not_valid_take_the_invalid_branch() {
        for keyed in ["5551234#", "911#", "00000000000#", "1234567890123#"] {
            let mut run = Run::start(flow(&number("")));
            run.playback_done();
            run.keys(keyed);
            assert_eq!(run.path(), ["ask", "invalid"], "{keyed}");
            assert_eq!(run.attr("n"), None);
        }
    }

    #[test]
    fn letters_and_star_are_not_digits() {
        let mut run = Run::start(flow(&number("")));
        run.playback_done();
        run.keys("20A15*550B123#");
        assert_eq!(run.attr("n"), Some("+12015550123"));
    }

    #[test]
    fn digits_mode_stores_the_keys_as_typed() {
        let text = number("")
            .replace("mode = \"phone_number\"", "mode = \"digits\"")
            .replace("format = \"local\"\ncountry = \"US\"\n", "");
        let mut run = Run::start(flow(&text));
        run.playback_done();
        run.keys("0042#");
        assert_eq!(run.attr("n"), Some("0042"));
    }

    #[test]
    fn no_prompt_waits_for_the_first_key_from_the_start() {
        let text = number("").replace("prompts = [\"enter_number\"]", "prompts = []");
        let mut run = Run::start(flow(&text));
        assert_eq!(run.timer_in(), Some(Duration::from_secs(8)));
        run.advance_secs(8);
        assert_eq!(run.path(), ["ask", "timeout"]);
    }
}
