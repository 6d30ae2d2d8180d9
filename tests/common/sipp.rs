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

/// sipp is installed and may play pcaps (raw sockets).
pub fn available_with_pcap() -> bool {
    available() && super::raw_sockets("sipp")
}

/// A SIPp caller through the shipped example flow: presses 1 after the
/// welcome, keys 2015550123#, confirms with 1, expects the gateway's BYE.
pub fn callback_caller(target: SocketAddr, number: &str) -> SippRun {
    run(
        "caller_callback.xml",
        target,
        &[
            "-s",
            number,
            "-m",
            "1",
            "-recv_timeout",
            "15000",
            "-set",
            "greet",
            "4500",
            "-set",
            "prompt",
            "1500",
            "-set",
            "gap",
            "300",
            "-set",
            "confirm",
            "2500",
            "-set",
            "wait",
            "15000",
        ],
    )
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

/// A SIPp instance running in the background (a UAS, or a UAC that must
/// outlive the code that started it).
pub struct Background {
    child: std::process::Child,
    pub messages: std::path::PathBuf,
    pub errors: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Background {
    /// Starts `sipp -sf <scenario> [target] -p <port> <args>`.
    pub fn start(
        scenario: &str,
        target: Option<SocketAddr>,
        port: u16,
        args: &[&str],
    ) -> Background {
        let dir = tempfile::tempdir().expect("tempdir");
        let messages = dir.path().join("messages.log");
        let errors = dir.path().join("errors.log");
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(repo_root().join("sipp-scenarios").join(scenario));
        if let Some(t) = target {
            cmd.arg(t.to_string());
        }
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
            "-trace_err",
            "-trace_msg",
        ])
        .arg("-message_file")
        .arg(&messages)
        .arg("-error_file")
        .arg(&errors)
        .args(args)
        .current_dir(repo_root().join("sipp-scenarios"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        let child = cmd.spawn().expect("spawn sipp");
        Background {
            child,
            messages,
            errors,
            _dir: dir,
        }
    }

    pub fn messages(&self) -> String {
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// Waits for the exit status (None if still running at the deadline).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s.code().unwrap_or(-1));
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Received requests of `method` in the message trace, with the trace's
    /// timestamp (seconds) of each.
    pub fn received(&self, method: &str) -> Vec<(f64, String)> {
        let text = self.messages();
        let mut out = Vec::new();
        let mut stamp = 0.0;
        let mut blocks = text.split("----------------------------------------------- ");
        let _ = blocks.next();
        for b in blocks {
            let mut lines = b.lines();
            if let Some(first) = lines.next() {
                // "2026-11-25 23:41:38.155681"
                if let Some(t) = first.split_whitespace().nth(1) {
                    let parts: Vec<f64> = t.split(':').filter_map(|x| x.parse().ok()).collect();
                    if parts.len() == 3 {
                        stamp = parts[0] * 3600.0 + parts[1] * 60.0 + parts[2];
                    }
                }
            }
            let body: Vec<&str> = lines.collect();
            if body.first().is_some_and(|l| l.contains("message received")) {
                let msg = body.iter().skip(2).copied().collect::<Vec<_>>().join("\n");
                if msg.starts_with(&format!("{method} ")) {
                    out.push((stamp, msg));
                }
            }
        }
        out
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent side with SIPp: the answering instance's port is registered
/// first (by the test UA, from that very port, since callgate sends offers
/// back to the address a REGISTER came from), then SIPp takes the port
/// over and answers offers.
pub struct SippAgent {
    pub answer: Background,
    pub media_port: u16,
}

pub fn sipp_agent(gw: &super::Gateway, offers: usize, talk_ms: u64) -> SippAgent {
    sipp_agent_on(gw, offers, talk_ms, super::even_udp_port(), 0)
}

/// Registers `user` from 127.0.0.1:`port` (Contact at that port) for
/// `expires` seconds and frees the port again.
pub fn register_from_port(gw: &super::Gateway, port: u16, user: &str, secret: &str, expires: u32) {
    let mut ua = super::ua::Ua::udp_from(&format!("127.0.0.1:{port}"), gw.udp);
    let mut reg = super::ua::Registration::new(&mut ua, user, secret);
    let r = reg.register(&mut ua, expires).expect("REGISTER answered");
    assert_eq!(r.status, 200, "{user} registers from port {port}");
}

pub fn sipp_agent_on(
    gw: &super::Gateway,
    offers: usize,
    talk_ms: u64,
    media_port: u16,
    speak_after_ms: u64,
) -> SippAgent {
    let answer_port = super::free_udp_port();
    register_from_port(gw, answer_port, "alice", "alice-secret", 300);
    // An offer sent before SIPp binds the port is retransmitted (Timer A).
    let answer = Background::start(
        "agent_answer.xml",
        None,
        answer_port,
        &[
            "-m",
            &offers.to_string(),
            "-mp",
            &media_port.to_string(),
            "-set",
            "ring",
            "200",
            "-set",
            "talk",
            &talk_ms.to_string(),
            "-set",
            "speak_after",
            &speak_after_ms.to_string(),
        ],
    );
    assert!(
        gw.wait_for_log(
            &["binding added", "agent=alice", &format!(":{answer_port}")],
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    SippAgent { answer, media_port }
}
