//! Command-line adapters around the core. `main.rs` only parses arguments and calls these.

pub mod batch;
pub mod check;
pub mod daemon;
mod error;
pub mod filter;
pub mod imap;
pub mod inspect;
pub mod pipe;
pub mod report;

use crate::config::Config;
use crate::core::policy::{AllowList, Heuristics, Limits, OpaqueLinks, Policy};
use crate::core::rules::ParamRules;
use crate::core::rules::Rules;
use crate::log::{Keep, KeepOriginals, LogConfig, LogTarget, Originals};
use std::path::{Path, PathBuf};

pub use error::{setting, Error};

/// Options every mode shares (global command-line flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// Extra rules file merged over the built-in rules (repeatable); a .json file is read as a
    /// ClearURLs catalog.
    #[arg(long = "rules", value_name = "FILE", global = true)]
    pub rules: Vec<PathBuf>,
    /// What to do with click trackers that cannot be unwrapped offline: keep them as they are,
    /// or mark them with a visible " [tracked]" and a title.
    /// [default: keep, or the config file's policy.opaque_links]
    #[arg(long, value_name = "keep|mark", global = true)]
    pub opaque_links: Option<OpaqueLinksArg>,
    /// Leave links alone (only pixels and fonts are removed).
    #[arg(long, global = true)]
    pub no_links: bool,
    /// authserv-id of our own Authentication-Results headers (repeatable). Default: the host
    /// that recorded the Received hop our MX added.
    #[arg(long = "authserv-id", value_name = "ID", global = true)]
    pub authserv_ids: Vec<String>,
    /// Host names of our own MX and relays, skipped when looking for the hop that handed the
    /// message to us (repeatable).
    #[arg(long = "own-host", value_name = "HOST", global = true)]
    pub own_hosts: Vec<String>,
}

/// Tracking log options (global command-line flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// The tracking log: a SQLite file or a postgres://user:pass@host/db URL. Default: [log]
    /// path of the config file, else ~/.local/state/trackless/log.sqlite
    /// (/var/lib/trackless/log.sqlite for the daemons).
    #[arg(long = "log", value_name = "PATH", global = true)]
    pub log: Option<PathBuf>,
    /// Do not write the tracking log.
    #[arg(long, global = true)]
    pub no_log: bool,
    /// Also log subjects (off by default: the log holds personal data).
    #[arg(long, global = true)]
    pub log_subject: bool,
    /// Also log recipient addresses (off by default).
    #[arg(long, global = true)]
    pub log_recipients: bool,
    /// Keep the original headers of tracked messages in the log, for evidence.
    #[arg(long, global = true)]
    pub keep_headers: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OpaqueLinksArg {
    #[default]
    Keep,
    Mark,
}

/// The configuration file and the global flags that override it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub config: Config,
    pub policy_args: PolicyArgs,
    pub log_args: LogArgs,
}

impl Settings {
    /// Read the configuration file: `path` (from `--config`), else the default one if it
    /// exists, else built-in defaults.
    pub fn load(
        path: Option<&Path>,
        policy_args: PolicyArgs,
        log_args: LogArgs,
    ) -> Result<Settings, String> {
        let config = match path.map(Path::to_path_buf).or_else(Config::default_path) {
            Some(p) => Config::load(&p).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        Ok(Settings {
            config,
            policy_args,
            log_args,
        })
    }

    /// The policy: config file, then flags (rules files add up; other flags win).
    pub fn policy(&self) -> Result<Policy, String> {
        policy(&self.config, &self.policy_args)
    }

    /// Where the log is and what it keeps. `daemon` picks the system default path;
    /// `explicit_only` (inspect) logs only when `--log` was given.
    pub fn log(&self, daemon: bool, explicit_only: bool) -> LogConfig {
        let (a, c) = (&self.log_args, &self.config.log);
        let on = !a.no_log
            && if explicit_only {
                a.log.is_some()
            } else {
                a.log.is_some() || c.enabled != Some(false)
            };
        let path = on.then(|| self.log_path(daemon));
        // Originals only for a log that is written: they are bounded by its retention.
        let originals = match (&path, c.keep_originals) {
            (Some(p), Some(KeepOriginals::Tracked)) => Originals::of(p, daemon),
            _ => None,
        };
        LogConfig {
            path,
            keep: Keep {
                subject: a.log_subject || c.subject == Some(true),
                recipients: a.log_recipients || c.recipients == Some(true),
                headers: a.keep_headers || c.headers == Some(true),
                originals,
            },
        }
    }

    /// The log to read (report) or write: a SQLite file or a PostgreSQL URL.
    pub fn log_path(&self, daemon: bool) -> LogTarget {
        match (&self.log_args.log, &self.config.log.path) {
            (Some(p), _) => LogTarget::from_path(p),
            (None, Some(p)) => LogTarget::parse(p),
            (None, None) => LogTarget::Sqlite(crate::log::store::default_path(daemon)),
        }
    }
}

/// Build the policy from the configuration file and command-line options.
pub fn policy(cfg: &Config, args: &PolicyArgs) -> Result<Policy, String> {
    let p = &cfg.policy;
    for f in &p.rules {
        if let Err(e) = std::fs::File::open(f) {
            return Err(format!("{}: {}: {e}", cfg.at("policy.rules"), f.display()));
        }
    }
    let files: Vec<&PathBuf> = p.rules.iter().chain(&args.rules).collect();
    let extra = ParamRules::new(p.tracking_params.clone(), p.tracking_param_prefixes.clone());
    let mut policy = if files.is_empty() && extra.is_empty() {
        Policy::default()
    } else {
        let mut rules = Rules::load(&files).map_err(|e| e.to_string())?;
        rules.params.merge(extra);
        Policy::with_rules(rules)
    };
    let opaque = args.opaque_links.map(|o| match o {
        OpaqueLinksArg::Keep => OpaqueLinks::Keep,
        OpaqueLinksArg::Mark => OpaqueLinks::Mark,
    });
    policy.opaque_links = setting(opaque, p.opaque_links, OpaqueLinks::default);
    policy.links = !args.no_links && p.links != Some(false);
    // Lists given as flags replace the file's list.
    let list = |flag: &[String], file: &[String]| {
        let flag = (!flag.is_empty()).then(|| flag.to_vec());
        setting(flag, Some(file.to_vec()), Vec::new)
    };
    policy.trust.authserv_ids = list(&args.authserv_ids, &p.authserv_ids);
    policy.trust.own_hosts = list(&args.own_hosts, &p.own_hosts);
    let h = Heuristics::default();
    policy.heuristics = Heuristics {
        pixels: p.pixel_heuristics.unwrap_or(h.pixels),
        pixel_max_px: p.pixel_max_px.unwrap_or(h.pixel_max_px),
    };
    let l = &cfg.limits;
    let d = Limits::default();
    policy.limits = Limits {
        max_size: l.max_size.map_or(d.max_size, |s| s.0),
        max_depth: l.max_depth.map_or(d.max_depth, |n| n.get()),
        html_memory: l.html_memory.map_or(d.html_memory, |s| s.0),
        max_time: l.max_time.map_or(d.max_time, |t| t.0),
        ..d
    };
    policy.allow = AllowList {
        senders: cfg.allow.senders.clone(),
        domains: cfg.allow.domains.clone(),
        require_dkim: cfg.allow.require_dkim.unwrap_or(true),
    };
    Ok(policy)
}
