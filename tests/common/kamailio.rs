//! Kamailio (Debian `kamailio`, 5.6) as an edge proxy in front of callgate,
//! running the shipped `contrib/kamailio/callgate-edge.cfg` verbatim.
//!
//! How it is driven:
//! - `kamailio -f callgate-edge.cfg -DD -E`: no daemonizing (the creator
//!   stays in the foreground, its workers are its children), logs on
//!   stderr (captured), in its own process group so drop can end the
//!   workers too; `-Y` runtime dir and `-P` pid file in a temp dir; small
//!   shared/private memory (`-m 32 -M 4`); `timeout` ends it even if the
//!   test process dies;
//! - listens on UDP and TCP on one free loopback port (`-l`), and is told
//!   where callgate is with defines (`-A 'CALLGATE_URI="sip:…"'`,
//!   `-A 'CALLGATE_IP="127.0.0.1"'`, optionally `CALLGATE_TCP_URI`);
//! - ready once it answers an OPTIONS addressed to itself with 200 (the
//!   config's keep-alive branch) and accepts a TCP connection.

use super::tools::{self, poll, terminate};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Whether kamailio can be run (see `tools::require`).
pub fn available() -> bool {
    tools::require("kamailio", "kamailio")
}

/// The shipped edge-proxy config.
pub fn edge_config() -> PathBuf {
    super::repo_root().join("contrib/kamailio/callgate-edge.cfg")
}

pub struct Kamailio {
    child: Child,
    logs: Arc<Mutex<String>>,
    /// Where phones send to (UDP and TCP, same port).
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Kamailio {
    /// The edge proxy forwarding to callgate at `callgate` over UDP.
    pub fn edge(callgate: SocketAddr) -> Kamailio {
        Self::start(&edge_config(), &defines(callgate, None))
    }

    /// The edge proxy forwarding requests that came over TCP to callgate
    /// over TCP (`callgate_tcp`), the others over UDP.
    pub fn edge_tcp(callgate: SocketAddr, callgate_tcp: SocketAddr) -> Kamailio {
        Self::start(&edge_config(), &defines(callgate, Some(callgate_tcp)))
    }

    /// Runs `cfg` with `-A` defines, listening on a free port.
    pub fn start(cfg: &std::path::Path, defines: &[String]) -> Kamailio {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = tools::free_udp_tcp_port();
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "600"])
            .arg(tools::find("kamailio").expect("kamailio installed"))
            .arg("-f")
            .arg(cfg)
            .args(["-DD", "-E", "-m", "32", "-M", "4"])
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .arg("-l")
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-l")
            .arg(format!("tcp:127.0.0.1:{port}"));
        for d in defines {
            cmd.arg("-A").arg(d);
        }
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kamailio");
        let logs = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if std::env::var_os("CALLGATE_TEST_ECHO").is_some() {
                        eprintln!("[kamailio] {line}");
                    }
                    if let Ok(mut l) = logs.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let mut k = Kamailio {
            child,
            logs,
            udp: ([127, 0, 0, 1], port).into(),
            tcp: ([127, 0, 0, 1], port).into(),
            dir,
        };
        let ready = poll(Duration::from_secs(20), || {
            if !matches!(k.child.try_wait(), Ok(None)) {
                return Some(false);
            }
            (k.answers_options()
                && TcpStream::connect_timeout(&k.tcp, Duration::from_millis(200)).is_ok())
            .then_some(true)
        });
        if ready != Some(true) {
            let logs = k.logs();
            drop(k);
            panic!("kamailio did not come up; logs:\n{logs}");
        }
        k
    }

    /// Whether an OPTIONS to the proxy itself gets 200.
    fn answers_options(&self) -> bool {
        let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let Ok(local) = sock.local_addr() else {
            return false;
        };
        let msg = format!(
            "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKkready{p}\r\n\
             From: <sip:probe@{local}>;tag=r{p}\r\nTo: <sip:{to}>\r\nCall-ID: ready{p}@test\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            to = self.udp,
            p = local.port(),
        );
        let _ = sock.set_read_timeout(Some(Duration::from_millis(300)));
        if sock.send_to(msg.as_bytes(), self.udp).is_err() {
            return false;
        }
        let mut buf = [0u8; 4096];
        sock.recv(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"SIP/2.0 200"))
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a log line contains every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> bool {
        poll(timeout, || {
            self.logs()
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
                .then_some(())
        })
        .is_some()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5), true);
    }
}

/// `-A` defines pointing the edge config at callgate.
pub fn defines(callgate: SocketAddr, callgate_tcp: Option<SocketAddr>) -> Vec<String> {
    let mut d = vec![
        format!("CALLGATE_URI=\"sip:{callgate}\""),
        format!("CALLGATE_IP=\"{}\"", callgate.ip()),
    ];
    if let Some(t) = callgate_tcp {
        d.push(format!("CALLGATE_TCP_URI=\"sip:{t};transport=tcp\""));
    }
    d
}
