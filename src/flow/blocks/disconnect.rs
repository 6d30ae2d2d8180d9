//! Disconnect: hangs up (in a whisper flow: ends the whisper).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {}

#[cfg(test)]
mod tests {
    use crate::flow::blocks::testkit::{FakeEnv, Run, flow};
    use crate::flow::engine::{Mode, Outcome};

    const FLOW: &str = "start = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n";

    #[test]
    fn hangs_up_a_call() {
        let run = Run::start(flow(FLOW));
        assert!(run.hung_up());
    }

    #[test]
    fn only_ends_a_whisper() {
        let run = Run::start_env(flow(FLOW), FakeEnv::default(), Mode::Whisper, |_| {});
        assert_eq!(run.outcome(), Some(&Outcome::Finished));
        assert_eq!(run.hangups, 0, "the call goes on to the bridge");
    }
}
