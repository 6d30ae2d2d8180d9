//! Reading, overriding and validating the configuration file.

use super::locate::{element_named, key_at, line_col, locate};
use super::{Config, ConfigError, ConfigErrors};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Command-line overrides: tests run several instances side by side.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub sip_listen: Option<Vec<SocketAddr>>,
    pub http_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub rtp_ports: Option<(u16, u16)>,
}

pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    load_str(&text, path, overrides)
}

pub fn load_str(text: &str, path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let (config, problems) = check_str(text, path, overrides)?;
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(problems))
    }
}

/// Parses (fatal errors) and validates (problems returned with the config).
fn check_str(
    text: &str,
    path: &Path,
    overrides: &Overrides,
) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
    let mut config: Config = toml::from_str(text).map_err(|e| {
        // A value that failed inside an array: point at the element.
        let at = e
            .span()
            .map(|s| element_named(text, s.start, e.message()).unwrap_or(s.start));
        let (line, column) = at.map(|a| line_col(text, a)).unwrap_or((0, 0));
        let key = at.and_then(|a| key_at(text, a)).unwrap_or_default();
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            key,
            message: plain_types(e.message().trim()),
        }])
    })?;
    config.source = path.to_path_buf();
    if let Some(l) = &overrides.sip_listen {
        config.sip.listen = l.clone();
    }
    if let Some(h) = overrides.http_listen {
        config.http.listen = h;
    }
    if let Some(d) = &overrides.data_dir {
        config.data.dir = d.clone();
    } else if config.data.dir.is_relative() {
        // Relative to the working directory, as operators expect from
        // `./data`; nothing to do.
    }
    if let Some((a, b)) = overrides.rtp_ports {
        config.rtp.port_min = a;
        config.rtp.port_max = b;
    }
    let problems: Vec<ConfigError> = validate(&config)
        .into_iter()
        .map(|(key, message)| {
            let (line, column) = locate(text, &key).unwrap_or((0, 0));
            ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                key,
                message,
            }
        })
        .collect();
    Ok((config, problems))
}

/// Like `load`, but semantic problems come back alongside the config, so
/// that the files it points to (flows, prompts) can be checked too and
/// every problem reported in one run. Syntax errors are still fatal.
pub fn load_lenient(
    path: &Path,
    overrides: &Overrides,
) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    check_str(&text, path, overrides)
}

/// Dialled numbers as they appear in a Request-URI user part.
/// How a configured number is matched against a dialled one: `+1000` and
/// `1000` are the same number, at start-up (duplicates) and at run time.
pub fn number_key(n: &str) -> &str {
    n.trim_start_matches('+')
}

pub fn is_dialable(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    !digits.is_empty() && digits.len() <= 32 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A prompt name must be a plain file stem with a WAV in the prompt
/// directory. (Its content is checked when loading.)
pub fn check_prompt(c: &Config, name: &str, key: &str, p: &mut Vec<(String, String)>) {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
    if !plain {
        p.push((
            key.into(),
            format!("{name:?} is not a prompt name (letters, digits, _ and -)"),
        ));
        return;
    }
    let path = c.prompts.dir.join(format!("{name}.wav"));
    if !path.is_file() {
        p.push((
            key.into(),
            format!("prompt file {} not found", path.display()),
        ));
    }
}

/// TCP limits: each must be positive, and one source's share no larger
/// than the whole.
fn validate_tcp(c: &Config, p: &mut Vec<(String, String)>) {
    let s = &c.sip;
    if !(1..=1_000_000).contains(&s.max_tcp_connections) {
        p.push((
            "sip.max_tcp_connections".into(),
            "must be between 1 and 1000000".into(),
        ));
    }
    if s.max_tcp_connections_per_source == 0
        || s.max_tcp_connections_per_source > s.max_tcp_connections
    {
        p.push((
            "sip.max_tcp_connections_per_source".into(),
            format!(
                "must be between 1 and sip.max_tcp_connections ({})",
                s.max_tcp_connections
            ),
        ));
    }
    for (key, value, max) in [
        ("sip.tcp_idle_timeout_s", s.tcp_idle_timeout_s, 86_400),
        ("sip.tcp_message_timeout_s", s.tcp_message_timeout_s, 600),
        ("sip.tcp_send_timeout_s", s.tcp_send_timeout_s, 600),
    ] {
        if !(1..=max).contains(&value) {
            p.push((key.into(), format!("must be between 1 and {max}")));
        }
    }
}

fn validate_store(c: &Config, p: &mut Vec<(String, String)>) {
    let url = c.store.url.trim();
    if !url.is_empty() {
        if !c.store.is_postgres() {
            p.push((
                "store.url".into(),
                "must be empty (SQLite in data.dir) or postgres://user:password@host:port/database"
                    .into(),
            ));
        } else if let Err(e) = url.parse::<tokio_postgres::Config>() {
            // The driver's message never repeats the password.
            p.push(("store.url".into(), format!("not a PostgreSQL URL: {e}")));
        }
        if !(1..=256).contains(&c.store.pool_size) {
            p.push(("store.pool_size".into(), "must be between 1 and 256".into()));
        }
        let id = &c.cluster.node_id;
        if id.is_empty() {
            p.push((
                "cluster.node_id".into(),
                "required with a PostgreSQL store: a name unique to this node".into(),
            ));
        } else if id.len() > 64
            || !id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        {
            p.push((
                "cluster.node_id".into(),
                "at most 64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
    }
    let k = &c.cluster;
    if !(2..=3600).contains(&k.lease_s) {
        p.push((
            "cluster.lease_s".into(),
            "must be between 2 and 3600".into(),
        ));
    }
    if k.heartbeat_s == 0 || k.heartbeat_s * 2 > k.lease_s {
        p.push((
            "cluster.heartbeat_s".into(),
            format!(
                "must be at least 1 and at most half of cluster.lease_s ({})",
                k.lease_s
            ),
        ));
    }
}

/// serde names Rust types ("expected u64"); operators want words.
fn plain_types(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, plain) in [
        ("u64", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("u16", "an integer from 0 to 65535"),
        ("u8", "an integer from 0 to 255"),
        ("usize", "a non-negative integer"),
        ("a boolean", "true or false"),
    ] {
        m = m.replace(&format!("expected {rust}"), &format!("expected {plain}"));
    }
    m
}

/// Semantic checks: (key path, problem).
fn validate(c: &Config) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if c.sip.listen.is_empty() {
        p.push(("sip.listen".into(), "at least one address is needed".into()));
    }
    if c.sip.transports.is_empty() {
        p.push((
            "sip.transports".into(),
            "at least one transport is needed".into(),
        ));
    }
    if c.sip.realm.trim().is_empty() || c.sip.realm.contains('"') {
        p.push((
            "sip.realm".into(),
            "must be non-empty and contain no '\"'".into(),
        ));
    }
    if !(1024..=1_048_576).contains(&c.sip.max_message_bytes) {
        p.push((
            "sip.max_message_bytes".into(),
            "must be between 1024 and 1048576".into(),
        ));
    }
    if !(50..=5000).contains(&c.sip.t1_ms) {
        p.push(("sip.t1_ms".into(), "must be between 50 and 5000".into()));
    }
    validate_tcp(c, &mut p);
    validate_store(c, &mut p);
    if c.rtp.port_min == 0 || c.rtp.port_min > c.rtp.port_max {
        p.push((
            "rtp.port_min".into(),
            "must be non-zero and not above rtp.port_max".into(),
        ));
    } else if c.rtp.port_max - c.rtp.port_min < 3 {
        p.push((
            "rtp.port_max".into(),
            "range must hold at least two even ports".into(),
        ));
    }
    if c.rtp.address.parse::<std::net::IpAddr>().is_err() {
        p.push(("rtp.address".into(), "must be an IP address".into()));
    }
    if c.http.token.trim().is_empty() {
        p.push(("http.token".into(), "must not be empty".into()));
    }
    let r = &c.registrar;
    if r.min_expires_s > r.max_expires_s {
        p.push((
            "registrar.min_expires_s".into(),
            "must not exceed registrar.max_expires_s".into(),
        ));
    }
    if r.default_expires_s < r.min_expires_s || r.default_expires_s > r.max_expires_s {
        p.push((
            "registrar.default_expires_s".into(),
            "must lie between min_expires_s and max_expires_s".into(),
        ));
    }
    if r.digest_algorithms.is_empty() {
        p.push((
            "registrar.digest_algorithms".into(),
            "at least one algorithm is needed".into(),
        ));
    }
    check_algorithms(&r.digest_algorithms, "registrar.digest_algorithms", &mut p);
    if r.max_contacts_per_agent == 0 {
        p.push((
            "registrar.max_contacts_per_agent".into(),
            "must be at least 1".into(),
        ));
    }
    if c.rtp.timeout_s == 0 {
        p.push(("rtp.timeout_s".into(), "must be at least 1".into()));
    }
    if c.rtp.hold_timeout_s < c.rtp.timeout_s {
        p.push((
            "rtp.hold_timeout_s".into(),
            "must not be shorter than rtp.timeout_s".into(),
        ));
    }
    if c.sip.min_se_s < 90 {
        p.push((
            "sip.min_se_s".into(),
            "must be at least 90 (RFC 4028)".into(),
        ));
    }
    if c.sip.session_expires_s != 0 && c.sip.session_expires_s < c.sip.min_se_s {
        p.push((
            "sip.session_expires_s".into(),
            "must be 0 (off) or at least sip.min_se_s".into(),
        ));
    }
    if c.sip.max_calls == 0 {
        p.push(("sip.max_calls".into(), "must be at least 1".into()));
    }
    let mut numbers = HashSet::new();
    for (i, t) in c.test_numbers.iter().enumerate() {
        check_number(
            &t.number,
            &format!("test_numbers[{i}].number"),
            &mut numbers,
            &mut p,
        );
        check_prompt(c, &t.prompt, &format!("test_numbers[{i}].prompt"), &mut p);
    }
    let mut queue_names = HashSet::new();
    for (i, q) in c.queues.iter().enumerate() {
        if q.name.is_empty() || !queue_names.insert(q.name.clone()) {
            p.push((
                format!("queues[{i}].name"),
                format!("queue name {:?} is empty or used twice", q.name),
            ));
        }
        if q.max_contacts == 0 {
            p.push((
                format!("queues[{i}].max_contacts"),
                "must be at least 1".into(),
            ));
        }
        if let Some(n) = &q.caller_id_number
            && !is_dialable(n)
        {
            p.push((
                format!("queues[{i}].caller_id_number"),
                "must be digits, optionally with a leading +".into(),
            ));
        }
        if let Some(n) = &q.caller_id_name
            && n.contains(['"', '\\', '\r', '\n'])
        {
            p.push((
                format!("queues[{i}].caller_id_name"),
                "must not contain quotes, backslashes or line breaks".into(),
            ));
        }
        check_prompt(c, &q.hold_music, &format!("queues[{i}].hold_music"), &mut p);
        if q.utc_offset_minutes.abs() > 14 * 60 {
            p.push((
                format!("queues[{i}].utc_offset_minutes"),
                "must be within ±840".into(),
            ));
        }
        if q.time_zone.is_some() && q.utc_offset_minutes != 0 {
            p.push((
                format!("queues[{i}].utc_offset_minutes"),
                "give either time_zone or utc_offset_minutes, not both".into(),
            ));
        }
        if q.wait_cold_start_s == 0 || q.wait_cold_start_s > 86_400 {
            p.push((
                format!("queues[{i}].wait_cold_start_s"),
                "must be 1 to 86400 seconds".into(),
            ));
        }
    }
    let mut profile_names = HashSet::new();
    for (i, rp) in c.routing_profiles.iter().enumerate() {
        if !profile_names.insert(rp.name.clone()) {
            p.push((
                format!("routing_profiles[{i}].name"),
                format!("routing profile {:?} defined twice", rp.name),
            ));
        }
        if rp.queues.is_empty() {
            p.push((
                format!("routing_profiles[{i}].queues"),
                "lists no queues".into(),
            ));
        }
        for (j, e) in rp.queues.iter().enumerate() {
            if !queue_names.contains(&e.queue) {
                p.push((
                    format!("routing_profiles[{i}].queues[{j}].queue"),
                    format!("unknown queue {:?}", e.queue),
                ));
            }
        }
    }
    for (i, n) in c.numbers.iter().enumerate() {
        check_number(
            &n.number,
            &format!("numbers[{i}].number"),
            &mut numbers,
            &mut p,
        );
    }
    if crate::phone::country(&c.dialer.country).is_none() {
        p.push((
            "dialer.country".into(),
            format!(
                "unknown country {:?} (use an ISO code such as \"US\")",
                c.dialer.country
            ),
        ));
    }
    for (key, list) in [
        ("allowed_prefixes", &c.dialer.allowed_prefixes),
        ("blocked_prefixes", &c.dialer.blocked_prefixes),
    ] {
        for (i, pre) in list.iter().enumerate() {
            let digits = pre.strip_prefix('+').unwrap_or_default();
            if digits.is_empty() || !digits.chars().all(|ch| ch.is_ascii_digit()) {
                p.push((
                    format!("dialer.{key}[{i}]"),
                    format!("{pre:?} must be + and digits, e.g. \"+1\""),
                ));
            }
        }
    }
    if c.dialer.allowed_regions.as_ref().is_some_and(Vec::is_empty) {
        p.push((
            "dialer.allowed_regions".into(),
            "must name at least one region (leave it out for the dialer's country)".into(),
        ));
    }
    if c.dialer.ring_timeout_s == 0 {
        p.push(("dialer.ring_timeout_s".into(), "must be at least 1".into()));
    }
    if c.dialer.expiry_s == 0 {
        p.push(("dialer.expiry_s".into(), "must be at least 1".into()));
    }
    if c.routing.offer_timeout_s == 0 {
        p.push((
            "routing.offer_timeout_s".into(),
            "must be at least 1".into(),
        ));
    }
    let mut users = HashSet::new();
    for (i, a) in c.agents.iter().enumerate() {
        let valid_user = !a.user.is_empty()
            && a.user
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.!~*'()+".contains(ch));
        if !valid_user {
            p.push((
                format!("agents[{i}].user"),
                "must be a non-empty SIP user name (letters, digits, -_.!~*'()+)".into(),
            ));
        }
        if !users.insert(a.user.to_ascii_lowercase()) {
            p.push((
                format!("agents[{i}].user"),
                format!("duplicate agent {:?}", a.user),
            ));
        }
        if let Some(rp) = &a.routing_profile
            && !profile_names.contains(rp)
        {
            p.push((
                format!("agents[{i}].routing_profile"),
                format!("unknown routing profile {rp:?}"),
            ));
        }
        if a.secret.len() < 4 {
            p.push((
                format!("agents[{i}].secret"),
                "must be at least 4 characters".into(),
            ));
        }
        if let Some(list) = &a.digest_algorithms {
            let key = format!("agents[{i}].digest_algorithms");
            if list.is_empty() {
                p.push((key.clone(), "at least one algorithm is needed".into()));
            }
            check_algorithms(list, &key, &mut p);
        }
    }
    p
}

fn check_algorithms(list: &[String], key: &str, p: &mut Vec<(String, String)>) {
    for (i, a) in list.iter().enumerate() {
        if crate::sip::auth::Algorithm::parse(Some(a)).is_none() {
            p.push((
                format!("{key}[{i}]"),
                format!("{a:?} is not one of MD5, MD5-sess, SHA-256, SHA-256-sess"),
            ));
        }
    }
}

/// Dialled numbers and test numbers share one namespace: a number defined
/// twice would make routing depend on declaration order.
fn check_number(
    number: &str,
    field: &str,
    seen: &mut HashSet<String>,
    p: &mut Vec<(String, String)>,
) {
    if !is_dialable(number) {
        p.push((
            field.to_string(),
            "must be digits, optionally with a leading +".into(),
        ));
    }
    if !seen.insert(number_key(number).to_string()) {
        p.push((
            field.to_string(),
            format!("number {number} is defined twice"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match load_str(text, Path::new("t.toml"), &Overrides::default()) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(errors("").is_empty());
    }

    #[test]
    fn syntax_and_unknown_keys_name_line() {
        let e = errors("[sip]\nrelm = \"x\"\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t.toml:2:1: "), "{e:?}");
        assert!(e[0].contains("relm"), "{e:?}");
        let e = errors("[sip]\nt1_ms = \"fast\"\n");
        assert!(e[0].starts_with("t.toml:2:"), "{e:?}");
    }

    #[test]
    fn semantic_errors_name_file_line_and_key() {
        let e = errors(
            "[[agents]]\nuser = \"a\"\nsecret = \"abcd\"\n\n[[agents]]\nuser = \"a\"\nsecret = \"x\"\n",
        );
        assert_eq!(
            e,
            vec![
                "t.toml:6:1: agents[1].user: duplicate agent \"a\"".to_string(),
                "t.toml:7:1: agents[1].secret: must be at least 4 characters".to_string(),
            ]
        );
    }

    #[test]
    fn dial_rule_errors_are_located() {
        // (toml reports an element's error at its array.)
        let e = errors("[dialer]\nallowed_regions = [\"US\",\n  \"XX\"]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:2:19: dialer.allowed_regions: unknown region \"XX\""),
            "{e:?}"
        );
        let e = errors("[dialer]\nblocked_types = [\"premium\"]\n");
        assert!(
            e[0].starts_with("t.toml:2:17: dialer.blocked_types: unknown number type \"premium\""),
            "{e:?}"
        );
        let e = errors(
            "[dialer]\nallowed_regions = []\nallowed_prefixes = [\"+1\"]\nblocked_prefixes = [\"+1900\", \"1976\"]\n",
        );
        assert_eq!(
            e,
            vec![
                "t.toml:4:30: dialer.blocked_prefixes[1]: \"1976\" must be + and digits, e.g. \"+1\"",
                "t.toml:2:1: dialer.allowed_regions: must name at least one region (leave it out for the dialer's country)",
            ]
        );
    }

    #[test]
    fn numbers_share_one_namespace_with_test_numbers() {
        let e = errors(
            "[[test_numbers]]\nnumber = \"+7000\"\nprompt = \"x\"\n\n[[numbers]]\nnumber = \"7000\"\nflow = \"main\"\n\n[[numbers]]\nnumber = \"70x0\"\nflow = \"main\"\n",
        );
        let number_errors: Vec<&String> = e.iter().filter(|e| e.contains(".number:")).collect();
        assert_eq!(
            number_errors,
            vec![
                "t.toml:6:1: numbers[0].number: number 7000 is defined twice",
                "t.toml:10:1: numbers[1].number: must be digits, optionally with a leading +",
            ],
            "{e:?}"
        );
    }
}
