//! callgate command line: run the gateway, or check a configuration.

use anyhow::Context;
use callgate::config::Overrides;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "callgate",
    version,
    about = "SIP/RTP contact gateway with queued callbacks"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "config/callgate.toml")]
    config: PathBuf,
    /// SIP listen address (UDP and TCP); repeat for several. Overrides sip.listen.
    #[arg(long = "sip-listen", global = true)]
    sip_listen: Vec<SocketAddr>,
    /// HTTP listen address. Overrides http.listen.
    #[arg(long = "http-listen", global = true)]
    http_listen: Option<SocketAddr>,
    /// Data directory (SQLite database). Overrides data.dir.
    #[arg(long = "data-dir", global = true)]
    data_dir: Option<PathBuf>,
    /// RTP port range, e.g. 30000-30999. Overrides rtp.port_min/port_max.
    #[arg(long = "rtp-ports", global = true, value_parser = parse_range)]
    rtp_ports: Option<(u16, u16)>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate a configuration file and everything it references; print
    /// every problem with file, line and key; exit non-zero on any.
    CheckConfig {
        /// The file to check (defaults to --config).
        file: Option<PathBuf>,
    },
    /// Show the queues and agents of a running gateway (its HTTP API:
    /// CALLGATE_URL and CALLGATE_TOKEN, or [http] of --config).
    Status,
    /// List or stop callbacks of a running gateway.
    Callbacks {
        #[command(subcommand)]
        command: CallbacksCommand,
    },
    /// Contact records of a running gateway.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Brings the database schema up to date (also done at start-up) and
    /// exits.
    Migrate,
}

#[derive(Subcommand)]
enum CallbacksCommand {
    /// Callbacks, newest first.
    List {
        /// scheduled, queued, offered, dialing, connected, failed, expired,
        /// stopped, or pending (the first four).
        #[arg(long)]
        state: Option<String>,
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Stop a callback (StopContact): it is never dialled.
    Stop {
        /// The callback's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Print contact records as JSON lines, oldest first.
    Export {
        /// From: 24h, 30m, 7d (ago), an RFC 3339 date or time, or epoch ms.
        #[arg(long)]
        since: String,
        /// Until (same forms).
        #[arg(long)]
        until: Option<String>,
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        /// The customer's number, E.164.
        #[arg(long)]
        number: Option<String>,
    },
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX")?;
    let a = a.trim().parse().map_err(|_| "bad MIN")?;
    let b = b.trim().parse().map_err(|_| "bad MAX")?;
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        sip_listen: (!cli.sip_listen.is_empty()).then(|| cli.sip_listen.clone()),
        http_listen: cli.http_listen,
        data_dir: cli.data_dir.clone(),
        rtp_ports: cli.rtp_ports,
    };
    let operator = match cli.command {
        Some(Command::Status) => Some(callgate::cli::Request::Status),
        Some(Command::Callbacks {
            command:
                CallbacksCommand::List {
                    ref state,
                    ref queue,
                    limit,
                },
        }) => Some(callgate::cli::Request::Callbacks {
            state: state.clone(),
            queue: queue.clone(),
            limit,
        }),
        Some(Command::Callbacks {
            command: CallbacksCommand::Stop { ref id },
        }) => Some(callgate::cli::Request::Stop { id: id.clone() }),
        Some(Command::Records {
            command:
                RecordsCommand::Export {
                    ref since,
                    ref until,
                    ref queue,
                    ref number,
                },
        }) => Some(callgate::cli::Request::Export {
            since: since.clone(),
            until: until.clone(),
            queue: queue.clone(),
            number: number.clone(),
        }),
        _ => None,
    };
    if let Some(req) = operator {
        return operator_command(&cli.config, req);
    }
    match cli.command {
        Some(Command::Status | Command::Callbacks { .. } | Command::Records { .. }) => {
            ExitCode::FAILURE
        }
        Some(Command::Migrate) => {
            let config = match callgate::config::load(&cli.config, &overrides) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            match callgate::runtime::open_store(&config) {
                Ok(_) if config.store.is_postgres() => {
                    println!(
                        "PostgreSQL {}: schema up to date",
                        callgate::runtime::redacted(&config.store.url)
                    );
                    ExitCode::SUCCESS
                }
                Ok(_) => {
                    println!("SQLite in {}: schema up to date", config.data.dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("callgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::CheckConfig { file }) => {
            let file = file.unwrap_or(cli.config);
            match callgate::runtime::load_all(&file, &overrides) {
                Ok(loaded) => {
                    for flow in loaded.flows.iter() {
                        for b in callgate::flow::load::unreachable_blocks(flow) {
                            eprintln!(
                                "{}: warning: block {b:?} is never reached",
                                flow.file.display()
                            );
                        }
                    }
                    match callgate::runtime::load_prompts(&loaded.config, &loaded.flows) {
                        Ok(p) => {
                            println!(
                                "{}: OK ({} flows, {} prompts)",
                                file.display(),
                                loaded.flows.len(),
                                p.len()
                            );
                            ExitCode::SUCCESS
                        }
                        Err(e) => {
                            eprintln!("{e:#}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Run) | None => {
            init_logging(&cli.log_format);
            let config = match callgate::runtime::load_all(&cli.config, &overrides) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            match run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("callgate: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// An operator command against a running gateway's API.
fn operator_command(config: &std::path::Path, req: callgate::cli::Request) -> ExitCode {
    let client = match callgate::cli::client(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("callgate: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("callgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match rt.block_on(callgate::cli::run(&client, req, &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("callgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(config: callgate::runtime::Loaded) -> anyhow::Result<()> {
    callgate::runtime::memory::limit_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if config.config.http.token == callgate::config::HttpConfig::default().token {
        // The shipped token is public: anyone who read the README has it.
        tracing::warn!("http.token is the shipped default: change it before exposing the API");
    }
    rt.block_on(async move {
        let running = callgate::runtime::start(config).await?;
        tracing::info!(sip_udp = ?running.bound.sip_udp, sip_tcp = ?running.bound.sip_tcp, "callgate started");
        // Tests and scripts wait for this exact line on stdout.
        println!("{}", running.bound.ready_line());
        shutdown_signal().await;
        // A second signal means now.
        tokio::spawn(async {
            shutdown_signal().await;
            tracing::warn!("second signal: exiting at once");
            std::process::exit(1);
        });
        if !running.shutdown().await {
            tracing::warn!("shutdown did not finish everything within its deadline");
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
