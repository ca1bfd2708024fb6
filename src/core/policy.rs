//! What the filter does and within which bounds. Built once, shared by every message.

use crate::core::rules::Rules;
pub use crate::html::pixel::Heuristics;
pub use crate::mail::link::OpaqueLinks;
use crate::mail::trust::Trust;
use std::sync::Arc;
use std::time::Duration;

/// Bounds on the work done for one message. Beyond them the message passes through unchanged
/// with a `skip` finding that says which bound was hit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Messages larger than this are passed through untouched.
    pub max_size: usize,
    /// Deepest MIME nesting (multiparts and nested messages) we walk.
    pub max_depth: usize,
    /// Memory lol_html may use for one part.
    pub html_memory: usize,
    /// Wall-clock time for one message.
    pub max_time: Duration,
    /// Encoded HTML parts at least this large are decoded, rewritten and encoded again a
    /// piece at a time (less memory; the same bytes). Not a setting: tests lower it to run
    /// every part through that path.
    pub stream_above: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 64 << 20,
            max_depth: 32,
            html_memory: 32 << 20,
            max_time: Duration::from_secs(10),
            stream_above: 4 << 20,
        }
    }
}

/// Senders whose mail is not rewritten at all (still attributed and logged as allow-listed).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    /// Exact addresses (compared case-insensitively).
    pub senders: Vec<String>,
    /// Domains; a domain also covers its sub-domains.
    pub domains: Vec<String>,
    /// Only believe the From address when one of our trusted Authentication-Results headers
    /// shows `dkim=pass` for its domain (or a parent of it). Off: the From header alone decides,
    /// and anyone can forge it.
    pub require_dkim: bool,
}

impl AllowList {
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty() && self.domains.is_empty()
    }
}

/// Everything `neutralise` needs besides the message.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: Arc<Rules>,
    pub limits: Limits,
    pub opaque_links: OpaqueLinks,
    /// Rewrite links at all (unwrap, strip parameters, record). Off: only pixels and fonts.
    pub links: bool,
    /// Which Received hop and Authentication-Results headers ESP attribution believes.
    pub trust: Trust,
    pub heuristics: Heuristics,
    pub allow: AllowList,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rules: Rules::embedded(),
            limits: Limits::default(),
            opaque_links: OpaqueLinks::Keep,
            links: true,
            trust: Trust::default(),
            heuristics: Heuristics::default(),
            allow: AllowList::default(),
        }
    }
}

impl Policy {
    pub fn with_rules(rules: Rules) -> Policy {
        Policy {
            rules: Arc::new(rules),
            ..Policy::default()
        }
    }
}
