//! Transfer to flow: continues in another flow (of the same type), e.g. a
//! shared "callback request" flow used by the inbound and the queue flow.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferToFlow {
    pub flow: String,
}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{FakeEnv, Run, flow, flow_named};
    use crate::flow::engine::{MAX_STEPS, Mode, Outcome};

    #[test]
    fn continues_in_the_other_flow_with_the_same_contact() {
        let mut env = FakeEnv::default();
        env.flows.insert(
            "shared".into(),
            flow_named(
                "shared",
                "start = \"s\"\n[blocks.s]\ntype = \"set_contact_attributes\"\nattributes = { via = \"shared\" }\nnext = \"bye\"\n[blocks.bye]\ntype = \"disconnect\"\n",
            ),
        );
        let main = flow(
            "start = \"a\"\n[blocks.a]\ntype = \"set_contact_attributes\"\nattributes = { from = \"main\" }\nnext = \"go\"\n[blocks.go]\ntype = \"transfer_to_flow\"\nflow = \"shared\"\n",
        );
        let run = Run::start_env(main, env, Mode::Call, |_| {});
        assert_eq!(run.path(), ["a", "go", "s", "bye"]);
        assert_eq!(run.attr("from"), Some("main"));
        assert_eq!(run.attr("via"), Some("shared"));
        assert!(run.hung_up());
    }

    #[test]
    fn an_unknown_flow_ends_the_call() {
        let run = Run::start(flow(
            "start = \"go\"\n[blocks.go]\ntype = \"transfer_to_flow\"\nflow = \"nowhere\"\n",
        ));
        assert_eq!(run.outcome(), Some(&Outcome::Disconnected));
        assert_eq!(run.hangups, 1);
    }

    #[test]
    fn flows_transferring_to_each_other_stop_at_the_depth_limit() {
        let mut env = FakeEnv::default();
        let ping = "start = \"go\"\n[blocks.go]\ntype = \"transfer_to_flow\"\nflow = \"ping\"\n";
        env.flows.insert("ping".into(), flow_named("ping", ping));
        let run = Run::start_env(flow(ping), env, Mode::Call, |_| {});
        assert_eq!(run.outcome(), Some(&Outcome::Disconnected));
        assert!(run.path().len() < MAX_STEPS);
        assert_eq!(run.hangups, 1);
    }
}
