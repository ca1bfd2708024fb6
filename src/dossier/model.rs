//! What a dossier says, as plain owned data: filled by whoever reads the log (or by hand in a
//! test), rendered by [`super::render::html`]. Nothing here depends on how the log stores it.
//!
//! Strings that come from mail (addresses, subjects, URLs, header blocks, evidence lines) are
//! attacker-controlled: the renderer escapes every one of them. Lists are rendered in the
//! order given; the renderer sorts only what it aggregates, and says so.
//!
//! The same data is written as JSON beside the page (`evidence.json`): the field names below
//! are that file's, a token range is `[start, end]` (bytes of the URL).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Everything one dossier is about: one sender, its messages, the providers that carried them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dossier {
    pub sender: Sender,
    /// The first and the last message date, ISO (`2026-11-02` or `2026-11-02 09:14:00`).
    pub period: Option<(String, String)>,
    /// In the order they are to appear (numbered 1, 2, … in that order).
    pub messages: Vec<MessageEntry>,
    /// The providers named for these messages, in the order they are to appear.
    pub esps: Vec<EspEntry>,
    /// What the dossier was made from, e.g. `trackless 0.1.0, log /var/lib/trackless/log.db`.
    /// No generation time: the same log must give the same bytes.
    pub generated_from: String,
    /// Whether the log kept the raw header blocks (`--keep-headers`): when it did not, the
    /// dossier says so instead of leaving the reader to wonder where they are.
    pub keep_headers: bool,
}

/// Who the dossier is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sender {
    /// The From address (or a domain when the dossier covers a whole domain).
    pub address: String,
    pub domain: String,
    /// The organisation behind the domain, when known.
    pub organisation: Option<String>,
}

/// One email service provider (ESP) named for some of the messages, with its legal facts
/// (`rules/providers.toml`). `None` and `"unknown"` both read as "not known".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EspEntry {
    pub name: String,
    /// `platform` (built and instrumented the mail) or `carrier` (delivered it).
    pub layer: String,
    /// `high`, `medium` or `low`.
    pub confidence: String,
    pub legal_entity: Option<String>,
    /// ISO 3166-1 alpha-2 country of the legal entity.
    pub jurisdiction: Option<String>,
    pub parent: Option<String>,
    pub parent_jurisdiction: Option<String>,
    /// True when the legal entity or its parent is a US company; `None` when not known.
    pub us_exposure: Option<bool>,
    /// How many of the dossier's messages it was named for.
    pub messages: usize,
}

/// One message, with what was found in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageEntry {
    /// The message's date as recorded (the Date header, else when it was processed).
    pub date: String,
    /// Only when the log kept it.
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub message_id_sha256: Option<String>,
    /// SHA-256 of the original message, when it was kept.
    pub original_sha256: Option<String>,
    /// File name of the original message (`.eml`) kept beside the dossier.
    pub original_file: Option<String>,
    pub trackers: Vec<TrackerEntry>,
    /// The remote resources the message would load on opening.
    pub remote: Vec<RemoteEntry>,
    /// The lines that named the ESPs (`signal: detail`, e.g. a header, a Received hop, a
    /// DKIM domain).
    pub esp_evidence: Vec<String>,
    /// The raw header block, when kept.
    pub headers: Option<String>,
}

/// One tracker found in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackerEntry {
    /// `pixel`, `spacer`, `link`, `font`, … (`trackless::Kind` as text).
    pub kind: String,
    /// The URL as found in the message.
    pub url: String,
    /// Byte range (start, end) of the per-recipient token in `url`. A range that is out of
    /// bounds or not on character boundaries is ignored (the URL is shown without highlight).
    pub token: Option<(usize, usize)>,
    /// The rule that matched.
    pub rule: Option<String>,
    pub vendor: Option<String>,
    /// `removed`, `unwrapped`, `cleaned`, `kept-opaque`, … (`trackless::Action` as text).
    pub action: String,
}

/// One remote host a message would make the mail client contact on opening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteEntry {
    pub host: String,
    /// `image`, `css`, `font`, `background`, `srcset`, `poster`, `stylesheet`.
    pub kind: String,
    /// Whether trackless removed it.
    pub removed: bool,
    /// Who operates the host, from its name (`rules/operators.toml`).
    pub operator: Option<String>,
    /// ISO country of the operator's legal entity.
    pub country: Option<String>,
    /// True when the operator or its parent is a US company; `None` when not known.
    pub us_exposure: Option<bool>,
    /// Whether a URL to this host carries a per-recipient token.
    pub token: bool,
    /// How many resources of this kind the message loads from this host.
    pub count: usize,
}

/// The language of a dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    /// The BCP 47 code written in `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }
}

/// A language other than English or French.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLang(pub String);

impl fmt::Display for UnknownLang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown dossier language {:?} (expected en or fr)",
            self.0
        )
    }
}

impl std::error::Error for UnknownLang {}

impl FromStr for Lang {
    type Err = UnknownLang;

    /// `en` or `fr`, in any case, with or without a region (`fr-FR`, `en_GB`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let primary = s.trim().split(['-', '_']).next().unwrap_or("");
        if primary.eq_ignore_ascii_case("en") {
            Ok(Lang::En)
        } else if primary.eq_ignore_ascii_case("fr") {
            Ok(Lang::Fr)
        } else {
            Err(UnknownLang(s.to_string()))
        }
    }
}
