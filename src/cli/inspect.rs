//! `trackless inspect`: what was found in a message and what would change, for people (text)
//! and for programs (`--json`, one object per message per line).

use crate::core::message::neutralise;
use crate::core::policy::Policy;
use crate::mail::outcome::{Finding, Kind, Outcome, Remote};
use mail_parser::MessageParser;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// JSON shape of one inspected message (stable: documented in the README).
#[derive(Serialize)]
pub struct Report<'a> {
    pub file: String,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub changed: bool,
    pub size_before: usize,
    pub size_after: usize,
    pub counts: crate::mail::outcome::Counts,
    pub header: Option<&'a str>,
    pub esp: &'a [crate::mail::attribution::Attribution],
    /// ESPs whose trackers the body carries but the headers do not name as a sender.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trackers_not_sent_through: Vec<String>,
    pub findings: &'a [Finding],
    /// Remote hosts the HTML would contact on opening, before the rewrite; `removed: false`
    /// ones are still contacted after it.
    pub remote: &'a [Remote],
}

pub fn report<'a>(
    file: &Path,
    raw: &[u8],
    outcome: &'a Outcome<'_>,
    policy: &Policy,
) -> Report<'a> {
    let (from, subject) = from_and_subject(raw);
    let trackers_not_sent_through = crate::core::sender::trackers_not_sent_through(outcome, policy);
    Report {
        file: file.display().to_string(),
        from,
        subject,
        changed: outcome.changed,
        size_before: raw.len(),
        size_after: outcome.bytes.len(),
        counts: outcome.counts,
        header: outcome.header.as_deref(),
        esp: &outcome.esp,
        trackers_not_sent_through,
        findings: &outcome.findings,
        remote: &outcome.remote,
    }
}

fn from_and_subject(raw: &[u8]) -> (Option<String>, Option<String>) {
    let Some(msg) = MessageParser::new().parse_headers(raw) else {
        return (None, None);
    };
    let from = msg
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        });
    (from, msg.subject().map(str::to_string))
}

/// Inspect files, printing to `out` (and logging them when `log` has a path). A file that
/// cannot be read is reported and the others inspected: `Error::Partial`.
pub fn run(
    policy: &Policy,
    log: &crate::log::LogConfig,
    files: &[impl AsRef<Path>],
    json: bool,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), super::Error> {
    let mut records = Vec::new();
    let mut status = Ok(());
    for file in files {
        let file = file.as_ref();
        let raw = match std::fs::read(file) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(warn, "trackless inspect: {}: {e}", file.display());
                status = Err(super::Error::Partial);
                continue;
            }
        };
        let outcome = neutralise(&raw, policy);
        let rep = report(file, &raw, &outcome, policy);
        let written = if json {
            serde_json::to_string(&rep)
                .map_err(std::io::Error::other)
                .and_then(|s| writeln!(out, "{s}"))
        } else {
            write_text(&rep, out)
        };
        written.map_err(super::Error::output)?;
        if log.path.is_some() {
            records.push(crate::log::Record::new(
                &raw,
                &outcome,
                crate::log::Mode::Inspect,
                None,
                &[],
                log.keep.clone(),
                crate::log::time::now(),
            ));
        }
    }
    if let Some(path) = &log.path {
        // One message (from Sieve's `execute :pipe`, a process per message) is spooled like
        // `filter`'s; many go into the log in one transaction.
        let written = match records.as_slice() {
            [one] => log.write_one(one),
            _ => crate::log::Db::open(path).and_then(|mut s| s.insert(&records)),
        };
        written.map_err(|e| super::Error::Failed(e.to_string()))?;
    }
    status
}

fn write_text(rep: &Report<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{}", rep.file)?;
    if let Some(from) = &rep.from {
        writeln!(out, "  From:    {from}")?;
    }
    if let Some(subject) = &rep.subject {
        writeln!(out, "  Subject: {subject}")?;
    }
    let c = &rep.counts;
    writeln!(
        out,
        "  {}: {} pixel(s), {} font(s) removed{}; {} link(s): {} unwrapped, {} cleaned, {} opaque; {} part(s) skipped",
        if rep.changed { "REWRITE" } else { "unchanged" },
        c.pixels,
        c.fonts,
        match c.spacers {
            0 => String::new(),
            n => format!(", {n} invisible layout spacer(s) too"),
        },
        c.links_total,
        c.links_unwrapped,
        c.links_cleaned,
        c.links_opaque,
        c.skipped_parts
    )?;
    for a in rep.esp {
        let who = match (&a.legal_entity, &a.parent) {
            (Some(e), Some(p)) if e != p => format!("{e}, parent {p}"),
            (Some(e), _) => e.clone(),
            _ => "provider facts unknown".to_string(),
        };
        writeln!(
            out,
            "  ESP {} ({}, {} confidence) - {who}; jurisdiction {}{}",
            a.name,
            a.layer.as_str(),
            a.confidence.as_str(),
            a.jurisdiction,
            if a.us_exposure == Some(true) {
                " (US provider or parent)"
            } else {
                ""
            }
        )?;
        for e in &a.evidence {
            writeln!(out, "      {:<17} {}", format!("{:?}", e.signal), e.detail)?;
        }
    }
    for name in &rep.trackers_not_sent_through {
        writeln!(
            out,
            "  Tracker URLs of {name}, NOT sent through {name}: no header, hop or signature of \
             {name} (copied HTML, as phishing does); do not hold {name} responsible"
        )?;
    }
    for f in rep.findings {
        write_finding(f, out)?;
    }
    for r in rep.remote {
        writeln!(
            out,
            "  > {:<10} {:<8} {}x {}{}",
            r.kind.as_str(),
            if r.removed { "removed" } else { "loads" },
            r.count,
            r.host,
            if r.token {
                " (per-recipient token)"
            } else {
                ""
            }
        )?;
    }
    if let Some(h) = rep.header {
        writeln!(out, "  X-Trackless: {h}")?;
        writeln!(
            out,
            "  size: {} -> {} bytes",
            rep.size_before, rep.size_after
        )?;
    }
    writeln!(out)
}

fn write_finding(f: &Finding, out: &mut dyn Write) -> std::io::Result<()> {
    let mut line = format!("  - {:<6} {:<11}", f.kind.as_str(), f.action.as_str());
    if let Some(r) = f.reason {
        line.push_str(&format!(" {}", r.as_str()));
    }
    if let Some(ctx) = f.context {
        line.push_str(&format!(" in {ctx}"));
    }
    if !f.part.is_empty() {
        line.push_str(&format!(" (part {})", f.part));
    }
    if let Some(rule) = &f.rule {
        line.push_str(&format!(" rule={rule}"));
    }
    if let Some(v) = &f.vendor {
        line.push_str(&format!(" vendor={v}"));
    }
    if let Some(d) = &f.detail {
        line.push_str(&format!(": {d}"));
    }
    writeln!(out, "{line}")?;
    if let Some(url) = &f.url {
        writeln!(out, "        {url}")?;
    }
    if let Some(new) = &f.new_url {
        writeln!(out, "     -> {new}")?;
    }
    if f.kind == Kind::Link && !f.chain.is_empty() {
        writeln!(out, "        via {}", f.chain.join(" -> "))?;
    }
    Ok(())
}
