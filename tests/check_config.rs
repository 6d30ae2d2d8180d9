//! `callgate check-config` names the file, line and key of every problem.

mod common;

use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["check-config"])
        .arg(&path)
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.success(), stderr)
}

#[test]
fn shipped_config_is_valid() {
    let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["check-config", "config/callgate.toml"])
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn broken_configs_are_reported_with_file_line_and_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[sip]\nlisten = [\"127.0.0.1:5060\"]\nrelm = \"x\"\n",
            &["FILE:3:1:", "relm"],
        ),
        (
            "[sip]\nt1_ms = \"soon\"\n",
            &["FILE:2:", "t1_ms", "integer"],
        ),
        (
            "[rtp]\nport_min = 3000\nport_max = 2000\n",
            &["FILE:2:1: rtp.port_min:"],
        ),
        (
            "[[agents]]\nuser = \"a\"\nsecret = \"long-enough\"\n[[agents]]\nuser = \"a b\"\nsecret = \"no\"\n",
            &[
                "FILE:5:1: agents[1].user:",
                "FILE:6:1: agents[1].secret: must be at least 4",
            ],
        ),
        (
            "[security]\ntrusted = [\"10.0.0.0/8\", \"banana\"]\n",
            &["FILE:2:", "security.trusted[1]", "banana"],
        ),
        (
            "[registrar]\ndigest_algorithms = [\"MD4\"]\n",
            &["registrar.digest_algorithms[0]", "MD4"],
        ),
        ("this is not toml\n", &["FILE:1:"]),
    ];
    for (text, needles) in cases {
        let (ok, stderr) = check(text);
        assert!(!ok, "accepted:\n{text}");
        for n in *needles {
            assert!(stderr.contains(n), "{n:?} not in:\n{stderr}\nfor:\n{text}");
        }
    }
    let (ok, stderr) = check("");
    assert!(ok, "{stderr}");
}

#[test]
fn run_refuses_a_broken_config_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[http]\ntoken = \"\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":2:1: http.token: must not be empty"),
        "{stderr}"
    );
}
