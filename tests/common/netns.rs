//! A lossy link between two network namespaces, for tests of SIP and RTP
//! under packet loss (issue 10).
//!
//! How it is built (`ip` from iproute2, as root):
//! - two namespaces `cgt<pid>x<n>a` and `…b` (`ip netns add`), loopback up
//!   in each, joined by a veth pair created straight into them, with
//!   10.213.0.1/24 (side a) and 10.213.0.2/24 (side b). The addresses exist
//!   only inside the namespaces, so parallel labs do not collide;
//! - loss applies to each direction independently: on each veth end,
//!   `tc qdisc add dev … root netem loss P%` (egress) where the kernel has
//!   netem; on kernels built without it (CONFIG_NET_SCH_NETEM unset, as on
//!   the Firecracker VMs here) an nftables rule `numgen random mod 10000
//!   < P*100 counter drop` on the ingress hook of each end: silent for the
//!   sender like a lossy link (a drop on the output hook would fail its
//!   sendto with EPERM). `dropped()` reads the qdisc's or the rule's
//!   counter, so a test can prove loss really happened;
//! - programs run inside with `ip netns exec NAME …` (`Netns::command`),
//!   and sockets can be opened inside from the test itself
//!   (`Netns::udp_socket`: setns(2) on a short-lived thread);
//! - drop kills every process left in the namespaces (ids from `ip netns
//!   pids`: only what the test started can be in them) and deletes both,
//!   which removes the veth pair; it runs on panic too. Labs left by a
//!   test process that was killed are removed by the next `NetLab::new`.
//!
//! Where namespaces cannot be created (no root, a container without
//! CAP_SYS_ADMIN) `new` returns `NetnsError::NotPermitted` and the test
//! skips, saying so, even under CI (issue 10 allows exactly this).

use super::tools;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "cgt";
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);
const IF_A: &str = "cgveth-a";
const IF_B: &str = "cgveth-b";

#[derive(Debug)]
pub enum NetnsError {
    /// The system does not let us create namespaces (not root, no
    /// CAP_SYS_ADMIN): the test may skip even under CI.
    NotPermitted(String),
    /// A program is missing (`ip`, and `tc` or `nft` for loss).
    Missing(String),
    /// Anything else: a real failure.
    Failed(String),
}

impl std::fmt::Display for NetnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetnsError::NotPermitted(m) => write!(f, "network namespaces not permitted: {m}"),
            NetnsError::Missing(m) => write!(f, "missing tool: {m}"),
            NetnsError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl NetnsError {
    /// The suite's rule: `NotPermitted` skips (printed) everywhere; a
    /// missing tool skips outside CI and fails under `CI=true`; anything
    /// else fails.
    pub fn skip_or_panic(self) {
        match self {
            NetnsError::NotPermitted(_) => eprintln!("SKIPPED: {self}"),
            NetnsError::Missing(_) if !tools::under_ci() => eprintln!("SKIPPED: {self}"),
            other => panic!("{other}"),
        }
    }
}

/// How loss is applied on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossMethod {
    Netem,
    Nftables,
}

/// One network namespace of a lab.
#[derive(Debug, Clone)]
pub struct Netns {
    pub name: String,
    pub addr: Ipv4Addr,
    pub interface: &'static str,
}

impl Netns {
    /// `program` to be run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(ip());
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// The prefix that runs a program inside the namespace.
    pub fn wrapper(&self) -> Vec<String> {
        vec![ip(), "netns".into(), "exec".into(), self.name.clone()]
    }

    /// A UDP socket bound inside the namespace (port 0: any free one).
    pub fn udp_socket(&self, port: u16) -> std::io::Result<UdpSocket> {
        let path = format!("/run/netns/{}", self.name);
        let bind = SocketAddr::from((self.addr, port));
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path)?;
            // SAFETY: setns on an open namespace file; it changes only this
            // short-lived thread's network namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            UdpSocket::bind(bind)
        })
        .join()
        .map_err(|_| std::io::Error::other("setns thread panicked"))?
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, NetnsError> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| NetnsError::Missing(format!("{program}: {e}")))?;
        Ok(out)
    }
}

/// Two namespaces joined by a veth pair.
pub struct NetLab {
    pub a: Netns,
    pub b: Netns,
    loss: Option<LossMethod>,
}

impl NetLab {
    pub fn new() -> Result<NetLab, NetnsError> {
        if tools::find("ip").is_none() {
            return Err(NetnsError::Missing("ip (apt-get install iproute2)".into()));
        }
        remove_stale_labs();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}x{n}", std::process::id());
        let lab = NetLab {
            a: Netns {
                name: format!("{base}a"),
                addr: ADDR_A,
                interface: IF_A,
            },
            b: Netns {
                name: format!("{base}b"),
                addr: ADDR_B,
                interface: IF_B,
            },
            loss: None,
        };
        // From here on, drop cleans up whatever was made.
        ip_cmd(&["netns", "add", &lab.a.name]).map_err(classify)?;
        ip_cmd(&["netns", "add", &lab.b.name]).map_err(classify)?;
        ip_cmd(&[
            "link",
            "add",
            IF_A,
            "netns",
            &lab.a.name,
            "type",
            "veth",
            "peer",
            "name",
            IF_B,
            "netns",
            &lab.b.name,
        ])
        .map_err(NetnsError::Failed)?;
        for ns in [&lab.a, &lab.b] {
            let cidr = format!("{}/24", ns.addr);
            for args in [
                vec!["-n", &ns.name, "link", "set", "lo", "up"],
                vec!["-n", &ns.name, "addr", "add", &cidr, "dev", ns.interface],
                vec!["-n", &ns.name, "link", "set", ns.interface, "up"],
            ] {
                ip_cmd(&args).map_err(NetnsError::Failed)?;
            }
        }
        Ok(lab)
    }

    /// Drops `percent` % of the packets crossing the link, in each
    /// direction independently (netem on each end's egress, or nftables
    /// on each end's ingress).
    pub fn set_loss(&mut self, percent: f64) -> Result<LossMethod, NetnsError> {
        let netem = tools::find("tc").is_some() && {
            let loss = format!("{percent}%");
            [&self.a, &self.b].iter().all(|ns| {
                ns.run(
                    "tc",
                    &[
                        "qdisc",
                        "add",
                        "dev",
                        ns.interface,
                        "root",
                        "netem",
                        "loss",
                        &loss,
                    ],
                )
                .is_ok_and(|o| o.status.success())
            })
        };
        if netem {
            self.loss = Some(LossMethod::Netem);
            return Ok(LossMethod::Netem);
        }
        for ns in [&self.a, &self.b] {
            // A half-applied netem (one side) is removed again.
            let _ = ns.run("tc", &["qdisc", "del", "dev", ns.interface, "root"]);
        }
        if tools::find("nft").is_none() {
            return Err(NetnsError::Missing(
                "no netem in this kernel and no nft (apt-get install nftables)".into(),
            ));
        }
        let threshold = (percent * 100.0).round() as u32;
        for ns in [&self.a, &self.b] {
            // On ingress of the veth end, not on output: a packet dropped
            // by an output rule makes the sender's sendto fail with EPERM,
            // which a lossy link never does.
            let rules = format!(
                "table netdev cgloss {{\n chain ingress {{\n  type filter hook ingress device \"{}\" priority 0; policy accept;\n  numgen random mod 10000 < {threshold} counter drop\n }}\n}}\n",
                ns.interface
            );
            let mut child = ns
                .command("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| NetnsError::Missing(format!("nft: {e}")))?;
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                stdin
                    .write_all(rules.as_bytes())
                    .map_err(|e| NetnsError::Failed(format!("nft stdin: {e}")))?;
            }
            let out = child
                .wait_with_output()
                .map_err(|e| NetnsError::Failed(format!("nft: {e}")))?;
            if !out.status.success() {
                return Err(NetnsError::Failed(format!(
                    "nft in {}: {}",
                    ns.name,
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        self.loss = Some(LossMethod::Nftables);
        Ok(LossMethod::Nftables)
    }

    /// Packets dropped by the loss so far (both ends together).
    pub fn dropped(&self) -> u64 {
        [&self.a, &self.b]
            .iter()
            .map(|ns| match self.loss {
                Some(LossMethod::Netem) => ns
                    .run("tc", &["-s", "qdisc", "show", "dev", ns.interface])
                    .map(|o| number_after(&String::from_utf8_lossy(&o.stdout), "dropped "))
                    .unwrap_or(0),
                Some(LossMethod::Nftables) => ns
                    .run("nft", &["list", "table", "netdev", "cgloss"])
                    .map(|o| number_after(&String::from_utf8_lossy(&o.stdout), "counter packets "))
                    .unwrap_or(0),
                None => 0,
            })
            .sum()
    }

    /// Names of both namespaces.
    pub fn names(&self) -> [String; 2] {
        [self.a.name.clone(), self.b.name.clone()]
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for ns in [&self.a.name, &self.b.name] {
            delete_namespace(ns);
        }
    }
}

/// Whether a namespace of that name exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

fn ip() -> String {
    tools::find("ip")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "ip".into())
}

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    let out = Command::new(ip())
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn classify(msg: String) -> NetnsError {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("not permitted") || lower.contains("permission denied") {
        NetnsError::NotPermitted(msg)
    } else {
        NetnsError::Failed(msg)
    }
}

/// Kills what runs in namespace `name` (only our test's processes can be
/// there) and deletes it.
fn delete_namespace(name: &str) {
    if !exists(name) {
        return;
    }
    for _ in 0..3 {
        let pids = Command::new(ip())
            .args(["netns", "pids", name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) on a process inside a namespace this test made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Err(e) = ip_cmd(&["netns", "del", name]) {
        eprintln!("netns cleanup: {e}");
    }
}

/// Removes labs whose creating test process no longer exists.
fn remove_stale_labs() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = lab_owner(&name) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_namespace(&name);
        }
    }
}

/// The pid in a lab namespace name `cgt<pid>x<n>{a,b}`.
fn lab_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let rest = rest.strip_suffix('a').or_else(|| rest.strip_suffix('b'))?;
    let (pid, n) = rest.split_once('x')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn number_after(text: &str, key: &str) -> u64 {
    text.split(key)
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
