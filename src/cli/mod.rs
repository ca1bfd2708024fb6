//! Command-line adapters around the core. `main.rs` only parses arguments and calls these.

pub mod filter;
pub mod inspect;

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
