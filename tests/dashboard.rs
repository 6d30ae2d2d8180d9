//! The supervisor's dashboard in a real browser (headless Chromium via
//! chromedriver) against the real binary: sign in, watch a callback
//! appear without reloading when a SIPp caller leaves it, stop it from
//! the page, and see that it is never dialled while the callback behind
//! it is. Takes the screenshot in the README while that one is being
//! dialled (`CALLGATE_SCREENSHOT=docs/dashboard.png` writes it there;
//! otherwise to target/).

mod common;

use callgate::sip::message::Method;
use common::Gateway;
use common::agent::{Agent, Answer};
use common::browser::Browser;
use common::centre::{ani_flow, eventually, leave_callback, write_flows};
use common::http::get_json;
use common::sipp;
use common::trunk::Trunk;
use common::{base_config, repo_root};
use serde_json::json;
use std::time::Duration;

/// Two queues; alice takes callbacks, bob voice calls; number 4000
/// leaves a callback routable at once, 4001 one in 10 minutes.
fn start(trunk: &Trunk) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = write_flows(
        dir.path(),
        &[
            ("now", &ani_flow("callbacks", 0, 2, 600)),
            ("later", &ani_flow("callbacks", 600, 2, 600)),
        ],
    );
    let base = base_config(&dir.path().join("data"))
        .replace(
            "secret = \"alice-secret\"\n",
            "secret = \"alice-secret\"\nname = \"Alice Martin\"\nrouting_profile = \"callbacks\"\nafter_contact_work_s = 0\n",
        )
        .replace(
            "secret = \"bob-secret\"\n",
            "secret = \"bob-secret\"\nname = \"Bob Chen\"\nrouting_profile = \"voice\"\nafter_contact_work_s = 0\n",
        );
    let text = format!(
        r#"{base}
[prompts]
dir = "{prompts}"
[flows]
dir = "{flows}"
[[numbers]]
number = "4000"
flow = "now"
[[numbers]]
number = "4001"
flow = "later"
[[queues]]
name = "support"
max_contacts = 10
[[queues]]
name = "callbacks"
max_contacts = 20
caller_id_name = "Acme Callbacks"
caller_id_number = "+12015550001"
[[routing_profiles]]
name = "callbacks"
queues = [{{ queue = "callbacks", priority = 1 }}]
[[routing_profiles]]
name = "voice"
queues = [{{ queue = "support", priority = 1 }}]
[dialer]
country = "US"
target = "{trunk}"
uri_template = "sip:{{number}}@{trunk}"
ring_timeout_s = 10
"#,
        prompts = repo_root().join("prompts").display(),
        flows = flows.display(),
        trunk = trunk.addr,
    );
    Gateway::start_with_config(dir, &text)
}

fn callback_id(gw: &Gateway, number: &str) -> String {
    let list = get_json(
        gw.http.unwrap(),
        &format!("/api/callbacks?number=%2B{}", &number[1..]),
    );
    list[0]["id"].as_str().expect("callback id").to_string()
}

#[test]
fn a_callback_appears_live_is_stopped_from_the_page_and_never_dialled() {
    if !sipp::available() {
        return;
    }
    let Some(b) = Browser::start_sized(1600, 1050) else {
        return;
    };
    let mut trunk = Trunk::bind();
    let gw = start(&trunk);
    let http = gw.http.unwrap();
    b.goto(&format!("http://{http}/"));
    assert!(b.wait_for(
        "return !document.getElementById('login').hidden;",
        Duration::from_secs(5)
    ));
    b.type_into("#token", "test-token");
    b.click("#login button");
    assert!(
        b.wait_for(
            "return document.getElementById('conn').textContent === 'live' && document.querySelectorAll('#agents tbody tr').length === 2;",
            Duration::from_secs(10)
        ),
        "{}",
        b.eval("return document.body.innerText;")
    );
    // From here on nothing may reload the page: updates are pushed.
    b.eval("window.__stayed = true; return null;");
    let _bob = Agent::register(gw.udp, "bob", "bob-secret");

    // A (to be stopped) then B, both routable now, left by a SIPp caller
    // (one call at a time, so A is older); two for later.
    let (a_number, b_number) = ("+12015550171", "+12015550172");
    let csv = gw.dir.path().join("numbers.csv");
    std::fs::write(&csv, format!("SEQUENTIAL\n{a_number}\n{b_number}\n")).unwrap();
    let run = sipp::run(
        "caller_ani.xml",
        gw.udp,
        &[
            "-s",
            "4000",
            "-inf",
            csv.to_str().unwrap(),
            "-m",
            "2",
            "-l",
            "1",
            "-recv_timeout",
            "10000",
        ],
    );
    assert!(run.ok(), "{}\n{}", run.errors, run.stdout);
    leave_callback(&gw, "4001", "+12015550173");
    leave_callback(&gw, "4001", "+12015550174");
    let a = callback_id(&gw, a_number);
    assert!(
        b.wait_for(
            "return document.querySelectorAll('#callbacks tbody tr').length === 4;",
            Duration::from_secs(10)
        ),
        "the callbacks appear: {}",
        b.eval("return document.body.innerText;")
    );
    assert_eq!(
        b.eval("return window.__stayed === true;"),
        json!(true),
        "no reload"
    );
    let row = b.eval(&format!(
        "return document.querySelector('#callbacks tr[data-id=\"{a}\"]').innerText;"
    ));
    let row = row.as_str().unwrap_or_default().to_string();
    assert!(
        row.contains("+•••••••0171") && row.contains("queued"),
        "{row}"
    );
    assert_eq!(
        b.eval("return document.body.innerHTML.includes('2015550171');"),
        json!(false),
        "the page never holds the whole number"
    );
    assert!(b.wait_for(
        "const c = document.querySelector('#queues .card[data-queue=\"callbacks\"]'); return !!c && c.innerText.includes('callbacks scheduled');",
        Duration::from_secs(5)
    ));

    // Stop A from the page: a first click arms, a second stops.
    let stop = format!("#callbacks button.stop[data-id=\"{a}\"]");
    b.click(&stop);
    assert!(b.wait_for(
        &format!(
            "return document.querySelector('{}').textContent === 'Confirm stop';",
            stop.replace('\'', "\\'")
        ),
        Duration::from_secs(3)
    ));
    b.click(&stop);
    assert!(
        b.wait_for(
            &format!("return !document.querySelector('#callbacks tr[data-id=\"{a}\"]');"),
            Duration::from_secs(10)
        ),
        "the stopped callback leaves the page: {}",
        b.eval("return document.body.innerText;")
    );
    let one = get_json(http, &format!("/api/callbacks/{a}"));
    assert_eq!(one["callback"]["state"], "stopped", "{one}");

    // Now an agent for the callbacks queue: A, older than B, would be
    // offered and dialled first if it were still there.
    let mut alice = Agent::register(gw.udp, "alice", "alice-secret");
    let offer = alice
        .offer(Duration::from_secs(10), Answer::Accept(0))
        .expect("the remaining callback is offered");
    let offered = Agent::contact_of(&offer);
    assert_ne!(offered, a, "the stopped callback was offered");
    let b_id = callback_id(&gw, b_number);
    assert_eq!(offered, b_id);
    // The trunk has not answered yet: the page shows B being dialled for
    // alice, and alice on it.
    assert!(
        b.wait_for(
            &format!(
                "const r = document.querySelector('#callbacks tr[data-id=\"{b_id}\"]'); return !!r && r.innerText.includes('dialing') && document.querySelector('#agents tbody').innerText.includes('on contact');"
            ),
            Duration::from_secs(10)
        ),
        "B is dialled: {}",
        b.eval("return document.body.innerText;")
    );
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let invite = trunk
        .next_invite(486, Duration::from_secs(20))
        .expect("B is dialled through the trunk");
    assert!(
        invite.uri.to_string().contains(&b_number[1..]),
        "{}",
        invite.uri
    );
    // The agent hears that the callback is closed and is hung up on.
    assert!(
        alice
            .expect(Method::Bye, Duration::from_secs(20), None)
            .is_some()
    );
    assert!(
        trunk.invites.iter().all(|u| !u.contains(&a_number[1..])),
        "the stopped callback was dialled: {:?}",
        trunk.invites
    );
    assert!(b.wait_for(
        "return document.querySelectorAll('#callbacks tbody tr').length === 2;",
        Duration::from_secs(10)
    ));
    assert!(
        eventually(Duration::from_secs(5), || get_json(
            http,
            "/api/records?number=%2B12015550171"
        )
        .as_array()
        .is_some_and(|r| r.iter().any(|c| c["disconnect_reason"]
            .as_str()
            .is_some_and(|d| d.starts_with("stopped"))))),
        "the stopped callback's record is closed"
    );
    assert_eq!(
        b.eval("return window.__stayed === true;"),
        json!(true),
        "no reload"
    );

    let path = std::env::var("CALLGATE_SCREENSHOT")
        .map(|p| repo_root().join(p))
        .unwrap_or_else(|_| repo_root().join("target/dashboard.png"));
    std::fs::write(&path, png).expect("write the screenshot");
}

/// The page's live state: the connection badge's text.
fn conn(b: &Browser) -> String {
    b.eval("return document.getElementById('conn').textContent;")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_dashboard_reconnects_by_itself_when_the_gateway_comes_back() {
    let Some(b) = Browser::start() else {
        return;
    };
    let trunk = Trunk::bind();
    let mut gw = start(&trunk);
    let http = gw.http.unwrap();
    b.goto(&format!("http://{http}/"));
    assert!(b.wait_for(
        "return !document.getElementById('login').hidden;",
        Duration::from_secs(5)
    ));
    b.type_into("#token", "test-token");
    b.click("#login button");
    assert!(
        b.wait_for(
            "return document.getElementById('conn').textContent === 'live';",
            Duration::from_secs(10)
        ),
        "{}",
        conn(&b)
    );
    b.eval("window.__stayed = true; return null;");
    assert!(b.wait_for(
        "return document.querySelectorAll('#callbacks tbody tr').length === 0;",
        Duration::from_secs(5)
    ));

    // The gateway dies: the page says so and keeps trying.
    gw.kill9();
    assert!(
        b.wait_for(
            "return document.getElementById('conn').textContent.startsWith('reconnecting');",
            Duration::from_secs(10)
        ),
        "{}",
        conn(&b)
    );
    // It comes back on the same address, with the same database, and a
    // callback is left: the page is live again and shows it, unreloaded.
    let config = std::fs::read_to_string(&gw.config_path)
        .expect("config")
        .replace(
            "[http]\nlisten = \"127.0.0.1:0\"",
            &format!("[http]\nlisten = \"{http}\""),
        );
    assert!(config.contains(&http.to_string()), "{config}");
    let gw2 = Gateway::start_with_config(tempfile::tempdir().expect("tempdir"), &config);
    assert_eq!(gw2.http, Some(http));
    leave_callback(&gw2, "4001", "+12015550181");
    assert!(
        b.wait_for(
            "return document.getElementById('conn').textContent === 'live' && document.querySelectorAll('#callbacks tbody tr').length === 1;",
            Duration::from_secs(40)
        ),
        "{}: {}",
        conn(&b),
        b.eval("return document.body.innerText;")
    );
    assert_eq!(
        b.eval("return window.__stayed === true;"),
        json!(true),
        "no reload"
    );
    assert!(
        b.eval("return document.body.innerText;")
            .as_str()
            .is_some_and(|t| t.contains("+•••••••0181")),
        "the new callback, masked"
    );
}
