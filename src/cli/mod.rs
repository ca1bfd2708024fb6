//! Command-line adapters around the core. `main.rs` only parses arguments and calls these.

pub mod batch;
pub mod daemon;
pub mod filter;
pub mod inspect;
pub mod pipe;
pub mod report;

use crate::core::policy::{OpaqueLinks, Policy};
use crate::rules::Rules;
use std::path::PathBuf;

/// Options every mode shares (global command-line flags).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// Extra rules file merged over the built-in rules (repeatable); a .json file is read as a
    /// ClearURLs catalog.
    #[arg(long = "rules", value_name = "FILE", global = true)]
    pub rules: Vec<PathBuf>,
    /// What to do with click trackers that cannot be unwrapped offline: keep them as they are,
    /// or mark them with a visible " [tracked]" and a title.
    #[arg(long, value_name = "keep|mark", default_value = "keep", global = true)]
    pub opaque_links: OpaqueLinksArg,
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
    /// The tracking log (SQLite). Default: $XDG_STATE_HOME/trackless/log.sqlite
    /// (~/.local/state/trackless/log.sqlite).
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

impl LogArgs {
    /// The log path to read or write.
    pub fn path(&self) -> PathBuf {
        self.log
            .clone()
            .unwrap_or_else(|| crate::log::store::default_path(false))
    }

    /// Logging as a one-shot command does it: on by default unless `--no-log`; with
    /// `explicit_only`, only when `--log` was given (inspect).
    pub fn config(&self, explicit_only: bool) -> crate::log::LogConfig {
        let on = !self.no_log && (!explicit_only || self.log.is_some());
        crate::log::LogConfig {
            path: on.then(|| self.path()),
            keep: crate::log::Keep {
                subject: self.log_subject,
                recipients: self.log_recipients,
                headers: self.keep_headers,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OpaqueLinksArg {
    #[default]
    Keep,
    Mark,
}

/// Build the policy from command-line options.
pub fn policy(args: &PolicyArgs) -> Result<Policy, String> {
    let mut policy = if args.rules.is_empty() {
        Policy::default()
    } else {
        Rules::load(&args.rules)
            .map(Policy::with_rules)
            .map_err(|e| e.to_string())?
    };
    policy.opaque_links = match args.opaque_links {
        OpaqueLinksArg::Keep => OpaqueLinks::Keep,
        OpaqueLinksArg::Mark => OpaqueLinks::Mark,
    };
    policy.links = !args.no_links;
    policy.trust.authserv_ids = args.authserv_ids.clone();
    policy.trust.own_hosts = args.own_hosts.clone();
    Ok(policy)
}
