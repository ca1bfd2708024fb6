//! `trackless report evidence SENDER`: for one sender (address) or domain, the messages newest
//! first with the date, From, Message-ID, the ESP attribution with its evidence lines and the
//! tracker URLs with the rule that matched — enough to file a complaint without opening the
//! mail. Original headers are included when they were kept (`--keep-headers`).

use super::report::{csv_field, Filter};
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
    /// ESPs whose trackers the message carried but which did not send it (copied HTML).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trackers_not_sent_through: Vec<String>,
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
        let trackers_not_sent_through = not_sent_through(&esp, &trackers);
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
            trackers_not_sent_through,
            trackers,
            headers,
        });
    }
    Ok(out)
}

/// The ESPs whose trackers a logged message carried but which its headers did not name.
pub(crate) fn not_sent_through(esp: &[EspEvidence], trackers: &[TrackerEvidence]) -> Vec<String> {
    let attributed: Vec<&str> = esp.iter().map(|e| e.name.as_str()).collect();
    crate::core::sender::vendors_not_sent_through(
        trackers.iter().filter_map(|t| t.vendor.as_deref()),
        &attributed,
    )
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
        for name in &m.trackers_not_sent_through {
            writeln!(
                out,
                "Not sent through {name}: the trackers below include {name}'s URL shapes, but no \
                 header, hop or signature of {name} (copied HTML); do not name {name} as sender."
            )?;
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

/// The columns of `report evidence --format csv`.
pub const CSV_HEADER: &str = "message,processed,date,from,envelope_sender,message_id,message_id_sha256,subject,mode,item,provider,layer,confidence,jurisdiction,us_exposure,evidence,kind,action,host,vendor,rule,url";

/// Evidence as CSV (RFC 4180 quoting): a header line, then one row per item — each evidence
/// line of each provider (`item` = `esp`; a provider without evidence lines gets one row with
/// an empty `evidence`) and each tracker (`item` = `tracker`). The message columns repeat on
/// every row; `message` numbers the messages as the text output does (1 = newest). A message
/// with neither gets one row with `item` = `message`. Kept header blocks are not included
/// (`--format json` has them).
pub fn write_csv(items: &[MessageEvidence], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{CSV_HEADER}")?;
    let opt = |v: &Option<String>| csv_field(v.as_deref().unwrap_or(""));
    for (i, m) in items.iter().enumerate() {
        let message = [
            (i + 1).to_string(),
            csv_field(&m.processed),
            opt(&m.date),
            opt(&m.from),
            opt(&m.envelope_sender),
            opt(&m.message_id),
            opt(&m.message_id_sha256),
            opt(&m.subject),
            csv_field(&m.mode),
        ]
        .join(",");
        let mut rows = 0;
        for e in &m.esp {
            let provider = [
                csv_field(&e.name),
                csv_field(&e.layer),
                csv_field(&e.confidence),
                opt(&e.jurisdiction),
                e.us_exposure.map_or(String::new(), |b| b.to_string()),
            ]
            .join(",");
            let lines: Vec<&str> = if e.evidence.is_empty() {
                vec![""]
            } else {
                e.evidence.iter().map(String::as_str).collect()
            };
            for line in lines {
                writeln!(out, "{message},esp,{provider},{},,,,,,", csv_field(line))?;
                rows += 1;
            }
        }
        for name in &m.trackers_not_sent_through {
            writeln!(
                out,
                "{message},not-sent-through,{},,,,,,,,,,,",
                csv_field(name)
            )?;
            rows += 1;
        }
        for t in &m.trackers {
            writeln!(
                out,
                "{message},tracker,,,,,,,{},{},{},{},{},{}",
                csv_field(&t.kind),
                csv_field(&t.action),
                csv_field(&t.host),
                opt(&t.vendor),
                opt(&t.rule),
                csv_field(&t.url)
            )?;
            rows += 1;
        }
        if rows == 0 {
            writeln!(out, "{message},message,,,,,,,,,,,,")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split one CSV document (RFC 4180) into records of fields, independently of the writer.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => record.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(!quoted, "unterminated quoted field");
        assert!(field.is_empty() && record.is_empty(), "no final line break");
        records
    }

    fn message(esp: Vec<EspEvidence>, trackers: Vec<TrackerEvidence>) -> MessageEvidence {
        MessageEvidence {
            processed: "2026-11-30 10:00:00".into(),
            date: Some("2026-11-29 09:00:00".into()),
            from: Some("news@shop.example".into()),
            envelope_sender: Some("bounce@esp.example".into()),
            message_id: None,
            message_id_sha256: Some("ab12".into()),
            subject: Some("Sale, \"50%\" off\r\nnow".into()),
            mode: "milter".into(),
            trackers_not_sent_through: not_sent_through(&esp, &trackers),
            esp,
            trackers,
            headers: Some("Subject: x\r\n".into()),
        }
    }

    #[test]
    fn one_row_per_evidence_line_and_tracker_with_rfc4180_quoting() {
        let items = vec![
            message(
                vec![EspEvidence {
                    name: "SendGrid".into(),
                    layer: "carrier".into(),
                    confidence: "high".into(),
                    jurisdiction: Some("US".into()),
                    us_exposure: Some(true),
                    evidence: vec![
                        "received-by-us: Received: from o1.sendgrid.net".into(),
                        "header: X-SG-EID: \"a,b\"".into(),
                    ],
                }],
                vec![TrackerEvidence {
                    kind: "pixel".into(),
                    action: "removed".into(),
                    host: "u1.ct.sendgrid.net".into(),
                    vendor: Some("SendGrid".into()),
                    rule: Some("sendgrid.open".into()),
                    url: "https://u1.ct.sendgrid.net/wf/open?upn=x,y".into(),
                }],
            ),
            message(Vec::new(), Vec::new()),
        ];
        let mut out = Vec::new();
        write_csv(&items, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let records = parse(&text);
        let header: Vec<&str> = CSV_HEADER.split(',').collect();
        assert_eq!(records[0], header);
        assert_eq!(records.len(), 1 + 2 + 1 + 1, "{text}");
        for r in &records {
            assert_eq!(r.len(), header.len(), "{r:?}");
        }
        let col = |r: &Vec<String>, name: &str| {
            r[header.iter().position(|h| *h == name).expect("column")].clone()
        };
        let esp = &records[1];
        assert_eq!(col(esp, "message"), "1");
        assert_eq!(col(esp, "item"), "esp");
        assert_eq!(col(esp, "provider"), "SendGrid");
        assert_eq!(col(esp, "us_exposure"), "true");
        assert_eq!(col(esp, "subject"), "Sale, \"50%\" off\r\nnow");
        assert_eq!(
            col(esp, "evidence"),
            "received-by-us: Received: from o1.sendgrid.net"
        );
        assert_eq!(col(&records[2], "evidence"), "header: X-SG-EID: \"a,b\"");
        let trk = &records[3];
        assert_eq!(col(trk, "item"), "tracker");
        assert_eq!(col(trk, "provider"), "");
        assert_eq!(col(trk, "rule"), "sendgrid.open");
        assert_eq!(
            col(trk, "url"),
            "https://u1.ct.sendgrid.net/wf/open?upn=x,y"
        );
        assert_eq!(col(trk, "message_id_sha256"), "ab12");
        assert_eq!(col(&records[4], "message"), "2");
        assert_eq!(col(&records[4], "item"), "message");
    }

    #[test]
    fn copied_trackers_are_not_sent_through() {
        let selligent = TrackerEvidence {
            kind: "link".into(),
            action: "kept-opaque".into(),
            host: "brand.slgnt.eu".into(),
            vendor: Some("Selligent".into()),
            rule: Some("selligent.click".into()),
            url: "https://brand.slgnt.eu/optiext/optiextension.dll?ID=x".into(),
        };
        let safelinks = TrackerEvidence {
            vendor: Some("Microsoft Safe Links".into()),
            ..selligent.clone()
        };
        let phish = message(Vec::new(), vec![selligent.clone(), safelinks]);
        // Safe Links is not an ESP: it is not named.
        assert_eq!(phish.trackers_not_sent_through, ["Selligent"]);
        let mut out = Vec::new();
        write_text("brand.example", std::slice::from_ref(&phish), &mut out).expect("text");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("Not sent through Selligent"), "{text}");
        let mut out = Vec::new();
        write_csv(&[phish], &mut out).expect("csv");
        let csv = String::from_utf8(out).expect("utf8");
        assert!(csv.contains(",not-sent-through,Selligent,"), "{csv}");
        assert!(parse(&csv)
            .iter()
            .all(|r| r.len() == CSV_HEADER.split(',').count()));
        let sent = message(
            vec![EspEvidence {
                name: "Selligent".into(),
                layer: "carrier".into(),
                confidence: "low".into(),
                jurisdiction: None,
                us_exposure: None,
                evidence: Vec::new(),
            }],
            vec![selligent],
        );
        assert!(sent.trackers_not_sent_through.is_empty());
    }
}
