//! Position and estimated wait through the real binary: three callers
//! waiting in one queue each hear their own place in line and wait,
//! decoded from the RTP callgate sends them; once an agent has taken a
//! contact, the estimate follows the measured time-to-agent, in the API,
//! the metrics and what the callers hear.

mod common;

use callgate::media::g711::Law;
use common::agent::{Agent, Answer};
use common::caller::Caller;
use common::centre::{Opts, start_opts};
use common::http::{get_json, request};
use common::rtp::{best_correlation, decode, read_wav};
use common::{Gateway, repo_root};
use std::time::Duration;

const TRUNK: &str = "127.0.0.1:5998";

/// Callers to 3001 wait in `support`, whose waiting callers hear their
/// position and wait, then a moment of quiet, again and again.
fn gateway() -> Gateway {
    let to_support = "type = \"inbound\"\nstart = \"q\"\n[blocks.q]\ntype = \"transfer_to_queue\"\nmode = \"voice\"\nqueue = \"support\"\non_at_capacity = \"end\"\n[blocks.end]\ntype = \"disconnect\"\n";
    let announce = r#"
type = "customer_queue"
start = "where"
[blocks.where]
type = "announce_position"
next = "pause"
[blocks.pause]
type = "get_input"
prompts = ["minute"]
timeout_s = 3
conditions = { "9" = "where" }
on_timeout = "where"
on_no_match = "where"
"#;
    start_opts(
        Some(&[("to_support", to_support), ("announce", announce)]),
        TRUNK,
        "[[numbers]]\nnumber = \"3001\"\nflow = \"to_support\"\n",
        &Opts {
            // 8 minutes a place until an agent has answered someone: the
            // three callers' waits are 8, 16 and 24 minutes.
            support: "customer_queue_flow = \"announce\"\nwait_cold_start_s = 480",
            // The callers send no RTP (they only listen): on a loaded
            // machine the test outlasts the default RTP timeout.
            rtp: "timeout_s = 600",
            ..Opts::default()
        },
    )
}

fn prompt(name: &str) -> Vec<i16> {
    read_wav(&repo_root().join(format!("prompts/{name}.wav")))
}

/// Where `name` is heard in `audio` (after `from`), if it is.
fn heard_at(audio: &[i16], from: usize, name: &str) -> Option<usize> {
    let hay = audio.get(from..)?;
    let (c, at) = best_correlation(hay, &prompt(name));
    (c > 0.9).then_some(from + at)
}

/// The prompts spoken between `before` and `after`: of `candidates`, the
/// one that matches there best (above 0.9).
fn said_between<'a>(
    audio: &[i16],
    before: &str,
    after: &str,
    candidates: &[&'a str],
) -> Option<&'a str> {
    let start = heard_at(audio, 0, before)? + prompt(before).len();
    let end = heard_at(audio, start, after)?;
    let slot = &audio[start..end];
    candidates
        .iter()
        .map(|c| (best_correlation(slot, &prompt(c)).0, *c))
        .filter(|(corr, _)| *corr > 0.9)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn listen(c: &Caller, secs: u64) -> Vec<i16> {
    decode(&c.rtp.receive(Duration::from_secs(secs)), 0, Law::Ulaw)
}

fn support(gw: &Gateway) -> serde_json::Value {
    get_json(gw.http.unwrap(), "/api/queues")
        .as_array()
        .and_then(|a| a.iter().find(|q| q["name"] == "support").cloned())
        .expect("support queue")
}

const POSITIONS: [&str; 3] = ["number_1", "number_2", "number_3"];

#[test]
fn three_waiting_callers_hear_their_position_and_wait() {
    let gw = gateway();
    let mut callers = Vec::new();
    let waits: [&[&str]; 3] = [&["number_8"], &["number_16"], &["number_20", "number_4"]];
    for (i, wait) in waits.iter().enumerate() {
        let c = Caller::dial(&gw, "3001");
        // The first announcement starts at once; it lasts about 5 s.
        let audio = listen(&c, 7);
        assert_eq!(
            said_between(&audio, "position_you_are", "position_in_line", &POSITIONS),
            Some(POSITIONS[i]),
            "caller {} hears their place",
            i + 1
        );
        // "Your expected wait is about <n> minutes", n = place × 8.
        let start = heard_at(&audio, 0, "wait_about").expect("wait announced");
        let mut at = start + prompt("wait_about").len();
        for word in wait.iter().chain(&["minutes"]) {
            at = heard_at(&audio, at, word)
                .unwrap_or_else(|| panic!("caller {}: {word} after the last word", i + 1));
        }
        assert!(
            at - start < 8000 * 3,
            "caller {}: the wait is one phrase",
            i + 1
        );
        callers.push(c);
    }
    let q = support(&gw);
    assert_eq!(q["calls_waiting"], 3, "{q}");
    assert_eq!(q["wait_samples"], 0, "cold: {q}");
    assert_eq!(
        q["estimated_wait_s"],
        4 * 480,
        "a fourth caller would wait 32 minutes: {q}"
    );

    // An agent takes the first caller: the estimate now comes from that
    // caller's measured time-to-agent (per place in line), not the cold
    // start.
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let offer = alice
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("offer");
    assert!(common::centre::eventually(Duration::from_secs(5), || {
        support(&gw)["wait_samples"] == 1
    }));
    let q = support(&gw);
    let per_place = q["wait_per_place_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("warm: {q}"));
    assert!(per_place > 0.0 && per_place < 480.0, "{q}");
    assert_eq!(q["calls_waiting"], 2, "{q}");
    assert_eq!(
        q["estimated_wait_s"].as_u64(),
        Some((per_place * 3.0).round() as u64),
        "a new caller would be third: {q}"
    );
    let (status, metrics) = request(
        gw.http.unwrap(),
        "GET",
        "/metrics",
        Some("test-token"),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        metrics.contains(&format!(
            "callgate_queue_estimated_wait_seconds{{queue=\"support\"}} {}",
            q["estimated_wait_s"]
        )),
        "{metrics}"
    );
    assert!(metrics.contains("callgate_queue_wait_per_place_seconds{queue=\"support\"}"));

    // The third caller moves up: their next announcement says second, and
    // the wait is the measured one (under a minute a place here: "about
    // one minute").
    let third = &callers[2];
    let _ = listen(third, 10);
    let audio = listen(third, 10);
    assert_eq!(
        said_between(&audio, "position_you_are", "position_in_line", &POSITIONS),
        Some("number_2"),
        "the third caller is now second"
    );
    let expected_minutes = (((per_place * 2.0).round() as u64 + 30) / 60).max(1);
    let word = format!("number_{expected_minutes}");
    let start = heard_at(&audio, 0, "wait_about").expect("wait announced");
    assert!(
        heard_at(&audio, start, &word).is_some(),
        "about {expected_minutes} minute(s), per place {per_place} s"
    );
    drop(offer);
}
