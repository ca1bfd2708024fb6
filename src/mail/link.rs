//! What the link engine says about one link, and how the HTML and text engines ask for it:
//! the pipeline hands them a [`LinkJudge`], so that no engine imports another.

use crate::mail::outcome::Action;

/// What to do with one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkResult {
    pub action: Action,
    /// The URL to write instead (unwrapped or cleaned), when it differs.
    pub new_url: Option<String>,
    /// Rule ids of the decoders applied, outermost first.
    pub chain: Vec<String>,
    /// Rule that recognised the link (outermost wrapper, or the opaque rule).
    pub rule: Option<String>,
    pub vendor: Option<String>,
    /// Why a recognised link was kept, or which parameters were removed.
    pub detail: Option<String>,
    /// The link as written afterwards still goes through a click tracker: kept opaque, or
    /// unwrapped down to an inner wrapper that could not be read.
    pub still_tracked: bool,
}

/// Asked for every link an engine finds (entities decoded); `None` for links that are not
/// absolute http(s) URLs.
pub type LinkJudge<'a> = &'a dyn Fn(&str) -> Option<LinkResult>;

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

/// The marker `opaque_links = mark` puts after a tracked link, and the title prefix that
/// tells a second run the link is already marked.
pub const MARK_TEXT: &str = " [tracked]";
pub const MARK_TITLE: &str = "trackless: tracked link";
