//! Running SIPp scenarios from `sipp-scenarios/` against a gateway.

use super::{free_udp_port, repo_root};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

/// Whether sipp can be run. With `CI=true` a missing sipp is a failure,
/// never a silent skip.
pub fn available() -> bool {
    let found = Command::new("sipp").arg("-v").output().is_ok();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("sipp is not installed but CI=true: install the sip-tester package");
    }
    if !found {
        eprintln!("SKIPPED: sipp not installed (apt-get install sip-tester)");
    }
    found
}

pub struct SippRun {
    pub code: i32,
    pub stdout: String,
    pub errors: String,
    pub messages: String,
}

impl SippRun {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Runs `sipp -sf sipp-scenarios/<scenario> <target> <args>` bounded in
/// time, with message and error traces captured.
pub fn run(scenario: &str, target: SocketAddr, args: &[&str]) -> SippRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let err_file = dir.path().join("errors.log");
    let msg_file = dir.path().join("messages.log");
    let port = free_udp_port().to_string();
    let out = Command::new("timeout")
        .arg("120")
        .arg("sipp")
        .arg("-sf")
        .arg(repo_root().join("sipp-scenarios").join(scenario))
        .arg(target.to_string())
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
        ])
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&err_file)
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(&msg_file)
        .args(args)
        .current_dir(repo_root().join("sipp-scenarios"))
        .output()
        .expect("run sipp");
    std::thread::sleep(Duration::from_millis(10));
    SippRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        errors: std::fs::read_to_string(&err_file).unwrap_or_default(),
        messages: std::fs::read_to_string(&msg_file).unwrap_or_default(),
    }
}
