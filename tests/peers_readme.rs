//! The README's softphone one-liners, run as written against the shipped
//! config (`config/callgate.toml` verbatim; only the SIP port is a free
//! one instead of 5060, so the address in each line gets that port): the
//! baresip line registers alice, the linphonec line registers bob, and
//! both phones are then on `/api/agents`.

mod common;

use common::linphone::{self, Linphonec};
use common::{Gateway, baresip, repo_root, tools};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The README line (inside backticks) that contains `marker`.
fn readme_line(marker: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    readme
        .split('`')
        .find(|chunk| chunk.contains(marker) && !chunk.contains('\n'))
        .unwrap_or_else(|| panic!("no one-liner with {marker:?} in the README"))
        .to_string()
}

#[test]
fn the_readme_baresip_line_registers_with_the_shipped_config() {
    if !baresip::available() {
        return;
    }
    let gw = Gateway::start_shipped();
    let line = readme_line("baresip -f ~/.baresip -e");
    assert!(line.contains("sip:alice@127.0.0.1;"), "{line}");
    let cmd = line.replace(
        "sip:alice@127.0.0.1;",
        &format!("sip:alice@127.0.0.1:{};", gw.udp.port()),
    );
    let home = tempfile::tempdir().expect("home");
    let mut child = Command::new("timeout")
        .args(["-k", "5", "60", "sh", "-c", &cmd])
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("sh");
    let output = tools::collect_output(&mut child, "baresip");
    let ok = gw.wait_for_log(&["binding added", "agent=alice"], Duration::from_secs(20));
    tools::terminate(&mut child, Duration::from_secs(3), true);
    let out = output.lock().map(|o| o.clone()).unwrap_or_default();
    assert!(ok, "`{cmd}` did not register:\n{out}\n{}", gw.logs());
    assert!(out.contains("200 OK"), "{out}");
}

#[test]
fn the_readme_linphonec_line_registers_with_the_shipped_config() {
    if !linphone::available() {
        return;
    }
    let gw = Gateway::start_shipped();
    let line = readme_line("register sip:bob@127.0.0.1 ");
    let port = gw.udp.port();
    let line = line
        .replace("sip:bob@127.0.0.1 ", &format!("sip:bob@127.0.0.1:{port} "))
        .replace("sip:127.0.0.1;", &format!("sip:127.0.0.1:{port};"));
    let mut phone = Linphonec::start(linphone::Options::default());
    phone.send(&line);
    assert!(
        gw.wait_for_log(&["binding added", "agent=bob"], Duration::from_secs(15)),
        "`{line}` did not register:\n{}\n{}",
        phone.output(),
        gw.logs()
    );
}
