//! A gateway configured as a contact centre for tests: queues, a routing
//! profile, agents, numbers and flows (the shipped ones or a test's own).

use super::{Gateway, base_config, repo_root};
use std::path::{Path, PathBuf};

/// Queues `support` and `sales` (voice, equal priority) and `callbacks`
/// (lower priority), one profile serving all three,
/// agents alice and bob on it, the dialer pointed at `trunk`.
/// Knobs of the test contact centre.
#[derive(Default, Clone)]
pub struct Opts<'a> {
    pub support_max: Option<usize>,
    pub callbacks_max: Option<usize>,
    /// Extra keys for the `[dialer]` table.
    pub dialer: &'a str,
    pub ring_timeout_s: Option<u64>,
    /// Replaces the dialer's number rules (`allowed_regions`,
    /// `allowed_prefixes`, `blocked_prefixes`).
    pub rules: Option<&'a str>,
    /// Extra keys for the base config's `[sip]` and `[rtp]` tables.
    pub sip: &'a str,
    pub rtp: &'a str,
}

const DEFAULT_RULES: &str = "allowed_regions = [\"US\", \"GB\"]\nallowed_prefixes = [\"+1\", \"+44\"]\nblocked_prefixes = [\"+1900\"]";

pub fn centre_config(flows_dir: &Path, trunk: &str, extra: &str) -> String {
    centre_config_opts(flows_dir, trunk, extra, &Opts::default())
}

pub fn centre_config_opts(flows_dir: &Path, trunk: &str, extra: &str, o: &Opts<'_>) -> String {
    let support_max = o.support_max.unwrap_or(if extra.contains("support_max_1") {
        1
    } else {
        5
    });
    let callbacks_max = o.callbacks_max.unwrap_or(20);
    let dialer_extra = o.dialer;
    let rules = o.rules.unwrap_or(DEFAULT_RULES);
    let ring = o.ring_timeout_s.unwrap_or(30);
    format!(
        r#"
[prompts]
dir = "{prompts}"

[flows]
dir = "{flows}"

[[queues]]
name = "support"
max_contacts = {support_max}
caller_id_name = "Acme Support"
caller_id_number = "+12015550000"

[[queues]]
name = "sales"
max_contacts = 5
# Open one minute a week: closed for any practical test run.
hours = ["mon 00:00-00:01"]

[[queues]]
name = "callbacks"
max_contacts = {callbacks_max}
caller_id_name = "Acme Callbacks"
caller_id_number = "+12015550001"
dedupe_callbacks = true

[[routing_profiles]]
name = "default"
queues = [{{ queue = "support", priority = 1 }}, {{ queue = "sales", priority = 1 }}, {{ queue = "callbacks", priority = 2 }}]

[dialer]
country = "US"
{rules}
target = "{trunk}"
uri_template = "sip:{{number}}@{trunk}"
ring_timeout_s = {ring}
{dialer_extra}

{extra}
"#,
        prompts = repo_root().join("prompts").display(),
        flows = flows_dir.display(),
    )
}

/// Writes flow files into a fresh directory inside `dir`.
pub fn write_flows(dir: &Path, flows: &[(&str, &str)]) -> PathBuf {
    let d = dir.join("flows");
    std::fs::create_dir_all(&d).expect("flows dir");
    for (name, text) in flows {
        std::fs::write(d.join(format!("{name}.toml")), text).expect("flow file");
    }
    d
}

/// Starts a gateway whose base config gets the agents' routing profile
/// and the centre sections.
pub fn start(flows: Option<&[(&str, &str)]>, trunk: &str, extra: &str) -> Gateway {
    start_opts(flows, trunk, extra, &Opts::default())
}

pub fn start_opts(
    flows: Option<&[(&str, &str)]>,
    trunk: &str,
    extra: &str,
    o: &Opts<'_>,
) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let flows_dir = match flows {
        Some(f) => write_flows(dir.path(), f),
        None => repo_root().join("config/flows"),
    };
    let base = base_config(&dir.path().join("data"))
        .replace(
            "secret = \"alice-secret\"\n",
            "secret = \"alice-secret\"\nrouting_profile = \"default\"\nafter_contact_work_s = 0\n",
        )
        .replace(
            "secret = \"bob-secret\"\n",
            "secret = \"bob-secret\"\nrouting_profile = \"default\"\nafter_contact_work_s = 0\n",
        );
    let base = set_keys(&set_keys(&base, "[sip]", o.sip), "[rtp]", o.rtp);
    let text = format!(
        "{base}\n{}",
        centre_config_opts(&flows_dir, trunk, extra, o)
    );
    Gateway::start_with_config(dir, &text)
}

/// `text` with each `key = value` line of `keys` set in `table` (keys
/// the base config has once, like `t1_ms`, are replaced where they are): an
/// existing key's line replaced, a new one added after the table header.
fn set_keys(text: &str, table: &str, keys: &str) -> String {
    let mut out = text.to_string();
    for line in keys.lines().filter(|l| l.contains('=')) {
        let key = line.split('=').next().unwrap_or_default().trim();
        let existing = out
            .lines()
            .find(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
            .map(str::to_string);
        out = match existing {
            Some(old) => out.replacen(&old, line, 1),
            None => out.replacen(&format!("{table}\n"), &format!("{table}\n{line}\n"), 1),
        };
    }
    out
}

/// The callbacks table, as (number, state, attempts, initial_start_ms,
/// created_ms, not_before_ms, max_retries, retry_interval_s, queue).
pub type CallbackRow = (String, String, u32, i64, i64, i64, u32, i64, String);

/// Rows of a read-only query on the gateway's database (empty while the
/// database does not exist yet).
fn query<T>(
    gw: &Gateway,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    let path = gw.dir.path().join("data/callgate.sqlite3");
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare(sql) else {
        return Vec::new();
    };
    stmt.query_map([], row)
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

pub fn callbacks(gw: &Gateway) -> Vec<CallbackRow> {
    query(
        gw,
        "SELECT number, state, attempts, initial_start_ms, created_ms, not_before_ms, max_retries, retry_interval_s, queue FROM callbacks ORDER BY initial_start_ms, created_ms",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        },
    )
}

/// Contact records: (id, initial id, initiation, queue, agent, customer
/// number, disconnect reason).
pub type ContactRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub fn contacts(gw: &Gateway) -> Vec<ContactRow> {
    query(
        gw,
        "SELECT id, initial_contact_id, initiation, queue, agent, customer_number, disconnect_reason FROM contacts ORDER BY initiated_ms",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )
}

/// Polls until `f` holds or the time runs out.
pub fn eventually(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}

/// A flow that makes a callback from the caller's own number (ANI) in
/// `queue`, then hangs up.
pub fn ani_flow(queue: &str, delay_s: u64, retries: u32, interval_s: u64) -> String {
    format!(
        r#"
type = "inbound"
start = "set"
[blocks.set]
type = "set_callback_number"
source = "caller_number"
next = "schedule"
on_invalid = "end"
[blocks.schedule]
type = "transfer_to_queue"
mode = "callback"
queue = "{queue}"
initial_delay_s = {delay_s}
max_retries = {retries}
retry_interval_s = {interval_s}
next = "end"
on_at_capacity = "end"
on_duplicate = "end"
[blocks.end]
type = "disconnect"
"#
    )
}

/// Calls `dialled` from `from` (E.164), ACKs the answer, and waits for
/// the gateway to hang up: with an `ani_flow` number, that leaves a
/// callback. (The gateway's BYE waits for the ACK, RFC 3261 §15.)
pub fn leave_callback(gw: &Gateway, dialled: &str, from: &str) {
    leave_callback_via(super::ua::Ua::udp(gw.udp), dialled, from);
}

/// Like `leave_callback`, from a UA of the test's choosing (another
/// source address, say).
pub fn leave_callback_via(mut ua: super::ua::Ua, dialled: &str, from: &str) {
    let rtp = super::rtp::RtpPeer::new();
    ua.call_as(from, dialled, &rtp.offer(&[(0, "PCMU")]))
        .unwrap_or_else(|r| panic!("answered: {r:?}"));
    let bye = ua
        .recv_request(std::time::Duration::from_secs(5))
        .expect("BYE");
    ua.respond_to(&bye, 200);
}
