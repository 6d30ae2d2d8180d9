//! A bounded fuzz run: every cargo-fuzz target in `fuzz/` (SIP datagram,
//! stream framing and endpoint, SDP, RTP/RFC 4733, flow loader) runs for
//! a few seconds from its seeds; any crash, panic or failed property
//! fails the test. The long runs are described in `fuzz/README.md`.
//!
//! The targets build in the dev profile, coverage-instrumented (callgate's
//! own code) and sharing the test build's dependencies (`fuzz/run`), so
//! the build costs about a minute on top of the tests', and no cargo-fuzz
//! or nightly toolchain is needed.

mod common;

use std::process::Command;
use std::time::Instant;

const SECONDS_PER_TARGET: u64 = 5;

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// libFuzzer's `stat::NAME: VALUE` line.
fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn every_fuzz_target_runs_clean_for_a_few_seconds() {
    let script = common::repo_root().join("fuzz/run");
    let started = Instant::now();
    let build = Command::new(&script)
        .arg("build")
        .env("FUZZ_PROFILE", "dev")
        .output()
        .expect("run fuzz/run build");
    assert!(
        build.status.success(),
        "building the fuzz targets failed:\n{}",
        tail(&String::from_utf8_lossy(&build.stderr), 40)
    );
    eprintln!("fuzz targets built in {:.1?}", started.elapsed());
    let list = Command::new(&script).arg("list").output().expect("list");
    let targets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(targets.len() >= 6, "targets: {targets:?}");
    let mut failures = Vec::new();
    for target in &targets {
        // New inputs go to a scratch directory, not the local corpus.
        let corpus = tempfile::tempdir().expect("tempdir");
        let run_started = Instant::now();
        let out = Command::new(&script)
            .args([target.as_str(), &SECONDS_PER_TARGET.to_string()])
            .env("FUZZ_PROFILE", "dev")
            .env("FUZZ_CORPUS", corpus.path())
            .output()
            .expect("run a fuzz target");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let execs = stat(&stderr, "number_of_executed_units");
        eprintln!(
            "{target}: {} executions in {:.1?}",
            execs.map_or("?".into(), |n| n.to_string()),
            run_started.elapsed()
        );
        if !out.status.success() || execs.unwrap_or(0) == 0 {
            failures.push(format!("{target}:\n{}", tail(&stderr, 40)));
        }
    }
    eprintln!("fuzz smoke run took {:.1?} in all", started.elapsed());
    assert!(
        failures.is_empty(),
        "fuzz targets failed (inputs in fuzz/artifacts/):\n{}",
        failures.join("\n\n")
    );
}
