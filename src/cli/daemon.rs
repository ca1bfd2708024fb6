//! `trackless milter` (and later the SMTP/LMTP content filters): set up logging, the shared
//! state, the listener, and run until SIGTERM.

use super::{LogArgs, PolicyArgs};
use crate::log::{LogWriter, WriterConfig};
use crate::serve::listen::{self, ListenAddr};
use crate::serve::{Overload, Shared};
use std::sync::Arc;
use std::time::Duration;

/// Options every daemon shares.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Where to listen: unix:/path or inet:127.0.0.1:port (loopback by default).
    #[arg(long, value_name = "ADDR")]
    pub listen: ListenAddr,
    /// Mode of a unix socket (the MTA's group must be able to connect).
    #[arg(long, value_name = "OCTAL", default_value = "0660", value_parser = listen::parse_mode)]
    pub socket_mode: u32,
    /// Messages rewritten at the same time (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Simultaneous MTA connections.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_connections: usize,
    /// How long a message may wait for a free worker (e.g. 10s) before --on-overload applies.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub queue_wait: String,
    /// When every worker is busy: pass the message on unchanged, or answer a temporary failure.
    #[arg(long, value_enum, default_value = "accept")]
    pub on_overload: Overload,
    /// Delete log entries older than this (e.g. 180d), checked at start and daily.
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<String>,
}

/// Build what every daemon needs: the shared state (policy, workers, log writer).
pub fn shared(
    args: &DaemonArgs,
    policy_args: &PolicyArgs,
    log_args: &LogArgs,
) -> Result<Arc<Shared>, String> {
    let policy = super::policy(policy_args)?;
    let retention = args
        .retention
        .as_deref()
        .map(|r| {
            crate::log::time::parse_duration(r)
                .ok_or(format!("--retention {r:?}: use a duration like 180d"))
        })
        .transpose()?
        .map(|s| Duration::from_secs(s as u64));
    let log = (!log_args.no_log).then(|| {
        let path = log_args
            .log
            .clone()
            .unwrap_or_else(|| crate::log::store::default_path(true));
        LogWriter::spawn(WriterConfig {
            path,
            capacity: 10_000,
            retention,
        })
    });
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let reload_args = policy_args.clone();
    let reloader: crate::serve::Reloader = Box::new(move || super::policy(&reload_args));
    let keep = log_args.config(false).keep;
    let queue_wait = crate::log::time::parse_duration(&args.queue_wait).ok_or(format!(
        "--queue-wait {:?}: use a duration like 10s",
        args.queue_wait
    ))?;
    let mut shared = Shared::new(policy, workers, args.on_overload, log, keep, Some(reloader));
    shared.queue_wait = Duration::from_secs(queue_wait as u64);
    Ok(Arc::new(shared))
}

pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRACKLESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// `trackless milter`: returns the exit status.
pub fn milter(args: &DaemonArgs, policy_args: &PolicyArgs, log_args: &LogArgs) -> i32 {
    init_tracing();
    let shared = match shared(args, policy_args, log_args) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return 1;
        }
    };
    let result = rt.block_on(async {
        let listener = listen::bind(&args.listen, args.socket_mode)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", args.listen)))?;
        tracing::info!(listen = %args.listen, "trackless milter ready");
        crate::serve::milter::run(listener, shared.clone(), args.max_connections).await
    });
    if let ListenAddr::Unix(p) = &args.listen {
        let _ = std::fs::remove_file(p);
    }
    // Flush the tracking log before exiting.
    drop(rt);
    if let Ok(shared) = Arc::try_unwrap(shared) {
        drop(shared);
    }
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "milter failed");
            1
        }
    }
}

/// Options of the SMTP/LMTP content filter.
#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Where filtered mail goes: smtp://127.0.0.1:10026, lmtp://host:port, lmtp:unix:/path.
    #[arg(long, value_name = "TARGET")]
    pub forward: crate::serve::forward::Target,
    /// Name used in the greeting and EHLO/LHLO (default: the host name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Largest message accepted, in bytes (advertised as SIZE). Messages over the rewrite limit
    /// but under this one are handed on unchanged.
    #[arg(long, default_value_t = 100 << 20)]
    pub max_size: usize,
    #[arg(long, default_value_t = 1000)]
    pub max_recipients: usize,
    /// Idle time allowed between commands (and per read in DATA), e.g. 300s.
    #[arg(long, value_name = "DURATION", default_value = "300s")]
    pub timeout: String,
    /// Time allowed for each step with the downstream server, e.g. 60s.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub downstream_timeout: String,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `trackless smtp` / `trackless lmtp`: returns the exit status.
pub fn content_filter(
    proto: crate::serve::smtp::Proto,
    args: &FilterArgs,
    policy_args: &PolicyArgs,
    log_args: &LogArgs,
) -> i32 {
    init_tracing();
    let dur = |s: &str, what: &str| {
        crate::log::time::parse_duration(s)
            .map(|s| Duration::from_secs(s as u64))
            .ok_or(format!("--{what} {s:?}: use a duration like 300s"))
    };
    let setup = (|| {
        let shared = shared(&args.daemon, policy_args, log_args)?;
        let timeout = dur(&args.timeout, "timeout")?;
        let cfg = crate::serve::smtp::ServerConfig {
            proto,
            hostname: args.hostname.clone().unwrap_or_else(hostname),
            max_size: args.max_size,
            max_recipients: args.max_recipients,
            command_timeout: timeout,
            data_timeout: timeout,
            downstream_timeout: dur(&args.downstream_timeout, "downstream-timeout")?,
            forward: args.forward.clone(),
        };
        Ok::<_, String>((shared, Arc::new(cfg)))
    })();
    let (shared, cfg) = match setup {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return 1;
        }
    };
    let listen = args.daemon.listen.clone();
    let result = rt.block_on(async {
        let listener = listen::bind(&listen, args.daemon.socket_mode)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{listen}: {e}")))?;
        tracing::info!(listen = %listen, forward = %cfg.forward, "trackless {} filter ready", if proto == crate::serve::smtp::Proto::Smtp { "SMTP" } else { "LMTP" });
        let shutdown = crate::serve::signals(shared.clone());
        crate::serve::smtp::serve(listener, shared.clone(), cfg, args.daemon.max_connections, shutdown).await
    });
    if let ListenAddr::Unix(p) = &listen {
        let _ = std::fs::remove_file(p);
    }
    drop(rt);
    drop(shared);
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "content filter failed");
            1
        }
    }
}
