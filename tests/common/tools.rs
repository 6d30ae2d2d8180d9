//! Finding the external programs real-peer tests drive (softphones,
//! proxies, network tools), with the suite's rule for missing ones: under
//! `CI=true` a missing program fails the test, otherwise the test is
//! skipped with a printed notice.

use std::io::Read;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where `bin` is installed: `PATH`, then the sbin directories (kamailio
/// and ip live there and a non-root `PATH` often lacks them).
pub fn find(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
}

/// Whether CI asked for every test to run (`CI=true`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `bin` (from the Debian package `package`) is installed. Missing: a
/// panic under `CI=true`, else `false` after printing why the test skips.
pub fn require(bin: &str, package: &str) -> bool {
    if find(bin).is_some() {
        return true;
    }
    let msg = format!("{bin} is not installed (apt-get install {package})");
    if under_ci() {
        panic!("{msg} but CI=true");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// A TCP port that was free a moment ago, with the same UDP port free too
/// (SIP peers listen on both).
pub fn free_udp_tcp_port() -> u16 {
    for _ in 0..200 {
        let Ok(tcp) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = tcp.local_addr() else { continue };
        if std::net::UdpSocket::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free UDP+TCP port pair on 127.0.0.1");
}

/// A TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free TCP port")
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to `child`, waits up to `grace` for it to exit, then
/// SIGKILLs it. `group` signals the whole process group it leads (peers
/// spawned with `process_group(0)` that fork workers, like Kamailio), and
/// finally SIGKILLs what is left of the group, before the leader is reaped
/// so its id cannot have been reused.
pub fn terminate(child: &mut std::process::Child, grace: Duration, group: bool) {
    let Ok(pid) = i32::try_from(child.id()) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let target = if group { -pid } else { pid };
    if exited_unreaped(pid).is_some_and(|gone| !gone) {
        // SAFETY: kill(2) on a process (group) we spawned and have not reaped.
        unsafe { libc::kill(target, libc::SIGTERM) };
        let _ = poll(grace, || exited_unreaped(pid).filter(|gone| *gone));
    }
    // SAFETY: as above; the leader is at worst a zombie, so the id is ours.
    unsafe { libc::kill(target, libc::SIGKILL) };
    let _ = child.wait();
}

/// Whether `pid` (our child) has exited, without reaping it; `None` if it
/// is not our child any more.
fn exited_unreaped(pid: i32) -> Option<bool> {
    // SAFETY: siginfo_t is plain data; waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child with WNOWAIT leaves it unreaped.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: filled by waitid; si_pid is 0 while the child still runs.
    Some(unsafe { info.si_pid() } != 0)
}

/// Collects everything `child` writes to its piped stdout and stderr (as
/// it comes, prompts without a newline too); echoed to the test's stderr
/// with `CALLGATE_TEST_ECHO` set.
pub fn collect_output(child: &mut Child, tag: &'static str) -> Arc<Mutex<String>> {
    let output = Arc::new(Mutex::new(String::new()));
    let pipes = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    for mut pipe in pipes.into_iter().flatten() {
        let output = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                if std::env::var_os("CALLGATE_TEST_ECHO").is_some() {
                    eprint!("[{tag}] {text}");
                }
                if let Ok(mut o) = output.lock() {
                    o.push_str(&text);
                }
            }
        });
    }
    output
}
