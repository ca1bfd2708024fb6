//! What `neutralise` returns: the (possibly rewritten) bytes and everything it found.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// What sort of tracker a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An open-tracking beacon: `<img>`, `<input type=image>`, `background=`, CSS `url()`.
    Pixel,
    /// An invisible layout image with a static URL (`spacer.gif`, one URL repeated): removed
    /// because it is remote and unseen, but not counted as tracking.
    Spacer,
    /// A link (`<a href>`, `<area href>`, a URL in plain text).
    Link,
    /// A remote font (stylesheet link, resource hint, `@import`, `@font-face`).
    Font,
    /// A part or the whole message was left alone; `reason` says why.
    Skip,
}

/// What a remote resource is to the HTML that loads it on opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// `<img src>`, `<input type=image src>`.
    Image,
    /// A candidate of `srcset` (`<img>`, `<picture><source>`).
    Srcset,
    /// The `background` attribute.
    Background,
    /// CSS `url()` in a declaration (style attribute or stylesheet).
    Css,
    /// A stylesheet: `<link rel=stylesheet href>`, CSS `@import`.
    Stylesheet,
    /// A font: `@font-face` `src`, a font service's stylesheet.
    Font,
    /// `<video poster>`.
    Poster,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Image => "image",
            Resource::Srcset => "srcset",
            Resource::Background => "background",
            Resource::Css => "css",
            Resource::Stylesheet => "stylesheet",
            Resource::Font => "font",
            Resource::Poster => "poster",
        }
    }
}

/// Remote hosts the message's HTML would contact on opening, as written by the sender: one
/// entry per host, kind, fate and token, with how many URLs. `removed: false` entries are
/// what the message still loads after the rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// Lowercased, without port or user info.
    pub host: String,
    pub kind: Resource,
    /// trackless took these URLs out.
    pub removed: bool,
    /// The URLs carry a per-recipient token (an e-mail address, or a long opaque value mixing
    /// letters and digits in a query value, a path segment or an image name: `mail::token`).
    pub token: bool,
    pub count: usize,
}

/// At most this many distinct entries per message (each names a host, kind, fate, token): a
/// message with more is listed up to there.
pub const REMOTE_MAX: usize = 1000;

/// Merge entries with the same host, kind, fate and token (counts added), sorted by those.
pub fn merge_remote(list: &mut Vec<Remote>) {
    list.sort_by(|a, b| {
        (&a.host, a.kind, a.removed, a.token).cmp(&(&b.host, b.kind, b.removed, b.token))
    });
    list.dedup_by(|next, kept| {
        let same = next.host == kept.host
            && next.kind == kept.kind
            && next.removed == kept.removed
            && next.token == kept.token;
        if same {
            kept.count += next.count;
        }
        same
    });
    list.truncate(REMOTE_MAX);
}

/// What was done about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Removed,
    Unwrapped,
    Cleaned,
    KeptOpaque,
    Marked,
    Untouched,
    Skipped,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Removed => "removed",
            Action::Unwrapped => "unwrapped",
            Action::Cleaned => "cleaned",
            Action::KeptOpaque => "kept-opaque",
            Action::Marked => "marked",
            Action::Untouched => "untouched",
            Action::Skipped => "skipped",
        }
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pixel => "pixel",
            Kind::Spacer => "spacer",
            Kind::Link => "link",
            Kind::Font => "font",
            Kind::Skip => "skip",
        }
    }
}

/// Why a part (or the whole message) was not rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// Inside `multipart/signed` (or an inline PGP signature).
    Signed,
    /// `multipart/encrypted`, `application/pkcs7-mime`, inline PGP message.
    Encrypted,
    BadBase64,
    BadQp,
    UnsupportedCharset,
    /// Bytes that are not valid in the declared charset.
    BadCharset,
    UnknownTransferEncoding,
    MimeDepth,
    TooLarge,
    TimeLimit,
    MemoryLimit,
    /// The input has no header block at all.
    NotMail,
    /// A rewritten 7bit/8bit part would get a line over 998 bytes.
    LineTooLong,
    /// The HTML rewriter failed on this part.
    RewriteError,
    /// A bug in trackless (a caught panic): the message passed through unchanged.
    InternalError,
    /// A nested message could not be decoded or re-parsed consistently.
    NestedMessage,
    /// The sender is on the allow-list: nothing is rewritten.
    AllowListed,
    /// The part holds (or its rewrite would hold) a `--boundary` of a multipart that encloses
    /// it: readers that take a delimiter in the middle of a line, or one that a re-encoding
    /// moved to a line's start, would see another structure than the one rewritten.
    AmbiguousMime,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Signed => "signed",
            SkipReason::Encrypted => "encrypted",
            SkipReason::BadBase64 => "bad-base64",
            SkipReason::BadQp => "bad-qp",
            SkipReason::UnsupportedCharset => "unsupported-charset",
            SkipReason::BadCharset => "bad-charset",
            SkipReason::UnknownTransferEncoding => "unknown-transfer-encoding",
            SkipReason::MimeDepth => "mime-depth",
            SkipReason::TooLarge => "too-large",
            SkipReason::TimeLimit => "time-limit",
            SkipReason::MemoryLimit => "memory-limit",
            SkipReason::NotMail => "not-mail",
            SkipReason::LineTooLong => "line-too-long",
            SkipReason::RewriteError => "rewrite-error",
            SkipReason::InternalError => "internal-error",
            SkipReason::NestedMessage => "nested-message",
            SkipReason::AllowListed => "allow-listed",
            SkipReason::AmbiguousMime => "ambiguous-mime",
        }
    }

    /// Whole-message limits: when one of these trips, nothing in the message is rewritten.
    pub fn is_message_wide(self) -> bool {
        matches!(
            self,
            SkipReason::MimeDepth
                | SkipReason::TooLarge
                | SkipReason::TimeLimit
                | SkipReason::NotMail
                | SkipReason::MemoryLimit
                | SkipReason::RewriteError
                | SkipReason::InternalError
                | SkipReason::AllowListed
        )
    }
}

/// One thing the filter found, and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub action: Action,
    /// The URL as found (HTML entities decoded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The URL written in its place (links only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_url: Option<String>,
    /// Id of the rule that matched, or `heuristic:…` for pixels caught by shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Who runs the tracker, when a rule says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Why a part was skipped (kind `skip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    /// Where: `img`, `background`, `style-attr`, `style-block`, `link`, `@import`, `@font-face`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<&'static str>,
    /// Decoders applied, outermost first (links only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// MIME part path ("1", "2.1", "2.1/1.2" inside a nested message), empty for the whole message.
    pub part: String,
    /// Free-text detail (e.g. why a link was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Found inside a nested (forwarded) message: not evidence about this message's sender.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nested: bool,
}

impl Finding {
    pub fn new(kind: Kind, action: Action) -> Finding {
        Finding {
            kind,
            action,
            url: None,
            new_url: None,
            rule: None,
            vendor: None,
            reason: None,
            context: None,
            chain: Vec::new(),
            part: String::new(),
            detail: None,
            nested: false,
        }
    }

    pub fn skip(reason: SkipReason, part: &str, detail: impl Into<Option<String>>) -> Finding {
        Finding {
            reason: Some(reason),
            part: part.to_string(),
            detail: detail.into(),
            ..Finding::new(Kind::Skip, Action::Skipped)
        }
    }
}

/// Per-kind totals, as written into the `X-Trackless` header and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pixels: u32,
    /// Invisible static layout images removed (not tracking; see [`Kind::Spacer`]).
    pub spacers: u32,
    pub fonts: u32,
    pub links_total: u32,
    pub links_unwrapped: u32,
    pub links_cleaned: u32,
    pub links_opaque: u32,
    pub skipped_parts: u32,
}

impl Counts {
    pub fn from_findings(findings: &[Finding]) -> Counts {
        let mut c = Counts::default();
        for f in findings {
            match (f.kind, f.action) {
                (Kind::Pixel, Action::Removed) => c.pixels += 1,
                (Kind::Spacer, Action::Removed) => c.spacers += 1,
                (Kind::Font, Action::Removed) => c.fonts += 1,
                (Kind::Link, a) => {
                    c.links_total += 1;
                    match a {
                        Action::Unwrapped => c.links_unwrapped += 1,
                        Action::Cleaned => c.links_cleaned += 1,
                        Action::KeptOpaque | Action::Marked => c.links_opaque += 1,
                        _ => {}
                    }
                }
                (Kind::Skip, _) => c.skipped_parts += 1,
                _ => {}
            }
        }
        c
    }
}

/// The result of `neutralise`.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    /// The message to pass on: the original bytes (borrowed) when nothing changed.
    pub bytes: Cow<'a, [u8]>,
    pub findings: Vec<Finding>,
    pub counts: Counts,
    /// The value written into `X-Trackless` (None when the message was passed through as it was).
    pub header: Option<String>,
    /// True when `bytes` differ from the input.
    pub changed: bool,
    /// Who sent it: ESP attribution with evidence.
    pub esp: Vec<crate::mail::attribution::Attribution>,
    /// Every remote host the HTML would contact on opening (see [`Remote`]).
    pub remote: Vec<Remote>,
}

impl Outcome<'_> {
    pub fn skips(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.kind == Kind::Skip)
    }

    pub fn into_owned(self) -> Outcome<'static> {
        Outcome {
            bytes: Cow::Owned(self.bytes.into_owned()),
            findings: self.findings,
            counts: self.counts,
            header: self.header,
            changed: self.changed,
            esp: self.esp,
            remote: self.remote,
        }
    }
}
