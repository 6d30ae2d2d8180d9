//! Set contact attributes: key/value pairs stored with the contact (and
//! its callback and records).

use super::{Cx, Step};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetContactAttributes {
    pub attributes: BTreeMap<String, String>,
    pub next: String,
}

impl SetContactAttributes {
    pub(super) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        for (k, v) in &self.attributes {
            cx.contact.attributes.insert(k.clone(), v.clone());
        }
        Step::Next(self.next.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{Run, flow};

    #[test]
    fn stores_every_attribute_overwriting_old_values() {
        let run = Run::start_with(
            flow(
                "start = \"a\"\n[blocks.a]\ntype = \"set_contact_attributes\"\nattributes = { tier = \"gold\", lang = \"en\" }\nnext = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n",
            ),
            |c| {
                c.attributes.insert("tier".into(), "silver".into());
            },
        );
        assert_eq!(run.attr("tier"), Some("gold"));
        assert_eq!(run.attr("lang"), Some("en"));
        assert_eq!(run.path(), ["a", "end"]);
    }
}
