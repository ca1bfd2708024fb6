//! Command-line adapters around the core. `main.rs` only parses arguments and calls these.

pub mod filter;
pub mod inspect;

use crate::core::policy::Policy;
use crate::rules::Rules;
use std::path::PathBuf;

/// Build the policy from command-line options.
pub fn policy(rules: &[PathBuf]) -> Result<Policy, String> {
    if rules.is_empty() {
        return Ok(Policy::default());
    }
    Rules::load(rules)
        .map(Policy::with_rules)
        .map_err(|e| e.to_string())
}
