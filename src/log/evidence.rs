//! `trackless report evidence SENDER`: for one sender (address) or domain, the messages newest
//! first with the date, From, Message-ID, the ESP attribution with its evidence lines and the
//! tracker URLs with the rule that matched — enough to file a complaint without opening the
//! mail. Original headers are included when they were kept (`--keep-headers`).

use super::report::Filter;
use super::store::StoreError;
use super::time;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::io::Write;

#[derive(Debug, Clone, Serialize)]
pub struct EspEvidence {
    pub name: String,
    pub layer: String,
    pub confidence: String,
    pub jurisdiction: Option<String>,
    pub us_exposure: Option<bool>,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackerEvidence {
    pub kind: String,
    pub action: String,
    pub host: String,
    pub vendor: Option<String>,
    pub rule: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageEvidence {
    /// When trackless processed it (UTC).
    pub processed: String,
    /// The message's own Date header (UTC), if it had one.
    pub date: Option<String>,
    pub from: Option<String>,
    pub envelope_sender: Option<String>,
    /// The Message-ID from the kept headers, when kept.
    pub message_id: Option<String>,
    pub message_id_sha256: Option<String>,
    pub subject: Option<String>,
    pub mode: String,
    pub esp: Vec<EspEvidence>,
    pub trackers: Vec<TrackerEvidence>,
    pub headers: Option<String>,
}

fn sq(source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: "evidence".into(),
        source,
    }
}

/// Tracked messages of a sender or domain, newest first.
pub fn collect(
    conn: &Connection,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<MessageEvidence>, StoreError> {
    let (cond, mut params) = filter.sql();
    params.push(rusqlite::types::Value::Integer(limit as i64));
    let sql = format!(
        "SELECT id, ts, date, from_addr, envelope_sender, message_id_hash, subject, mode
         FROM messages WHERE {cond} AND tracked = 1 ORDER BY seen DESC, id DESC LIMIT ?{}",
        params.len()
    );
    let mut stmt = conn.prepare(&sql).map_err(sq)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, String>(7)?,
            ))
        })
        .map_err(sq)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sq)?;
    let mut esp_stmt = conn
        .prepare("SELECT name, layer, confidence, jurisdiction, us_exposure, evidence FROM esp WHERE message = ?1 ORDER BY layer DESC")
        .map_err(sq)?;
    let mut trk_stmt = conn
        .prepare("SELECT kind, action, host, vendor, rule, url FROM trackers WHERE message = ?1 ORDER BY rowid")
        .map_err(sq)?;
    let mut hdr_stmt = conn
        .prepare("SELECT block FROM headers WHERE message = ?1")
        .map_err(sq)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, ts, date, from, env, hash, subject, mode) in rows {
        let esp = esp_stmt
            .query_map([id], |r| {
                let ev: String = r.get(5)?;
                Ok(EspEvidence {
                    name: r.get(0)?,
                    layer: r.get(1)?,
                    confidence: r.get(2)?,
                    jurisdiction: r.get(3)?,
                    us_exposure: r.get(4)?,
                    evidence: serde_json::from_str(&ev).unwrap_or_default(),
                })
            })
            .map_err(sq)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq)?;
        let trackers = trk_stmt
            .query_map([id], |r| {
                Ok(TrackerEvidence {
                    kind: r.get(0)?,
                    action: r.get(1)?,
                    host: r.get(2)?,
                    vendor: r.get(3)?,
                    rule: r.get(4)?,
                    url: r.get(5)?,
                })
            })
            .map_err(sq)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sq)?;
        let headers: Option<String> = hdr_stmt
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(sq)?;
        let message_id = headers.as_deref().and_then(message_id_of);
        out.push(MessageEvidence {
            processed: time::datetime(ts),
            date: date.map(time::datetime),
            from,
            envelope_sender: env,
            message_id,
            message_id_sha256: hash,
            subject,
            mode,
            esp,
            trackers,
            headers,
        });
    }
    Ok(out)
}

pub(crate) fn message_id_of(block: &str) -> Option<String> {
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        if line.len() > 11 && line[..11].eq_ignore_ascii_case("message-id:") {
            let mut v = line[11..].trim().to_string();
            while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
                v.push_str(lines.next().unwrap_or("").trim());
            }
            return Some(v);
        }
    }
    None
}

/// Plain-text evidence, for attaching to a complaint.
pub fn write_text(
    who: &str,
    items: &[MessageEvidence],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "Tracking evidence for {who}")?;
    writeln!(
        out,
        "Generated by trackless on {}. Each message below was received by the mail server and",
        time::datetime(time::now())
    )?;
    writeln!(
        out,
        "its trackers were neutralised before delivery; no tracker was ever contacted. {} message(s).",
        items.len()
    )?;
    for (i, m) in items.iter().enumerate() {
        writeln!(out)?;
        writeln!(out, "== Message {} ==", i + 1)?;
        if let Some(d) = &m.date {
            writeln!(out, "Date:            {d}")?;
        }
        writeln!(out, "Processed:       {} ({})", m.processed, m.mode)?;
        writeln!(out, "From:            {}", m.from.as_deref().unwrap_or("-"))?;
        if let Some(e) = &m.envelope_sender {
            writeln!(out, "Envelope sender: {e}")?;
        }
        match (&m.message_id, &m.message_id_sha256) {
            (Some(id), _) => writeln!(out, "Message-ID:      {id}")?,
            (None, Some(h)) => writeln!(out, "Message-ID:      (not stored; SHA-256 {h})")?,
            _ => {}
        }
        if let Some(s) = &m.subject {
            writeln!(out, "Subject:         {s}")?;
        }
        for e in &m.esp {
            writeln!(
                out,
                "Provider:        {} ({}, {} confidence; jurisdiction {}{})",
                e.name,
                e.layer,
                e.confidence,
                e.jurisdiction.as_deref().unwrap_or("unknown"),
                if e.us_exposure == Some(true) {
                    ", US provider or US parent"
                } else {
                    ""
                }
            )?;
            for line in &e.evidence {
                writeln!(out, "    evidence: {line}")?;
            }
        }
        writeln!(out, "Trackers ({}):", m.trackers.len())?;
        for t in &m.trackers {
            writeln!(
                out,
                "  - {} {} on {} (rule {}, {})",
                t.kind,
                t.action,
                t.host,
                t.rule.as_deref().unwrap_or("-"),
                t.vendor.as_deref().unwrap_or("vendor unknown")
            )?;
            writeln!(out, "    {}", t.url)?;
        }
        if let Some(h) = &m.headers {
            writeln!(out, "Original headers:")?;
            for line in h.lines() {
                writeln!(out, "    {line}")?;
            }
        }
    }
    Ok(())
}
