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
            "[store]\nurl = \"mysql://db/x\"\n[cluster]\nnode_id = \"a\"\n",
            &["FILE:2:1: store.url: must be empty"],
        ),
        (
            "[store]\nurl = \"postgres://u:p@127.0.0.1:notaport/db\"\n[cluster]\nnode_id = \"a\"\n",
            &["FILE:2:1: store.url: not a PostgreSQL URL"],
        ),
        (
            "[store]\nurl = \"postgres://u:p@127.0.0.1:5432/db\"\n",
            &["cluster.node_id: required with a PostgreSQL store"],
        ),
        (
            "[store]\nurl = \"postgres://u:p@127.0.0.1/db\"\n[cluster]\nnode_id = \"a b\"\nlease_s = 4\nheartbeat_s = 3\n",
            &[
                "FILE:4:1: cluster.node_id: at most 64",
                "FILE:6:1: cluster.heartbeat_s: must be at least 1 and at most half",
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
        (
            "[sip]\nmax_tcp_connections = 100\nmax_tcp_connections_per_source = 101\n",
            &[
                "FILE:3:1: sip.max_tcp_connections_per_source: must be between 1 and sip.max_tcp_connections (100)",
            ],
        ),
        (
            "[sip]\ntcp_message_timeout_s = 0\ntcp_send_timeout_s = 601\ntcp_idle_timeout_s = 0\n",
            &[
                "FILE:2:1: sip.tcp_message_timeout_s: must be between 1 and 600",
                "FILE:3:1: sip.tcp_send_timeout_s: must be between 1 and 600",
                "FILE:4:1: sip.tcp_idle_timeout_s: must be between 1 and 86400",
            ],
        ),
        (
            "[sip]\nmax_tcp_connections = 0\n",
            &["FILE:2:1: sip.max_tcp_connections: must be between 1 and 1000000"],
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

/// A config with one queue and a flows directory holding `flow`.
fn check_flow(flow: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("broken.toml"), flow).unwrap();
    let cfg = dir.path().join("callgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[prompts]\ndir = \"{}\"\n[flows]\ndir = \"{}\"\n[[queues]]\nname = \"support\"\n[[numbers]]\nnumber = \"1000\"\nflow = \"broken\"\n",
            common::repo_root().join("prompts").display(),
            flows.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&flows.display().to_string(), "FLOWS");
    (out.status.success(), stderr)
}

#[test]
fn broken_flows_are_reported_with_file_and_block() {
    let head = "type = \"inbound\"\nstart = \"a\"\n";
    let cases: &[(String, &[&str])] = &[
        (
            format!("{head}[blocks.a]\ntype = \"play_music\"\nnext = \"a\"\n"),
            &[
                "FLOWS/broken.toml:",
                "blocks.a",
                "unknown block type",
                "play_music",
            ],
        ),
        (
            format!(
                "{head}[blocks.a]\ntype = \"get_input\"\nprompts = [\"goodbye\"]\nconditions = {{ \"1\" = \"a\" }}\non_no_match = \"a\"\n"
            ),
            &["FLOWS/broken.toml:", "blocks.a", "on_timeout"],
        ),
        (
            format!(
                "{head}[blocks.a]\ntype = \"play_prompt\"\nprompts = [\"goodbye\"]\nnext = \"nowhere\"\n"
            ),
            &[
                "FLOWS/broken.toml:6:1: blocks.a.next: block \"a\"",
                "\"nowhere\", which does not exist",
            ],
        ),
        (
            format!(
                "{head}[blocks.a]\ntype = \"play_prompt\"\nprompts = [\"no_such_prompt\"]\nnext = \"b\"\n[blocks.b]\ntype = \"disconnect\"\n"
            ),
            &[
                "FLOWS/broken.toml:",
                "blocks.a.prompts[0]",
                "no_such_prompt.wav not found",
            ],
        ),
        (
            format!(
                "{head}[blocks.a]\ntype = \"set_working_queue\"\nqueue = \"sales\"\nnext = \"b\"\n[blocks.b]\ntype = \"disconnect\"\n"
            ),
            &[
                "FLOWS/broken.toml:",
                "blocks.a.queue",
                "unknown queue \"sales\"",
            ],
        ),
        (
            format!(
                "{head}[blocks.a]\ntype = \"play_prompt\"\nprompts = [\"goodbye\"]\nnext = \"b\"\n[blocks.b]\ntype = \"set_contact_attributes\"\nattributes = {{ x = \"1\" }}\nnext = \"a\"\n"
            ),
            &[
                "FLOWS/broken.toml:3:9: blocks.a:",
                "a → b → a",
                "never waits for input",
            ],
        ),
        (
            "type = \"inbound\"\nstart = \"missing\"\n[blocks.a]\ntype = \"disconnect\"\n"
                .to_string(),
            &[
                "FLOWS/broken.toml:2:1: start:",
                "\"missing\" does not exist",
            ],
        ),
        (
            format!(
                "{head}[blocks.a]\ntype = \"get_input\"\nprompts = [\"goodbye\"]\nconditions = {{ \"12\" = \"a\" }}\non_timeout = \"a\"\non_no_match = \"a\"\n"
            ),
            &["blocks.a.conditions", "\"12\" is not a single key"],
        ),
    ];
    for (flow, needles) in cases {
        let (ok, stderr) = check_flow(flow);
        assert!(!ok, "accepted:\n{flow}");
        for n in *needles {
            assert!(stderr.contains(n), "{n:?} not in:\n{stderr}\nfor:\n{flow}");
        }
    }
    // The same graph with input in the loop is fine.
    let good = format!(
        "{head}[blocks.a]\ntype = \"get_input\"\nprompts = [\"goodbye\"]\nconditions = {{ \"1\" = \"b\" }}\non_timeout = \"a\"\non_no_match = \"a\"\n[blocks.b]\ntype = \"disconnect\"\n"
    );
    let (ok, stderr) = check_flow(&good);
    assert!(ok, "{stderr}");
}

#[test]
fn numbers_must_name_inbound_flows() {
    let (ok, stderr) =
        check_flow("type = \"customer_queue\"\nstart = \"a\"\n[blocks.a]\ntype = \"disconnect\"\n");
    assert!(!ok);
    assert!(
        stderr.contains("numbers[0].flow") && stderr.contains("not Inbound"),
        "{stderr}"
    );
}

#[test]
fn config_and_flow_problems_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("f.toml"),
        "type = \"inbound\"\nstart = \"a\"\n[blocks.a]\ntype = \"set_working_queue\"\nqueue = \"sales\"\nnext = \"b\"\n[blocks.b]\ntype = \"disconnect\"\n",
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[prompts]\ndir = \"{}\"\n[flows]\ndir = \"{}\"\n[[queues]]\nname = \"support\"\n[[numbers]]\nnumber = \"1000\"\nflow = \"f\"\n[[agents]]\nuser = \"a\"\nsecret = \"secret\"\nrouting_profile = \"night\"\n",
            common::repo_root().join("prompts").display(),
            flows.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agents[0].routing_profile: unknown routing profile \"night\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("f.toml:5:1: blocks.a.queue: block \"a\": unknown queue \"sales\""),
        "{stderr}"
    );
}
