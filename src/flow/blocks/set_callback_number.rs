//! Set callback number: the number a callback will dial, from a stored
//! attribute or the caller's own number, accepted only if callgate may
//! dial it (the dial rules: the caller hears the invalid branch, never a
//! callback that is refused later).

use super::{Branches, Cx, Problems, Step};
use crate::flow::model::CallbackNumberSource;
use serde::Deserialize;
use tracing::info;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCallbackNumber {
    #[serde(default)]
    pub source: CallbackNumberSource,
    /// With source = "attribute".
    pub attribute: Option<String>,
    pub next: String,
    pub on_invalid: String,
}

impl SetCallbackNumber {
    pub(super) fn branches<'a>(&'a self, v: &mut Branches<'a>) {
        v.one("next", &self.next);
        v.one("on_invalid", &self.on_invalid);
    }

    pub(super) fn check(&self, p: &mut Problems<'_>) {
        if self.source == CallbackNumberSource::Attribute && self.attribute.is_none() {
            p.block("source = \"attribute\" needs attribute");
        }
    }

    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let number = match self.source {
            CallbackNumberSource::Attribute => self
                .attribute
                .as_deref()
                .and_then(|a| cx.contact.attributes.get(a).cloned()),
            CallbackNumberSource::CallerNumber => cx.contact.caller_number.clone(),
        };
        let Some(number) = number else {
            info!(block = %cx.block, "no number to call back");
            return Step::Next(self.on_invalid.clone());
        };
        match cx.env.dial_rules().check(&number) {
            Ok(()) => {
                info!(number = %number, "callback number set");
                cx.contact.callback_number = Some(number);
                Step::Next(self.next.clone())
            }
            Err(e) => {
                info!(reason = %e, "callback number refused");
                Step::Next(self.on_invalid.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{FakeEnv, Run, flow};
    use crate::flow::engine::Mode;
    use crate::phone::DialRules;

    fn set(source: &str) -> String {
        format!(
            r#"
start = "set"
[blocks.set]
type = "set_callback_number"
{source}
next = "ok"
on_invalid = "invalid"
[blocks.ok]
type = "disconnect"
[blocks.invalid]
type = "disconnect"
"#
        )
    }

    fn rules() -> FakeEnv {
        FakeEnv {
            rules: DialRules {
                allowed_prefixes: vec!["+1".into()],
                blocked_prefixes: vec!["+1900".into()],
                ..DialRules::default()
            },
            ..FakeEnv::default()
        }
    }

    #[test]
    fn from_an_attribute_that_passes_the_dial_rules() {
        let f = flow(&set("source = \"attribute\"\nattribute = \"n\""));
        let run = Run::start_env(f, rules(), Mode::Call, |c| {
            c.attributes.insert("n".into(), "+12015550123".into());
        });
        assert_eq!(run.path(), ["set", "ok"]);
        assert_eq!(
            run.contact().callback_number.as_deref(),
            Some("+12015550123")
        );
    }

    #[test]
    fn numbers_the_rules_refuse_are_invalid() {
        for n in ["+19005550123", "+442079460000", "2015550123", ""] {
            let f = flow(&set("source = \"attribute\"\nattribute = \"n\""));
            let run = Run::start_env(f, rules(), Mode::Call, |c| {
                c.attributes.insert("n".into(), n.into());
            });
            assert_eq!(run.path(), ["set", "invalid"], "{n:?}");
            assert_eq!(run.contact().callback_number, None);
        }
    }

    #[test]
    fn a_missing_attribute_is_invalid() {
        let f = flow(&set("source = \"attribute\"\nattribute = \"n\""));
        let run = Run::start_env(f, rules(), Mode::Call, |_| {});
        assert_eq!(run.path(), ["set", "invalid"]);
    }

    #[test]
    fn from_the_callers_own_number() {
        let f = flow(&set("source = \"caller_number\""));
        let run = Run::start_env(f.clone(), rules(), Mode::Call, |_| {});
        assert_eq!(
            run.contact().callback_number.as_deref(),
            Some("+12015550100")
        );
        let run = Run::start_env(f, rules(), Mode::Call, |c| c.caller_number = None);
        assert_eq!(run.path(), ["set", "invalid"], "anonymous caller");
    }
}
