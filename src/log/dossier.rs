//! What `trackless report dossier WHO` reads from the log: every message of a sender address
//! or domain (tracked or not, oldest first), each with its evidence as `report evidence` gives
//! it and the remote hosts its HTML would contact on opening (the `remote` table, schema v4).
//!
//! Five statements in all (the messages, then their providers, trackers, header blocks and
//! remote rows, each table read once for all the messages), in one read-only transaction so
//! that a writer or `log prune` running meanwhile cannot leave a message half read.

use super::evidence::{
    message_id_of, not_sent_through, EspEvidence, MessageEvidence, TrackerEvidence,
};
use super::report::Filter;
use super::sql::{Arg, Backend, Cell};
use super::time;
use serde::Serialize;
use std::collections::BTreeMap;

/// One row of the `remote` table: a host a message would contact, for one kind of resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteRow {
    pub host: String,
    /// image, srcset, background, css, stylesheet, font, poster.
    pub kind: String,
    /// trackless took those URLs out.
    pub removed: bool,
    /// They carry a per-recipient value.
    pub token: bool,
    pub count: u64,
}

/// One logged message of the sender.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedMessage {
    /// The log's key (for ordering only; not shown).
    pub id: i64,
    /// Whether trackless found a tracker in it.
    pub tracked: bool,
    pub evidence: MessageEvidence,
    /// In the order the log stored them.
    pub remote: Vec<RemoteRow>,
}

/// The messages `filter` selects (meant with a sender), oldest first (`seen`, then the order
/// they were logged), with everything the dossier shows.
pub fn messages<B: Backend>(b: &mut B, filter: &Filter) -> Result<Vec<LoggedMessage>, B::Error> {
    super::sql::read_transaction(b, |b| read(b, filter))
}

fn text(c: &[Cell<'_>], i: usize) -> Option<String> {
    c.get(i).and_then(|c| c.text()).map(str::to_string)
}

fn int(c: &[Cell<'_>], i: usize) -> Option<i64> {
    c.get(i).and_then(|c| c.int())
}

fn read<B: Backend>(b: &mut B, filter: &Filter) -> Result<Vec<LoggedMessage>, B::Error> {
    let d = B::DIALECT;
    let (cond, params) = filter.condition(|n| d.placeholder(n));
    let args: Vec<Arg<'_>> = params.iter().map(Arg::from).collect();
    let order = d.row_order();
    let of_messages = format!("message IN (SELECT id FROM messages WHERE {cond})");

    let mut out: Vec<LoggedMessage> = Vec::new();
    b.query(
        &format!(
            "SELECT id, ts, date, from_addr, envelope_sender, message_id_hash, subject, mode,
                    tracked, original_sha256
             FROM messages WHERE {cond} ORDER BY seen, id"
        ),
        &args,
        &mut |c| {
            out.push(LoggedMessage {
                id: int(c, 0).unwrap_or(0),
                tracked: int(c, 8).unwrap_or(0) != 0,
                evidence: MessageEvidence {
                    processed: time::datetime(int(c, 1).unwrap_or(0)),
                    date: int(c, 2).map(time::datetime),
                    from: text(c, 3),
                    envelope_sender: text(c, 4),
                    message_id: None,
                    message_id_sha256: super::record::message_id_sha256(text(c, 5)),
                    subject: text(c, 6),
                    mode: text(c, 7).unwrap_or_default(),
                    original_sha256: text(c, 9),
                    esp: Vec::new(),
                    trackers_not_sent_through: Vec::new(),
                    trackers: Vec::new(),
                    headers: None,
                },
                remote: Vec::new(),
            })
        },
    )?;
    if out.is_empty() {
        return Ok(out);
    }
    let index: BTreeMap<i64, usize> = out.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
    let at = |c: &[Cell<'_>]| int(c, 0).and_then(|id| index.get(&id).copied());

    let mut esp: Vec<(usize, EspEvidence)> = Vec::new();
    b.query(
        &format!(
            "SELECT message, name, layer, confidence, jurisdiction, us_exposure, evidence
             FROM esp WHERE {of_messages} ORDER BY message, layer DESC, {order}"
        ),
        &args,
        &mut |c| {
            if let Some(i) = at(c) {
                esp.push((
                    i,
                    EspEvidence {
                        name: text(c, 1).unwrap_or_default(),
                        layer: text(c, 2).unwrap_or_default(),
                        confidence: text(c, 3).unwrap_or_default(),
                        jurisdiction: text(c, 4),
                        us_exposure: int(c, 5).map(|v| v != 0),
                        evidence: c
                            .get(6)
                            .and_then(|c| c.text())
                            .and_then(|j| serde_json::from_str(j).ok())
                            .unwrap_or_default(),
                    },
                ))
            }
        },
    )?;
    let mut trackers: Vec<(usize, TrackerEvidence)> = Vec::new();
    b.query(
        &format!(
            "SELECT message, kind, action, host, vendor, rule, url
             FROM trackers WHERE {of_messages} ORDER BY message, {order}"
        ),
        &args,
        &mut |c| {
            if let Some(i) = at(c) {
                trackers.push((
                    i,
                    TrackerEvidence {
                        kind: text(c, 1).unwrap_or_default(),
                        action: text(c, 2).unwrap_or_default(),
                        host: text(c, 3).unwrap_or_default(),
                        vendor: text(c, 4),
                        rule: text(c, 5),
                        url: text(c, 6).unwrap_or_default(),
                    },
                ))
            }
        },
    )?;
    let mut headers: Vec<(usize, String)> = Vec::new();
    b.query(
        &format!("SELECT message, block FROM headers WHERE {of_messages}"),
        &args,
        &mut |c| {
            if let (Some(i), Some(h)) = (at(c), text(c, 1)) {
                headers.push((i, h));
            }
        },
    )?;
    let mut remote: Vec<(usize, RemoteRow)> = Vec::new();
    b.query(
        &format!(
            "SELECT message, host, kind, removed, token, count
             FROM remote WHERE {of_messages} ORDER BY message, {order}"
        ),
        &args,
        &mut |c| {
            if let Some(i) = at(c) {
                remote.push((
                    i,
                    RemoteRow {
                        host: text(c, 1).unwrap_or_default(),
                        kind: text(c, 2).unwrap_or_default(),
                        removed: int(c, 3).unwrap_or(0) != 0,
                        token: int(c, 4).unwrap_or(0) != 0,
                        count: int(c, 5).unwrap_or(0).max(0) as u64,
                    },
                ))
            }
        },
    )?;

    for (i, e) in esp {
        out[i].evidence.esp.push(e);
    }
    for (i, t) in trackers {
        out[i].evidence.trackers.push(t);
    }
    for (i, h) in headers {
        out[i].evidence.message_id = message_id_of(&h);
        out[i].evidence.headers = Some(h);
    }
    for (i, r) in remote {
        out[i].remote.push(r);
    }
    for m in &mut out {
        let e = &mut m.evidence;
        e.trackers_not_sent_through = not_sent_through(&e.esp, &e.trackers);
    }
    Ok(out)
}
