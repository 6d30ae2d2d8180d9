//! Shared test harness: starts the real callgate binary on loopback with a
//! throw-away config and data directory, runs SIPp, and provides a small
//! SIP user agent.
#![allow(dead_code)]

pub mod agent;
pub mod baresip;
pub mod browser;
pub mod caller;
pub mod capture;
pub mod centre;
pub mod greetings;
pub mod http;
pub mod kamailio;
pub mod linphone;
pub mod netns;
pub mod postgres;
pub mod prom;
pub mod rtp;
pub mod sipp;
pub mod tcp;
pub mod tools;
pub mod trunk;
pub mod ua;
pub mod wire;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The torture and fuzz corpus (a copy of the shared corpus, with its
/// provenance README and licences).
pub fn corpus_dir() -> PathBuf {
    repo_root().join("tests/corpus")
}

/// `[sip]`, `[rtp]`, `[http]` and `[data]` for a test instance, plus two
/// agents. Tests append further sections.
pub fn base_config(data_dir: &Path) -> String {
    format!(
        r#"
[sip]
listen = ["127.0.0.1:0"]
t1_ms = 500

[rtp]
port_min = 40000
port_max = 49999
address = "127.0.0.1"

[http]
listen = "127.0.0.1:0"
token = "test-token"

[data]
dir = "{}"

[[agents]]
user = "alice"
secret = "alice-secret"

[[agents]]
user = "bob"
secret = "bob-secret"
"#,
        data_dir.display()
    )
}

pub struct Gateway {
    child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// Every address of the ready line (IPv4 and IPv6 listeners).
    pub udp_all: Vec<SocketAddr>,
    pub tcp_all: Vec<SocketAddr>,
    pub http: Option<SocketAddr>,
    logs: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Gateway {
    /// Starts callgate with the base config plus `extra` TOML.
    pub fn start(extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!("{}\n{}", base_config(&dir.path().join("data")), extra);
        Self::start_with_config(dir, &text)
    }

    /// Like `start`, with text of the base config replaced (to change a
    /// key of a section the base already has).
    pub fn start_patched(from: &str, to: &str, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = base_config(&dir.path().join("data")).replace(from, to);
        Self::start_with_config(dir, &format!("{text}\n{extra}"))
    }

    /// Like `start`, with `[sip] listen` replaced.
    pub fn start_listening(listen: &str, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = base_config(&dir.path().join("data"))
            .replace("listen = [\"127.0.0.1:0\"]", &format!("listen = {listen}"));
        Self::start_with_config(dir, &format!("{text}\n{extra}"))
    }

    /// The shipped `config/callgate.toml`, verbatim, with only what
    /// side-by-side instances need overridden on the command line (free
    /// SIP and HTTP ports, a throw-away data directory), as the README
    /// runs it. API token `change-me`.
    pub fn start_shipped() -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = std::fs::read_to_string(repo_root().join("config/callgate.toml"))
            .expect("config/callgate.toml");
        let data = dir.path().join("data");
        let data = data.to_string_lossy().to_string();
        Self::launch(
            dir,
            &text,
            &[],
            &[
                "--sip-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--data-dir",
                &data,
            ],
            None,
        )
    }

    pub fn start_with_config(dir: tempfile::TempDir, text: &str) -> Gateway {
        Self::launch(dir, text, &[], &[], None)
    }

    /// Like `start_with_config`, run through `wrapper` (e.g. `ip netns
    /// exec NAME`, see `netns::Netns::wrapper`).
    pub fn start_with_config_via(
        dir: tempfile::TempDir,
        text: &str,
        wrapper: &[String],
    ) -> Gateway {
        Self::launch(dir, text, wrapper, &[], None)
    }

    /// Like `start_with_config`, with extra command-line arguments.
    pub fn start_with_args(dir: tempfile::TempDir, text: &str, args: &[&str]) -> Gateway {
        Self::launch(dir, text, &[], args, None)
    }

    /// Like `start_with_config`, with the child's RLIMIT_NOFILE soft limit
    /// lowered to `soft_nofile` before it starts (callgate raises it).
    pub fn start_with_nofile(
        dir: tempfile::TempDir,
        text: &str,
        soft_nofile: Option<u64>,
    ) -> Gateway {
        Self::launch(dir, text, &[], &[], soft_nofile)
    }

    fn launch(
        dir: tempfile::TempDir,
        text: &str,
        wrapper: &[String],
        args: &[&str],
        soft_nofile: Option<u64>,
    ) -> Gateway {
        let config_path = dir.path().join("callgate.toml");
        std::fs::write(&config_path, text).expect("write config");
        let bin = env!("CARGO_BIN_EXE_callgate");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        if let Some(soft) = soft_nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure only calls getrlimit/setrlimit, which are
            // async-signal-safe, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let mut lim = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                        lim.rlim_cur = soft.min(lim.rlim_max);
                        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info,callgate=debug")
            .current_dir(repo_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn callgate");
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if std::env::var_os("CALLGATE_TEST_ECHO").is_some() {
                        eprintln!("[callgate] {line}");
                    }
                    if let Ok(mut l) = logs.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "callgate did not print its ready line; logs:\n{}",
                    logs.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        let field = |name: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in ready line {ready:?}"))
        };
        let all = |name: &str| -> Vec<SocketAddr> {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(|v| v.split(',').filter_map(|a| a.parse().ok()).collect())
                .unwrap_or_default()
        };
        Gateway {
            udp: field("sip_udp"),
            tcp: field("sip_tcp"),
            udp_all: all("sip_udp"),
            http: all("http").first().copied(),
            tcp_all: all("sip_tcp"),
            child,
            logs,
            dir,
            config_path,
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a log line contains every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .logs()
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM: a graceful shutdown.
    pub fn sigterm(&mut self) {
        // SAFETY: kill(2) with a pid we spawned; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// The exit code once the process ends, or `None` after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `tool` may open raw sockets (SIPp's pcap playback, tcpdump):
/// running as root, or the binary carries CAP_NET_RAW. Under `CI=true`
/// a missing privilege is a failure, otherwise the test is skipped.
pub fn raw_sockets(tool: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let path = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let caps = std::process::Command::new("getcap")
        .arg(&path)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if caps.contains("cap_net_raw") {
        return true;
    }
    let msg = format!(
        "{tool} needs raw sockets: run the tests as root or `sudo setcap cap_net_raw,cap_net_admin+eip {path}`"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// An even UDP port (RTP) that was free a moment ago, with the odd one
/// above it free too.
pub fn even_udp_port() -> u16 {
    loop {
        let p = free_udp_port();
        if p.is_multiple_of(2)
            && p < 60000
            && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

/// A UDP port that was free a moment ago (for SIPp's `-p`).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
