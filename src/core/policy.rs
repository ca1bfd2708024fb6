//! What the filter does and within which bounds. Built once, shared by every message.

use crate::mail::trust::Trust;
use crate::rules::Rules;
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 64 << 20,
            max_depth: 32,
            html_memory: 32 << 20,
            max_time: Duration::from_secs(10),
        }
    }
}

/// What to do with click trackers whose destination cannot be recovered offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpaqueLinks {
    /// Leave the link as it is (it is still recorded).
    #[default]
    Keep,
    /// Add a visible ` [tracked]` marker after the link and a `title` on it.
    Mark,
}

/// Pixel detection by shape (remote images nobody can see), besides the open-tracking rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Heuristics {
    /// Judge remote images by their size and CSS at all. Off: only rule matches are pixels.
    pub pixels: bool,
    /// Largest width/height (CSS px) that still counts as invisible.
    pub pixel_max_px: f32,
}

impl Default for Heuristics {
    fn default() -> Self {
        Heuristics {
            pixels: true,
            pixel_max_px: 1.0,
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
