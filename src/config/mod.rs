//! Configuration: one TOML file (see `config/callgate.toml` for every key
//! with comments), loaded and validated at start-up and by
//! `callgate check-config`.

pub mod error;
pub mod load;
pub mod locate;
pub mod typed;

pub use error::{ConfigError, ConfigErrors};
pub use load::{Overrides, load, load_str};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub rtp: RtpConfig,
    pub http: HttpConfig,
    pub data: DataConfig,
    pub store: StoreConfig,
    pub cluster: ClusterConfig,
    pub registrar: RegistrarConfig,
    pub security: SecurityConfig,
    pub prompts: PromptsConfig,
    pub flows: FlowsConfig,
    pub routing: RoutingConfig,
    pub dialer: DialerConfig,
    pub numbers: Vec<NumberConfig>,
    pub queues: Vec<QueueConfig>,
    pub routing_profiles: Vec<RoutingProfileConfig>,
    pub agents: Vec<AgentConfig>,
    pub test_numbers: Vec<TestNumberConfig>,
    pub shutdown: ShutdownConfig,
    /// The file this came from; relative paths in it resolve against its
    /// directory.
    #[serde(skip)]
    pub source: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            rtp: RtpConfig::default(),
            http: HttpConfig::default(),
            data: DataConfig::default(),
            store: StoreConfig::default(),
            cluster: ClusterConfig::default(),
            registrar: RegistrarConfig::default(),
            security: SecurityConfig::default(),
            prompts: PromptsConfig::default(),
            flows: FlowsConfig::default(),
            routing: RoutingConfig::default(),
            dialer: DialerConfig::default(),
            numbers: Vec::new(),
            queues: Vec::new(),
            routing_profiles: Vec::new(),
            agents: Vec::new(),
            test_numbers: Vec::new(),
            shutdown: ShutdownConfig::default(),
            source: PathBuf::from("<defaults>"),
        }
    }
}

/// SIGTERM / SIGINT: stop taking calls, let calls finish for up to
/// `drain_s`, then end the rest (BYE, CANCEL), put in-flight callbacks
/// back in their queues and exit 0 within `deadline_s` more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    pub drain_s: u64,
    pub deadline_s: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_s: 0,
            deadline_s: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Addresses to listen on; port 0 picks a free port (tests).
    pub listen: Vec<SocketAddr>,
    pub transports: Vec<Transport>,
    /// Host written in our Via and Contact headers; defaults to the first
    /// listen address.
    pub public_host: Option<String>,
    /// Digest realm for agents.
    pub realm: String,
    /// Larger messages are refused (UDP: dropped or 513; TCP: connection
    /// closed).
    pub max_message_bytes: usize,
    pub user_agent: String,
    /// RFC 3261 T1 in milliseconds.
    pub t1_ms: u64,
    /// Maximum simultaneous TCP connections (accepted and opened).
    pub max_tcp_connections: usize,
    /// Maximum accepted TCP connections from one IPv4 address or IPv6 /64;
    /// `security.trusted` sources are exempt.
    pub max_tcp_connections_per_source: usize,
    /// A TCP connection with nothing received or sent this long is closed.
    pub tcp_idle_timeout_s: u64,
    /// A message must arrive whole within this long of its first byte
    /// (slow-loris), or the connection is closed.
    pub tcp_message_timeout_s: u64,
    /// A peer that does not take what we send within this long is not
    /// reading: its connection is closed (with a warning).
    pub tcp_send_timeout_s: u64,
    /// Simultaneous calls (inbound and outbound legs); beyond it new
    /// INVITEs get 503 with Retry-After.
    pub max_calls: usize,
    /// RFC 4028 session timer: the longest a call may go unrefreshed
    /// (offered in our INVITEs, a cap on what callers ask for); 0 turns
    /// session timers off.
    pub session_expires_s: u32,
    /// The shortest session interval accepted (RFC 4028 Min-SE, ≥ 90).
    pub min_se_s: u32,
    /// While the far end holds a call and no session timer runs, an
    /// in-dialog OPTIONS every this many seconds finds a peer that went
    /// away (408, 481 or no answer ends the call); 0 never pings.
    pub hold_ping_s: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5060))],
            transports: vec![Transport::Udp, Transport::Tcp],
            public_host: None,
            realm: "callgate".into(),
            max_message_bytes: 65_535,
            user_agent: format!("callgate/{}", env!("CARGO_PKG_VERSION")),
            t1_ms: 500,
            max_tcp_connections: 4096,
            max_tcp_connections_per_source: 128,
            tcp_idle_timeout_s: 600,
            tcp_message_timeout_s: 10,
            tcp_send_timeout_s: 10,
            max_calls: 2000,
            session_expires_s: 1800,
            min_se_s: 90,
            hold_ping_s: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    pub port_min: u16,
    pub port_max: u16,
    /// Address written in SDP `c=` lines: what callers and agents can reach.
    pub address: String,
    /// A leg whose peer sends no RTP for this long (while it should) is
    /// reported and the call ended.
    pub timeout_s: u64,
    /// The same while the peer holds the call (sendonly or inactive: it
    /// may send nothing at all), like Asterisk's `rtpholdtimeout`. Dead
    /// peers on hold are found by SIP (`sip.hold_ping_s`, session
    /// timers); this is the longest hold callgate lets run.
    pub hold_timeout_s: u64,
    /// Threads pacing outgoing RTP; 0 = one per core.
    pub pacer_threads: usize,
    /// Give the pacing threads real-time priority (SCHED_FIFO; needs root
    /// or CAP_SYS_NICE): steadier packet timing on a busy host.
    pub realtime_pacer: bool,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            port_min: 20000,
            port_max: 29999,
            address: "127.0.0.1".into(),
            timeout_s: 60,
            hold_timeout_s: 3600,
            pacer_threads: 0,
            realtime_pacer: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Bearer token for the API; the health check needs none.
    pub token: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: "change-me".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub dir: PathBuf,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: PathBuf::from("./data"),
        }
    }
}

/// Where callbacks and records are kept: empty `url` is the embedded
/// SQLite database in `data.dir` (one node); `postgres://…` a shared
/// PostgreSQL database (several nodes, see `[cluster]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub url: String,
    /// Connections to PostgreSQL per node.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: String::new(),
            pool_size: 8,
        }
    }
}

impl StoreConfig {
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }
}

/// This node among several on one PostgreSQL database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Unique per node; required with a PostgreSQL store.
    pub node_id: String,
    /// A callback this node claimed is another node's to resume this long
    /// after this node stopped renewing its lease (it died, or lost the
    /// database).
    pub lease_s: u64,
    /// How often the node renews its leases and writes its heartbeat.
    pub heartbeat_s: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            lease_s: 15,
            heartbeat_s: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    pub min_expires_s: u32,
    pub max_expires_s: u32,
    pub default_expires_s: u32,
    pub max_contacts_per_agent: usize,
    pub nonce_lifetime_s: u64,
    /// Digest challenges offered, one WWW-Authenticate each, in order of
    /// preference (RFC 8760). One MD5 challenge by default: baresip
    /// (libre) refuses a 401 holding any challenge it cannot do, and SIPp
    /// and older phones read only the first. An agent's own
    /// `digest_algorithms` replaces this list for that agent.
    pub digest_algorithms: Vec<String>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires_s: 60,
            max_expires_s: 3600,
            default_expires_s: 3600,
            max_contacts_per_agent: 5,
            nonce_lifetime_s: 300,
            digest_algorithms: vec!["MD5".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Authentication failures from one source IP within the window before
    /// that source is ignored for `auth_ban_s`.
    pub auth_fail_limit: u32,
    pub auth_fail_window_s: u64,
    pub auth_ban_s: u64,
    /// Requests per second one source may send before the excess is
    /// dropped (0 = unlimited). Responses to our own requests are never
    /// dropped by it.
    pub max_requests_per_source_per_s: u32,
    /// Sources never rate-limited or banned (load generators), as CIDR
    /// blocks. The dialer's trunk is always exempt.
    #[serde(deserialize_with = "typed::cidr")]
    pub trusted: Vec<crate::security::Cidr>,
}

impl Config {
    /// Sources never banned or rate-limited: `security.trusted` and the
    /// addresses of the dialer's trunk. Banning the trunk would drop the
    /// customer's answers to our own calls; it is also the one address an
    /// attacker would most like to get banned.
    pub fn exempt_sources(&self) -> Vec<crate::security::Cidr> {
        let mut v = self.security.trusted.clone();
        v.extend(
            self.dialer
                .outbound_targets()
                .into_iter()
                .map(|a| crate::security::Cidr::host(a.ip())),
        );
        v
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth_fail_limit: 5,
            auth_fail_window_s: 60,
            auth_ban_s: 300,
            max_requests_per_source_per_s: 50,
            trusted: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    /// Directory of `<name>.wav` prompt files.
    pub dir: PathBuf,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: PathBuf::from("prompts"),
        }
    }
}

/// A diagnostic number: answers, plays a prompt and logs every DTMF digit
/// it hears (like an "echo test" number on a PBX).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestNumberConfig {
    pub number: String,
    pub prompt: String,
    /// Hang up after this long.
    #[serde(default = "default_test_seconds")]
    pub max_seconds: u64,
    /// Hang up (BYE) as soon as the prompt has played.
    #[serde(default)]
    pub hangup_after_prompt: bool,
}

fn default_test_seconds() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub user: String,
    pub secret: String,
    /// Shown on the dashboard and in contact records.
    #[serde(default)]
    pub name: Option<String>,
    /// Which queues the agent works; none means the agent is never offered
    /// contacts.
    #[serde(default)]
    pub routing_profile: Option<String>,
    /// Seconds of after-contact work before the agent is available again.
    #[serde(default = "default_acw")]
    pub after_contact_work_s: u64,
    /// Digest challenges for this agent's REGISTERs instead of
    /// `registrar.digest_algorithms` (e.g. `["SHA-256"]` for a phone that
    /// does RFC 8760).
    #[serde(default)]
    pub digest_algorithms: Option<Vec<String>>,
}

fn default_acw() -> u64 {
    10
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowsConfig {
    /// Directory whose `*.toml` files are flows (needed once numbers or
    /// queues refer to flows).
    pub dir: Option<PathBuf>,
}

/// A dialled number and the inbound flow it runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    pub number: String,
    pub flow: String,
    /// Let the caller hear ringing this long before answering.
    #[serde(default)]
    pub ring_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// Waiting calls and callbacks together.
    #[serde(default = "default_max_contacts")]
    pub max_contacts: usize,
    /// Caller ID shown to customers called back from this queue.
    #[serde(default)]
    pub caller_id_name: Option<String>,
    #[serde(default)]
    pub caller_id_number: Option<String>,
    /// What waiting callers hear (a customer_queue flow); without one they
    /// hear `hold_music`.
    #[serde(default)]
    pub customer_queue_flow: Option<String>,
    /// Played to the agent before the customer is connected.
    #[serde(default)]
    pub agent_whisper_flow: Option<String>,
    /// Played to a called-back customer before the agent is connected.
    #[serde(default)]
    pub outbound_whisper_flow: Option<String>,
    #[serde(default = "default_hold_music")]
    pub hold_music: String,
    /// Refuse a second pending callback for the same number.
    #[serde(default)]
    pub dedupe_callbacks: bool,
    /// Hours of operation, e.g. ["mon-fri 09:00-17:00"]; empty = always
    /// open. Flows test them with Check queue status (metric "open").
    #[serde(default, deserialize_with = "typed::hours")]
    pub hours: Vec<crate::routing::hours::Span>,
    /// The hours' time zone as a fixed offset from UTC, in minutes.
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// The IANA time zone of `hours` and `callback_hours` (e.g.
    /// "America/New_York", daylight saving included); replaces
    /// `utc_offset_minutes`.
    #[serde(default, deserialize_with = "typed::time_zone")]
    pub time_zone: Option<jiff::tz::TimeZone>,
    /// When this queue's callbacks may be dialled, e.g.
    /// ["mon-fri 09:00-20:00"]; empty = any time. A callback due outside
    /// them waits for the next opening (its expiry still runs).
    #[serde(default, deserialize_with = "typed::hours")]
    pub callback_hours: Vec<crate::routing::hours::Span>,
    /// The estimated wait before any contact of this queue has reached an
    /// agent: seconds per contact in line, shared among the agents online.
    #[serde(default = "default_wait_cold_start_s")]
    pub wait_cold_start_s: u64,
    /// Answering-machine detection on this queue's callbacks, and what to
    /// do when a machine answers; absent: no detection.
    #[serde(default)]
    pub on_machine: Option<OnMachine>,
}

/// What a callback answered by a machine does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMachine {
    /// Hang up; the attempt counts like a ring-no-answer (retried while
    /// attempts remain).
    Retry,
    /// The agent is told, then bridged (to leave a message themselves).
    Connect,
    /// Wait for the greeting to end, leave the `machine_message` prompt,
    /// hang up; the callback is closed as attempted.
    Message,
}

impl QueueConfig {
    fn zone(&self) -> jiff::tz::TimeZone {
        self.time_zone.clone().unwrap_or_else(|| {
            let secs = self.utc_offset_minutes.saturating_mul(60);
            jiff::tz::Offset::from_seconds(secs)
                .map(jiff::tz::TimeZone::fixed)
                .unwrap_or(jiff::tz::TimeZone::UTC)
        })
    }

    /// Hours of operation.
    pub fn open_hours(&self) -> crate::routing::hours::Hours {
        crate::routing::hours::Hours::in_zone(self.hours.clone(), self.zone())
    }

    /// When callbacks may be dialled.
    pub fn callback_window(&self) -> crate::routing::hours::Hours {
        crate::routing::hours::Hours::in_zone(self.callback_hours.clone(), self.zone())
    }
}

fn default_wait_cold_start_s() -> u64 {
    120
}

fn default_max_contacts() -> usize {
    100
}

fn default_hold_music() -> String {
    "hold_music".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileQueue {
    pub queue: String,
    /// Lower is served first.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Seconds a contact must have waited before this profile's agents get it.
    #[serde(default)]
    pub delay_s: u64,
}

fn default_priority() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingProfileConfig {
    pub name: String,
    pub queues: Vec<ProfileQueue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// How long an agent's phone rings with an offer before it counts as
    /// missed.
    pub offer_timeout_s: u64,
    /// A missed agent becomes available again after this long (0: only
    /// through the API).
    pub missed_available_after_s: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            offer_timeout_s: 20,
            missed_available_after_s: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialerConfig {
    /// Country of local-format numbers and of callers' national numbers.
    pub country: String,
    /// Regions whose numbers may be dialled (None: the `country`).
    pub allowed_regions: Option<Vec<crate::phone::Region>>,
    /// Number types never dialled.
    pub blocked_types: Vec<crate::phone::NumberType>,
    /// Only numbers starting with one of these are dialled (empty: any).
    pub allowed_prefixes: Vec<String>,
    /// Never dialled.
    pub blocked_prefixes: Vec<String>,
    /// Request-URI of the outbound INVITE; `{number}` is the E.164 number.
    pub uri_template: typed::UriTemplate,
    /// Where outbound INVITEs are sent (the trunk), IP:port.
    pub target: SocketAddr,
    pub transport: Transport,
    /// Ring-no-answer: CANCEL after this long ringing.
    pub ring_timeout_s: u64,
    /// SIP statuses that count as "no answer" (retried).
    pub retry_statuses: Vec<u16>,
    /// Callbacks not connected this long after creation expire (seconds;
    /// 7 days by default).
    pub expiry_s: u64,
    /// Digest credentials if the trunk challenges (401/407).
    pub auth_user: Option<String>,
    pub auth_password: Option<String>,
}

impl DialerConfig {
    /// Every address callgate sends outbound calls to: the trunk target
    /// and the host of the Request-URI template when it is an address.
    /// Agents may never point offers there, and these sources are never
    /// banned or rate-limited (their responses are our calls').
    pub fn outbound_targets(&self) -> Vec<SocketAddr> {
        let mut out = vec![self.target];
        if let Ok(uri) = self.uri_template.render("+12015550123")
            && let Some(ip) = uri.host.as_ref().and_then(|h| h.ip())
        {
            let port = uri.port.unwrap_or(match uri.scheme {
                crate::sip::message::uri::Scheme::Sips => 5061,
                _ => 5060,
            });
            let a = SocketAddr::new(ip, port);
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

impl DialerConfig {
    /// The rules every number is checked against before it is dialled.
    pub fn dial_rules(&self) -> crate::phone::DialRules {
        let allowed_regions = match &self.allowed_regions {
            Some(list) => list.iter().map(|r| r.0).collect(),
            None => crate::phone::country(&self.country).into_iter().collect(),
        };
        crate::phone::DialRules {
            allowed_regions,
            blocked_types: self.blocked_types.clone(),
            allowed_prefixes: self.allowed_prefixes.clone(),
            blocked_prefixes: self.blocked_prefixes.clone(),
        }
    }
}

impl Default for DialerConfig {
    fn default() -> Self {
        DialerConfig {
            country: "US".into(),
            allowed_regions: None,
            blocked_types: crate::phone::NumberType::DEFAULT_BLOCKED.to_vec(),
            allowed_prefixes: vec!["+1".into()],
            blocked_prefixes: vec!["+1900".into(), "+1976".into()],
            uri_template: typed::UriTemplate::new("sip:{number}@127.0.0.1:5080")
                .unwrap_or_else(|e| unreachable!("the default template is valid: {e}")),
            target: SocketAddr::from(([127, 0, 0, 1], 5080)),
            transport: Transport::Udp,
            ring_timeout_s: 30,
            retry_statuses: vec![408, 480, 487],
            expiry_s: 7 * 86_400,
            auth_user: None,
            auth_password: None,
        }
    }
}
