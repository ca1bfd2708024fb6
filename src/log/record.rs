//! One row of the tracking log: what a message was, who sent it, what was removed. Built from
//! the message and its `Outcome`; holds no body and, by default, no recipient.

use crate::mail::attribution::{Attribution, Confidence, Layer};
use crate::mail::outcome::{Action, Kind, Outcome, Remote};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Which adapter processed the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Filter,
    Pipe,
    Milter,
    Smtp,
    Lmtp,
    Batch,
    Inspect,
    Imap,
}

impl Mode {
    /// Runs of this mode go over the same mail again (batch, imap): log each message once.
    pub fn repeats(self) -> bool {
        matches!(self, Mode::Batch | Mode::Imap)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Filter => "filter",
            Mode::Pipe => "pipe",
            Mode::Milter => "milter",
            Mode::Smtp => "smtp",
            Mode::Lmtp => "lmtp",
            Mode::Batch => "batch",
            Mode::Inspect => "inspect",
            Mode::Imap => "imap",
        }
    }
}

/// How `message_id_hash` starts when it is not the SHA-256 of a Message-ID but the key a batch
/// or IMAP run gives a message without one (the SHA-256 of the message as the run left it, so
/// that a second run does not log it again). Readers show such a message as having no
/// Message-ID ([`message_id_sha256`]). Logs written before this marker existed hold those keys
/// bare, indistinguishable from a Message-ID's hash.
pub const NO_MESSAGE_ID: &str = "no-message-id:";

/// The SHA-256 of the Message-ID a `message_id_hash` column holds: none for the key of a
/// message that had none.
pub fn message_id_sha256(column: Option<String>) -> Option<String> {
    column.filter(|h| !h.starts_with(NO_MESSAGE_ID))
}

/// What the log may keep beyond the minimum (all off by default: the log holds personal data).
#[derive(Debug, Clone, Default)]
pub struct Keep {
    pub subject: bool,
    pub recipients: bool,
    /// The original header block of tracked messages, for evidence.
    pub headers: bool,
    /// Where to keep the original bytes of tracked messages (`[log] keep_originals =
    /// "tracked"`); None: not kept, and not hashed.
    pub originals: Option<super::originals::Originals>,
}

/// A tracker found in the message (pixel, font, link that was tracked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    pub kind: Kind,
    pub action: Action,
    pub host: String,
    pub vendor: Option<String>,
    pub rule: Option<String>,
    pub url: String,
}

/// An ESP attribution as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspRow {
    pub name: String,
    pub layer: Layer,
    pub confidence: Confidence,
    pub jurisdiction: String,
    pub us_exposure: Option<bool>,
    /// The evidence lines, one per signal.
    pub evidence: Vec<String>,
}

/// One message in the log. Serialised as one line of JSON where a run keeps its records
/// aside (batch over an mbox) and read back the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Unix seconds when processed.
    pub ts: i64,
    /// The message's own Date header, unix seconds, if it parses.
    pub date: Option<i64>,
    pub mode: Mode,
    /// Hex SHA-256 of the Message-ID (the ID itself is not stored).
    pub message_id_hash: Option<String>,
    pub envelope_sender: Option<String>,
    pub from_addr: Option<String>,
    pub from_domain: Option<String>,
    pub subject: Option<String>,
    pub recipients: Option<String>,
    pub changed: bool,
    pub pixels: u32,
    /// Invisible layout images removed (not tracking: not in `tracked`, not in `trackers`).
    pub spacers: u32,
    pub fonts: u32,
    pub links_total: u32,
    pub links_unwrapped: u32,
    pub links_cleaned: u32,
    pub links_opaque: u32,
    pub skipped: Option<String>,
    /// `platform/carrier` summary, e.g. `Klaviyo/SendGrid`.
    pub esp: Option<String>,
    pub esp_confidence: Option<Confidence>,
    pub jurisdiction: Option<String>,
    pub us_exposure: Option<bool>,
    pub esps: Vec<EspRow>,
    pub trackers: Vec<Tracker>,
    pub headers: Option<String>,
    /// The remote hosts the HTML would contact on opening (records written before this field
    /// existed read back without it).
    #[serde(default)]
    pub remote: Vec<Remote>,
    /// Hex SHA-256 of the message as received, when its original was kept (`[log]
    /// keep_originals`; records written before this field existed read back without it).
    #[serde(default)]
    pub original_sha256: Option<String>,
}

impl Record {
    /// When the message was sent, for reports: its Date header, unless missing or more than a
    /// day after we processed it (a wrong clock or a forged date); then when we processed it.
    pub fn seen(&self) -> i64 {
        match self.date {
            Some(d) if d > 0 && d <= self.ts + 86_400 => d,
            _ => self.ts,
        }
    }

    /// Is anything tracking in this message?
    pub fn tracked(&self) -> bool {
        self.pixels + self.fonts + self.links_unwrapped + self.links_cleaned + self.links_opaque > 0
    }

    /// Build the row for a message. `raw` is the message as received.
    ///
    /// With `keep.originals`, a message trackless rewrote or found a tracker in also has its
    /// SHA-256 taken and its bytes stored in that folder (the only I/O here, so that every mode
    /// keeps them the same way). A failure to store is logged and loses only that copy.
    pub fn new(
        raw: &[u8],
        outcome: &Outcome<'_>,
        mode: Mode,
        envelope_sender: Option<&str>,
        recipients: &[String],
        keep: Keep,
        now: i64,
    ) -> Record {
        let head_end = crate::mail::header::top_block(raw).len();
        let fields = read_fields(&raw[..head_end]);
        let meta = mail_parser::MessageParser::new().parse_headers(&fields);
        let (from_addr, subject, message_id, date) = match &meta {
            Some(m) => (
                m.from()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .map(|a| a.trim().to_ascii_lowercase()),
                m.subject().map(str::to_string),
                m.message_id().map(str::to_string),
                m.date().map(|d| d.to_timestamp()),
            ),
            None => (None, None, None, None),
        };
        let from_domain = from_addr
            .as_deref()
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, d)| d.to_string());
        let hex = super::originals::hex;
        let message_id_hash = match message_id {
            Some(id) => Some(hex(&Sha256::digest(id.trim().as_bytes()))),
            // Batch runs are repeated over the same mailbox and must not log a message twice;
            // without a Message-ID the message as this run left it identifies it (a second run
            // gets those very bytes and, the rewrite being a fixed point, leaves them as they
            // are). Marked as such (see [`NO_MESSAGE_ID`]): it is no Message-ID's hash.
            None if mode.repeats() => {
                let mut h = Sha256::new();
                h.update(b"trackless:no-message-id:");
                h.update(outcome.bytes.as_ref());
                Some(format!("{NO_MESSAGE_ID}{}", hex(&h.finalize())))
            }
            None => None,
        };
        let mut skipped: Vec<&str> = outcome
            .skips()
            .filter_map(|f| f.reason.map(|r| r.as_str()))
            .collect();
        skipped.sort_unstable();
        skipped.dedup();
        // The same link often appears in the text and the HTML part: log it once (looked up
        // before anything is copied or parsed).
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(
            outcome.findings.len(),
            foldhash::fast::RandomState::default(),
        );
        let trackers: Vec<Tracker> = outcome
            .findings
            .iter()
            .filter(|f| !f.nested)
            .filter(|f| match f.kind {
                Kind::Pixel | Kind::Font => f.action == Action::Removed,
                Kind::Link => matches!(
                    f.action,
                    Action::Unwrapped | Action::Cleaned | Action::KeptOpaque | Action::Marked
                ),
                Kind::Skip | Kind::Spacer => false,
            })
            .filter_map(|f| {
                let url = truncated(f.url.as_deref()?, 2048);
                seen.insert((f.kind, f.action, url)).then(|| Tracker {
                    kind: f.kind,
                    action: f.action,
                    host: crate::mail::url::host_of(url).unwrap_or_default(),
                    vendor: f.vendor.clone(),
                    rule: f.rule.clone(),
                    url: url.to_string(),
                })
            })
            .collect();
        let esps: Vec<EspRow> = outcome.esp.iter().map(esp_row).collect();
        let carrier = outcome
            .esp
            .iter()
            .find(|a| a.layer == Layer::Carrier)
            .or_else(|| outcome.esp.first());
        // "platform/carrier" with the providers' own names (the header form is abbreviated).
        let mut layered: Vec<&Attribution> = outcome
            .esp
            .iter()
            .filter(|a| a.layer == Layer::Platform)
            .collect();
        layered.extend(outcome.esp.iter().filter(|a| a.layer == Layer::Carrier));
        // A `?` marks a low-confidence (possibly forged) attribution.
        let summary = (!layered.is_empty()).then(|| {
            layered
                .iter()
                .map(|a| {
                    let q = if a.confidence == Confidence::Low {
                        "?"
                    } else {
                        ""
                    };
                    format!("{}{q}", a.name)
                })
                .collect::<Vec<_>>()
                .join("/")
        });
        let us = outcome
            .esp
            .iter()
            .filter(|a| a.confidence >= Confidence::Medium)
            .filter_map(|a| a.us_exposure)
            .reduce(|a, b| a || b);
        let counts = outcome.counts;
        let record = Record {
            ts: now,
            date,
            mode,
            message_id_hash,
            envelope_sender: envelope_sender.map(|s| s.trim_matches(['<', '>']).to_string()),
            from_addr,
            from_domain,
            subject: if keep.subject { subject } else { None },
            recipients: (keep.recipients && !recipients.is_empty()).then(|| recipients.join(", ")),
            changed: outcome.changed,
            pixels: counts.pixels,
            spacers: counts.spacers,
            fonts: counts.fonts,
            links_total: counts.links_total,
            links_unwrapped: counts.links_unwrapped,
            links_cleaned: counts.links_cleaned,
            links_opaque: counts.links_opaque,
            skipped: (!skipped.is_empty()).then(|| skipped.join(",")),
            esp: summary,
            esp_confidence: carrier.map(|a| a.confidence),
            jurisdiction: carrier.map(|a| a.jurisdiction.clone()),
            us_exposure: us,
            esps,
            trackers,
            headers: None,
            remote: outcome.remote.clone(),
            original_sha256: None,
        };
        let headers = (keep.headers && record.tracked())
            .then(|| String::from_utf8_lossy(&raw[..head_end]).into_owned());
        let original_sha256 = match &keep.originals {
            Some(folder) if record.changed || record.tracked() => {
                let sha256 = super::originals::sha256_hex(raw);
                if let Err(e) = folder.store(&sha256, raw) {
                    tracing::warn!(
                        folder = %folder.dir().display(),
                        error = %e,
                        "cannot keep the original message (mail is not affected)"
                    );
                }
                Some(sha256)
            }
            _ => None,
        };
        Record {
            headers,
            original_sha256,
            ..record
        }
    }
}

fn esp_row(a: &Attribution) -> EspRow {
    EspRow {
        name: a.name.clone(),
        layer: a.layer,
        confidence: a.confidence,
        jurisdiction: a.jurisdiction.clone(),
        us_exposure: a.us_exposure,
        evidence: a
            .evidence
            .iter()
            .map(|e| format!("{}: {}", e.signal.as_str(), e.detail))
            .collect(),
    }
}

/// The header fields a record reads (`From`, `Subject`, `Message-ID`, `Date`), every one of
/// them in its order, and the blank line that ends the block, as a header block of their own:
/// mail-parser then parses those instead of every field (parsing the whole block, its
/// `Received` chain included, was half of what building a record cost).
fn read_fields(head: &[u8]) -> Vec<u8> {
    const READ: [&[u8]; 4] = [b"from", b"subject", b"message-id", b"date"];
    let mut out = Vec::with_capacity(1024.min(head.len()));
    for (start, end) in crate::mail::header::fields(head) {
        let field = &head[start..end];
        let name = crate::mail::header::field_name(field);
        let blank = field.iter().all(|b| matches!(b, b'\r' | b'\n'));
        if blank || READ.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            out.extend_from_slice(field);
        }
    }
    out
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a record reads from a header block: From, Subject, Message-ID, Date.
    fn read(block: &[u8]) -> [Option<String>; 4] {
        let Some(m) = mail_parser::MessageParser::new().parse_headers(block) else {
            return [None, None, None, None];
        };
        [
            m.from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_string),
            m.subject().map(str::to_string),
            m.message_id().map(str::to_string),
            m.date().map(|d| d.to_timestamp().to_string()),
        ]
    }

    /// The four fields read from their own block are what the whole block gives: on every
    /// message of the sample corpus and on shapes made to differ (duplicates, folding, names
    /// in any case or with a space before the colon, encoded words, fields a parser might run
    /// into).
    #[test]
    fn the_fields_read_are_those_of_the_whole_header() {
        let mut heads: Vec<Vec<u8>> = Vec::new();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
        for entry in std::fs::read_dir(dir).expect("corpus") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "eml") {
                let raw = std::fs::read(&path).expect("read");
                heads.push(crate::mail::header::top_block(&raw).to_vec());
            }
        }
        assert!(heads.len() >= 20, "the corpus is there");
        for made in [
            &b"Received: from a (a [192.0.2.1])\r\n\tby mx; Mon, 1 Jan 2024 00:00:00 +0000\r\nFROM: Ann <ann@shop.example>\r\nsubject: =?UTF-8?Q?Caf=C3=A9?=\r\n folded\r\nMessage-Id: <x@y>\r\nDate: Tue, 2 Jan 2024 10:00:00 +0100\r\n\r\n"[..],
            b"From: first@a.example\nFrom: second@b.example\nSubject : spaced\nSubject: again\nDate: nonsense\n\n",
            b"X-Other: 1\r\nMessage-ID:\r\n <folded@id>\r\nFrom: \"Quoted, Name\" <q@c.example>\r\nTo: x@y\r\nComments: From: fake@d.example\r\n\r\n",
            b"Subject: no blank line at the end\r\nFrom: e@e.example",
            b"\r\n",
        ] {
            heads.push(made.to_vec());
        }
        for head in &heads {
            assert_eq!(
                read(&read_fields(head)),
                read(head),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // Something was read at all (the comparison is not between two empty answers).
        let from_all = heads.iter().filter(|h| read(h)[0].is_some()).count();
        assert!(from_all >= 20, "{from_all} senders read");
    }
}
