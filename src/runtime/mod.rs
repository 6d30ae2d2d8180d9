//! The asynchronous edge: binds sockets, loads prompts, starts the media
//! engine and the SIP core task, and wires the sans-IO parts to the
//! network and the clock.

pub mod bind;
pub mod loaded;
pub mod memory;
pub mod rlimit;
pub mod shutdown;
pub mod sip_core;

use crate::app::App;
use crate::call::{LocalSip, SipHandle};
use crate::centre::Centre;
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::flow::FlowSet;
use crate::media::engine::{MediaConfig, MediaEngine};
use crate::media::prompt::PromptLibrary;
use crate::registrar::Bindings;
use crate::store::{PgOptions, PgStore, SqliteStore, Store};
use anyhow::Context;
pub use loaded::{Loaded, load_all};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Addresses actually bound (ports may have been 0 in the config).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub sip_udp: Vec<SocketAddr>,
    pub sip_tcp: Vec<SocketAddr>,
    pub http: Option<SocketAddr>,
}

impl Bound {
    /// The line printed on stdout once callgate is ready; tests wait for it.
    pub fn ready_line(&self) -> String {
        let join = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "callgate ready sip_udp={} sip_tcp={} http={}",
            join(&self.sip_udp),
            join(&self.sip_tcp),
            self.http.map(|a| a.to_string()).unwrap_or_default()
        )
    }
}

/// A running gateway.
pub struct Running {
    pub bound: Bound,
    pub bindings: Bindings,
    pub app: Arc<App>,
    pub core: tokio::task::JoinHandle<()>,
}

/// Loads every prompt the configuration uses; errors name each file.
pub fn load_prompts(config: &Config, flows: &FlowSet) -> anyhow::Result<PromptLibrary> {
    let names = App::prompt_names(config, flows);
    PromptLibrary::load(&config.prompts.dir, names.iter().map(String::as_str)).map_err(|errors| {
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("prompts could not be loaded:\n{}", text.join("\n"))
    })
}

/// Opens the configured store, bringing its schema up to date: SQLite in
/// `data.dir`, or PostgreSQL at `store.url`.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if !config.store.is_postgres() {
        let store = SqliteStore::open(&config.data.dir)
            .with_context(|| format!("opening the database in {}", config.data.dir.display()))?;
        return Ok(Arc::new(store));
    }
    let opts = PgOptions {
        url: config.store.url.clone(),
        node_id: config.cluster.node_id.clone(),
        lease_ms: (config.cluster.lease_s as i64) * 1000,
        pool_size: config.store.pool_size,
    };
    let store = PgStore::connect(&opts).with_context(|| {
        format!(
            "opening the PostgreSQL database {}",
            redacted(&config.store.url)
        )
    })?;
    tracing::info!(
        node = %opts.node_id,
        schema = store.schema_version(),
        "PostgreSQL store ready"
    );
    Ok(Arc::new(store))
}

/// A database URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(c) => {
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            let ports: Vec<String> = c.get_ports().iter().map(|p| p.to_string()).collect();
            format!(
                "{}@{}:{}/{}",
                c.get_user().unwrap_or(""),
                hosts.join(","),
                ports.join(","),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// Binds everything and starts the tasks.
pub async fn start(loaded: Loaded) -> anyhow::Result<Running> {
    let Loaded { config, flows } = loaded;
    rlimit::raise_and_log(config.sip.max_tcp_connections);
    memory::spawn_trimmer(Duration::from_secs(10));
    let prompts = load_prompts(&config, &flows)?;
    crate::phone::warm_up();
    let store = open_store(&config)?;
    let media = MediaEngine::new(
        MediaConfig {
            address: config
                .rtp
                .address
                .parse()
                .context("rtp.address is not an IP address")?,
            port_min: config.rtp.port_min,
            port_max: config.rtp.port_max,
            rtp_timeout: Duration::from_secs(config.rtp.timeout_s),
            rtp_hold_timeout: Duration::from_secs(config.rtp.hold_timeout_s),
            realtime_pacer: config.rtp.realtime_pacer,
            pacer_threads: match config.rtp.pacer_threads {
                0 => std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                n => n,
            },
        },
        prompts,
    )
    .context("starting the media engine")?;
    let sockets = bind::bind_sip(&config).await?;
    let bindings = Bindings::new();
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    let bound = Bound {
        http: http.local_addr().ok(),
        sip_udp: sockets
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect(),
        sip_tcp: sockets
            .tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect(),
    };
    let endpoint = Endpoint::new(&config, bindings.clone(), Instant::now());
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let local = Arc::new(LocalSip {
        udp: bound.sip_udp.clone(),
        tcp: bound.sip_tcp.clone(),
        public_host: config.sip.public_host.clone(),
        user_agent: config.sip.user_agent.clone(),
        session_timer: crate::sip::dialog::session_timer::Limits {
            session_expires: config.sip.session_expires_s,
            min_se: config.sip.min_se_s,
        },
        hold_ping: (config.sip.hold_ping_s > 0)
            .then(|| Duration::from_secs(config.sip.hold_ping_s)),
    });
    let sip = SipHandle::new(cmd_tx, endpoint.call_ids(), local);
    let config = Arc::new(config);
    let media = Arc::new(media);
    let centre = Arc::new(Centre::new(
        config.clone(),
        media.clone(),
        sip.clone(),
        bindings.clone(),
        store,
        flows,
    ));
    let closed = centre
        .close_interrupted_records()
        .context("closing interrupted contact records")?;
    if closed > 0 {
        tracing::info!(
            closed,
            "contact records of calls cut short marked interrupted"
        );
    }
    let restored = centre.restore_callbacks().context("restoring callbacks")?;
    tracing::info!(restored, "callbacks restored from the database");
    crate::centre::dispatch::spawn(centre.clone());
    centre.spawn_database_probe();
    crate::centre::cluster::spawn_keeper(
        centre.clone(),
        crate::store::NodeInfo {
            sip: bound
                .sip_udp
                .first()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            http: bound.http.map(|a| a.to_string()).unwrap_or_default(),
            started_ms: crate::centre::now_ms(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    );
    let app = Arc::new(App {
        config: config.clone(),
        media,
        sip,
        centre,
        stats: endpoint.stats(),
    });
    crate::http::spawn(app.clone(), http);
    let core = sip_core::spawn(&config, sockets, endpoint, cmd_rx, app.clone());
    Ok(Running {
        bound,
        bindings,
        app,
        core,
    })
}
