//! `trackless milter` (and later the SMTP/LMTP content filters): set up logging, the shared
//! state, the listener, and run until SIGTERM.

use super::{setting, Error, Settings};
use crate::config::values::parse_duration;
use crate::config::{Config, DaemonSection, FilterSection, LogSection};
use crate::core::policy::Policy;
use crate::log::{LogWriter, WriterConfig};
use crate::serve::forward::Target;
use crate::serve::listen::{self, ListenAddr};
use crate::serve::smtp::Proto;
use crate::serve::{Overload, Shared};
use std::sync::Arc;
use std::time::Duration;

/// Options every daemon shares. Each falls back to the daemon's section of the config file
/// (`[milter]`, `[smtp]`, `[lmtp]`), then to the default shown.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DaemonArgs {
    /// Where to listen: unix:/path or inet:127.0.0.1:port (loopback by default).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<ListenAddr>,
    /// Mode of a unix socket (the MTA's group must be able to connect) [default: 0660]
    #[arg(long, value_name = "OCTAL", value_parser = listen::parse_mode)]
    pub socket_mode: Option<u32>,
    /// Messages rewritten at the same time [default: the number of CPUs]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Simultaneous MTA connections [default: 100]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// How long a message may wait for a free worker before --on-overload applies [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub queue_wait: Option<Duration>,
    /// When every worker is busy: pass the message on unchanged, or answer a temporary
    /// failure [default: accept]
    #[arg(long, value_enum)]
    pub on_overload: Option<Overload>,
    /// Delete log entries older than this (e.g. 180d), checked at start and daily.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retention: Option<Duration>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9567) [default: off]
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// A daemon's effective settings: flags, then config file, then defaults.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    pub listen: ListenAddr,
    pub socket_mode: u32,
    pub workers: usize,
    pub max_connections: usize,
    pub queue_wait: Duration,
    pub on_overload: Overload,
    pub retention: Option<Duration>,
    pub metrics: Option<std::net::SocketAddr>,
}

impl DaemonSettings {
    /// `name` is the config section (`milter`, `smtp`, `lmtp`), for messages.
    pub fn resolve(
        name: &str,
        args: &DaemonArgs,
        section: &DaemonSection,
        log: &LogSection,
    ) -> Result<DaemonSettings, String> {
        let listen = args
            .listen
            .clone()
            .or_else(|| section.listen.as_ref().map(|l| l.0.clone()))
            .ok_or(format!(
                "no listening address: give --listen or set listen in [{name}] of the config file"
            ))?;
        Ok(DaemonSettings {
            listen,
            socket_mode: setting(args.socket_mode, section.socket_mode.map(|m| m.0), || 0o660),
            workers: setting(args.workers, section.workers.map(|n| n.get()), || {
                std::thread::available_parallelism().map_or(2, |n| n.get())
            })
            .max(1),
            max_connections: setting(
                args.max_connections,
                section.max_connections.map(|n| n.get()),
                || 100,
            )
            .max(1),
            queue_wait: setting(args.queue_wait, section.queue_wait.map(|d| d.0), || {
                Duration::from_secs(10)
            }),
            on_overload: setting(args.on_overload, section.on_overload, Overload::default),
            retention: args.retention.or(log.retention.map(|d| d.0)),
            metrics: args.metrics.or(section.metrics.as_ref().map(|m| m.0)),
        })
    }
}

/// Build what every daemon needs: the shared state (policy, workers, log writer).
pub fn shared(
    d: &DaemonSettings,
    settings: &Settings,
    policy: Policy,
) -> Result<Arc<Shared>, Error> {
    let log_cfg = settings.log(true, false);
    let log = log_cfg.path.clone().map(|path| {
        LogWriter::spawn(WriterConfig {
            capacity: settings.config.log.queue.map_or(10_000, |q| q.get()),
            retention: d.retention,
            // Swept by retention whether or not originals are kept now (they may have been).
            originals: crate::log::Originals::of(&path, true),
            path,
        })
    });
    // SIGHUP re-reads the config file (policy, allow-list, limits, rules) and the rules files.
    let source = settings.config.source.clone();
    let policy_args = settings.policy_args.clone();
    let reloader: crate::serve::Reloader = Box::new(move || {
        let cfg = match &source {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        super::policy(&cfg, &policy_args)
    });
    let mut shared = Shared::new(
        policy,
        d.workers,
        d.on_overload,
        log,
        log_cfg.keep,
        Some(reloader),
    )
    .map_err(|e| Error::Failed(format!("cannot start the rewrite threads: {e}")))?;
    shared.queue_wait = d.queue_wait;
    Ok(Arc::new(shared))
}

/// The daemons' diagnostics on stderr, at the level TRACKLESS_LOG names (error, warn, info,
/// debug, trace, off; default info). A plain level, not per-module directives: the directive
/// parser would pull a second regex engine configuration into every process, and with it a
/// DFA built for each rule pattern at start-up.
pub fn init_tracing() {
    let level = std::env::var("TRACKLESS_LOG")
        .ok()
        .and_then(|v| {
            v.trim()
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .ok()
        })
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Bind the metrics listener, if one is configured, and serve it in the background.
async fn start_metrics(
    addr: Option<std::net::SocketAddr>,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let listener = crate::serve::metrics::bind(addr).await?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics listener is not on loopback");
    }
    let s = shared.clone();
    tokio::spawn(crate::serve::metrics::serve(
        listener,
        Arc::new(move || s.render_metrics()),
    ));
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    Ok(())
}

/// The daemons' runtime. Its threads only move protocol bytes (rewrites run on the rewrite
/// threads, `workers` of them), so one thread per four CPUs is plenty: with one per CPU,
/// as tokio starts by default, the idle ones were woken and put back to sleep around every
/// message (~0.15 ms of system time per message with the milter on 2 CPUs).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cpus / 4).max(1))
        .enable_all()
        .build()
}

/// Run a daemon to the end: bind its listener (and the metrics one), serve until SIGTERM or
/// SIGINT (SIGHUP reloads the configuration meanwhile), remove its unix socket, flush the
/// tracking log. `serve` gets the listener, the shared state and the future that completes
/// when it must stop.
fn run_daemon<F, Fut>(
    d: &DaemonSettings,
    shared: Arc<Shared>,
    name: &str,
    serve: F,
) -> Result<(), Error>
where
    F: FnOnce(listen::Listener, Arc<Shared>, Shutdown) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let rt = runtime().map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    let result = rt.block_on(async {
        let listener = listen::bind(&d.listen, d.socket_mode)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", d.listen)))?;
        start_metrics(d.metrics, &shared).await?;
        tracing::info!(listen = %d.listen, "trackless {name} ready");
        let shutdown = Box::pin(crate::serve::signals(shared.clone()));
        serve(listener, shared.clone(), shutdown).await
    });
    if let ListenAddr::Unix(p) = &d.listen {
        let _ = std::fs::remove_file(p);
    }
    // Stop the tasks (they hold the shared state), then flush the tracking log.
    drop(rt);
    drop(shared);
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(())
        }
        Err(e) => Err(Error::Failed(format!("{name} failed: {e}"))),
    }
}

/// Completes when the daemon must stop (SIGTERM, SIGINT).
type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// `trackless milter`.
pub fn milter(args: &DaemonArgs, settings: &Settings, policy: Policy) -> Result<(), Error> {
    init_tracing();
    let cfg = &settings.config;
    let d = DaemonSettings::resolve("milter", args, &cfg.milter, &cfg.log).map_err(Error::Usage)?;
    let shared = shared(&d, settings, policy)?;
    let max = d.max_connections;
    run_daemon(&d, shared, "milter", |l, s, stop| {
        crate::serve::milter::run_until(l, s, max, stop)
    })
}

/// Options of the SMTP/LMTP content filter; each falls back to `[smtp]`/`[lmtp]` of the config
/// file, then to the default shown.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Where filtered mail goes: smtp://127.0.0.1:10026, lmtp://host:port, lmtp:unix:/path.
    #[arg(long, value_name = "TARGET")]
    pub forward: Option<Target>,
    /// Name used in the greeting and EHLO/LHLO [default: the host name]
    #[arg(long)]
    pub hostname: Option<String>,
    /// Largest message accepted, in bytes (advertised as SIZE). Messages over the rewrite limit
    /// but under this one are handed on unchanged [default: 100M]
    #[arg(long, value_name = "SIZE", value_parser = crate::config::values::parse_size)]
    pub max_size: Option<usize>,
    /// Recipients accepted per transaction [default: 1000]
    #[arg(long, value_name = "N")]
    pub max_recipients: Option<usize>,
    /// Idle time allowed between commands (and per read in DATA) [default: 300s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Time allowed for each step with the downstream server [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub downstream_timeout: Option<Duration>,
}

/// A content filter's effective settings.
#[derive(Debug, Clone)]
pub struct FilterSettings {
    pub daemon: DaemonSettings,
    pub server: crate::serve::smtp::ServerConfig,
}

impl FilterSettings {
    pub fn resolve(
        proto: Proto,
        args: &FilterArgs,
        cfg: &Config,
    ) -> Result<FilterSettings, String> {
        let (name, section): (&str, &FilterSection) = match proto {
            Proto::Smtp => ("smtp", &cfg.smtp),
            Proto::Lmtp => ("lmtp", &cfg.lmtp),
        };
        let daemon = DaemonSettings::resolve(name, &args.daemon, &section.daemon(), &cfg.log)?;
        let forward = args
            .forward
            .clone()
            .or_else(|| section.forward.as_ref().map(|f| f.0.clone()))
            .ok_or(format!(
                "no downstream: give --forward or set forward in [{name}] of the config file"
            ))?;
        let timeout = setting(args.timeout, section.timeout.map(|d| d.0), || {
            Duration::from_secs(300)
        });
        let server = crate::serve::smtp::ServerConfig {
            proto,
            hostname: setting(args.hostname.clone(), section.hostname.clone(), hostname),
            max_size: setting(args.max_size, section.max_size.map(|s| s.0), || 100 << 20),
            max_recipients: setting(
                args.max_recipients,
                section.max_recipients.map(|n| n.get()),
                || 1000,
            )
            .max(1),
            command_timeout: timeout,
            data_timeout: timeout,
            downstream_timeout: setting(
                args.downstream_timeout,
                section.downstream_timeout.map(|d| d.0),
                || Duration::from_secs(60),
            ),
            forward,
        };
        Ok(FilterSettings { daemon, server })
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `trackless smtp` / `trackless lmtp`.
pub fn content_filter(
    proto: Proto,
    args: &FilterArgs,
    settings: &Settings,
    policy: Policy,
) -> Result<(), Error> {
    init_tracing();
    let f = FilterSettings::resolve(proto, args, &settings.config).map_err(Error::Usage)?;
    let shared = shared(&f.daemon, settings, policy)?;
    let name = if proto == Proto::Smtp {
        "SMTP filter"
    } else {
        "LMTP filter"
    };
    tracing::info!(forward = %f.server.forward, "trackless {name}: filtered mail goes to the downstream server");
    let max = f.daemon.max_connections;
    let cfg = Arc::new(f.server);
    run_daemon(&f.daemon, shared, name, |l, s, stop| {
        crate::serve::smtp::serve(l, s, cfg, max, stop)
    })
}
