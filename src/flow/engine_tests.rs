//! The engine as a whole: the shipped flows run by a scripted caller, the
//! step budget, whispers, wall time derived from the fake clock.

use super::*;
use crate::flow::blocks::testkit::{FakeEnv, Run, flow, flow_named};
use std::time::Duration;

fn shipped(name: &str) -> Arc<Flow> {
    let path = format!("{}/config/flows/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("shipped flow");
    flow_named(name, &text)
}

fn shipped_env() -> FakeEnv {
    let mut env = FakeEnv::default();
    env.flows
        .insert("callback_request".into(), shipped("callback_request"));
    env
}

#[test]
fn the_example_flow_press_1_key_a_number_confirm_callback() {
    let mut run = Run::start_env(shipped("main"), shipped_env(), Mode::Call, |_| {});
    assert_eq!(run.played(), ["welcome"]);
    run.playback_done();
    assert_eq!(run.played(), ["callback_offer"]);
    run.key('1');
    run.playback_done(); // "enter your number"
    run.keys("2015550123#");
    // Read back digit by digit, then "press 1 to confirm".
    let read_back = run.played();
    assert_eq!(read_back.first().map(String::as_str), Some("you_entered"));
    assert_eq!(read_back.len(), 12, "{read_back:?}");
    assert_eq!(read_back[1], "digit_2");
    run.key('1');
    let req = run.callbacks.first().expect("callback requested").clone();
    assert_eq!(req.number, "+12015550123");
    assert_eq!(req.queue, "callbacks");
    assert_eq!(req.initial_delay, Duration::from_secs(99));
    assert_eq!(
        (req.max_retries, req.retry_interval),
        (2, Duration::from_secs(600))
    );
    run.callback_result(Ok("cb"));
    assert_eq!(run.played(), ["callback_confirmed"]);
    run.playback_done();
    assert!(run.hung_up());
}

#[test]
fn the_example_flow_press_2_waits_in_the_queue() {
    let mut run = Run::start_env(shipped("main"), shipped_env(), Mode::Call, |_| {});
    run.playback_done();
    run.key('2');
    assert_eq!(
        run.outcome(),
        Some(&Outcome::Queued {
            queue: "support".into()
        })
    );
}

#[test]
fn the_example_flow_reprompts_on_silence_then_ends_politely() {
    let mut run = Run::start_env(shipped("main"), shipped_env(), Mode::Call, |_| {});
    run.playback_done();
    for _ in 0..10 {
        if run.outcome().is_some() {
            break;
        }
        run.playback_done();
        run.advance_secs(60);
    }
    assert!(run.hung_up(), "ended: {:?}", run.path());
    assert!(run.callbacks.is_empty());
}

#[test]
fn the_step_budget_ends_a_runaway_flow() {
    // Loops count, so this is a legal flow that still runs 200 × 5 blocks.
    let mut text = String::from("start = \"l0\"\n");
    for i in 0..200 {
        text.push_str(&format!(
            "[blocks.l{i}]\ntype = \"loop\"\ncount = 5\nbody = \"l{}\"\ndone = \"end\"\n",
            (i + 1) % 200
        ));
    }
    text.push_str("[blocks.end]\ntype = \"disconnect\"\n");
    let run = Run::start(flow(&text));
    assert_eq!(run.outcome(), Some(&Outcome::StepLimit));
    assert_eq!(run.path().len(), MAX_STEPS);
    assert_eq!(run.hangups, 1);
}

#[test]
fn a_whisper_speaks_the_wait_from_the_fed_clock() {
    let whisper = flow(
        "type = \"agent_whisper\"\nstart = \"w\"\n[blocks.w]\ntype = \"play_prompt\"\nprompts = [\"agent_whisper_callback\", \"number:wait_minutes\", \"minutes\"]\nnext = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n",
    );
    let mut run = Run::start_env(whisper, FakeEnv::default(), Mode::Whisper, |_| {});
    // The contact started at the engine's wall anchor: 0 minutes.
    assert_eq!(
        run.played(),
        ["agent_whisper_callback", "digit_0", "minutes"]
    );
    run.playback_done();
    assert_eq!(run.outcome(), Some(&Outcome::Finished));
    assert_eq!(run.hangups, 0);
    let whisper = flow(
        "type = \"agent_whisper\"\nstart = \"w\"\n[blocks.w]\ntype = \"play_prompt\"\nprompts = [\"number:wait_minutes\"]\nnext = \"again\"\n[blocks.again]\ntype = \"loop\"\ncount = 1\nbody = \"w\"\ndone = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n",
    );
    let mut run = Run::start_env(whisper, FakeEnv::default(), Mode::Whisper, |c| {
        c.initial_start -= Duration::from_secs(12 * 60 + 30);
    });
    assert_eq!(run.played(), ["number_12"]);
    run.advance_secs(45 * 60);
    run.playback_done();
    assert_eq!(run.played(), ["number_50", "number_7"], "57 minutes later");
}

#[test]
fn keys_and_timers_after_the_end_change_nothing() {
    let mut run = Run::start(flow(
        "start = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n",
    ));
    run.keys("123");
    run.playback_done();
    run.advance_secs(100);
    assert!(run.hung_up());
    assert_eq!(run.path(), ["end"]);
}
