//! `trackless report --by operator`: who the messages made the reader's client contact, by the
//! operator of each remote host (`rules/operators.toml`), from the `remote` table (schema v4).
//!
//! JSON/CSV schema (stable; one object / row per operator, or per host when no operator is
//! known): `operator` (name, or the host itself), `known` (the operator is in the table),
//! `kind` (cdn, cloud, fonts, esp, analytics, social, image-proxy, hosting; `unknown`),
//! `legal_entity`, `jurisdiction`, `us_exposure` (the entity or its parent is a US company;
//! null when not known), `messages` (with at least one URL there), `hosts` (distinct),
//! `urls` (all), `removed` (URLs trackless took out), `still_loaded` (URLs the rewritten
//! messages still load), `with_token` (URLs carrying a per-recipient value), `senders`
//! (distinct sender domains), `first_seen`, `last_seen` (YYYY-MM-DD, UTC).

use super::report::{csv_field, fit};
use super::time;
use crate::core::operators::Operators;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// The columns read per remote row, in this order (shared by the backends).
pub fn scan_sql(cond: &str) -> String {
    format!(
        "SELECT remote.host, remote.removed, remote.token, remote.count, messages.id,
                messages.from_domain, messages.seen
         FROM remote JOIN messages ON messages.id = remote.message WHERE {cond}"
    )
}

/// One row of [`scan_sql`].
#[derive(Debug, Default)]
pub struct ScanRow<'a> {
    pub host: &'a str,
    pub removed: bool,
    pub token: bool,
    pub count: i64,
    pub message: i64,
    pub from_domain: Option<&'a str>,
    pub seen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorRow {
    pub operator: String,
    pub known: bool,
    pub kind: String,
    pub legal_entity: Option<String>,
    pub jurisdiction: Option<String>,
    pub us_exposure: Option<bool>,
    pub messages: u64,
    pub hosts: u64,
    pub urls: u64,
    pub removed: u64,
    pub still_loaded: u64,
    pub with_token: u64,
    pub senders: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Default)]
struct Acc {
    messages: BTreeSet<i64>,
    hosts: BTreeSet<String>,
    senders: BTreeSet<String>,
    urls: u64,
    removed: u64,
    token: u64,
    first: i64,
    last: i64,
}

/// Rows grouped by operator, most URLs first (then by name).
pub struct ByOperator<'o> {
    operators: &'o Operators,
    groups: BTreeMap<(bool, String), Acc>,
}

impl<'o> ByOperator<'o> {
    pub fn new(operators: &'o Operators) -> ByOperator<'o> {
        ByOperator {
            operators,
            groups: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, r: &ScanRow<'_>) {
        let host = r.host.to_ascii_lowercase();
        let key = match self.operators.of(&host) {
            Some(op) => (true, op.name.clone()),
            None => (false, host.clone()),
        };
        let acc = self.groups.entry(key).or_insert_with(|| Acc {
            first: i64::MAX,
            last: i64::MIN,
            ..Acc::default()
        });
        let n = r.count.max(0) as u64;
        acc.messages.insert(r.message);
        acc.hosts.insert(host);
        if let Some(d) = r.from_domain {
            acc.senders.insert(d.to_string());
        }
        acc.urls += n;
        if r.removed {
            acc.removed += n;
        }
        if r.token {
            acc.token += n;
        }
        acc.first = acc.first.min(r.seen);
        acc.last = acc.last.max(r.seen);
    }

    pub fn finish(self) -> Vec<OperatorRow> {
        let ops = self.operators;
        let mut rows: Vec<OperatorRow> = self
            .groups
            .into_iter()
            .map(|((known, name), a)| {
                let op = known
                    .then(|| ops.all().iter().find(|o| o.name == name))
                    .flatten();
                OperatorRow {
                    kind: op.map_or("unknown".into(), |o| o.kind.clone()),
                    legal_entity: op.and_then(|o| o.legal_entity.clone()),
                    jurisdiction: op.and_then(|o| o.jurisdiction.clone()),
                    us_exposure: op.and_then(|o| o.us_exposure),
                    operator: name,
                    known,
                    messages: a.messages.len() as u64,
                    hosts: a.hosts.len() as u64,
                    urls: a.urls,
                    removed: a.removed,
                    still_loaded: a.urls - a.removed,
                    with_token: a.token,
                    senders: a.senders.len() as u64,
                    first_seen: time::date(a.first),
                    last_seen: time::date(a.last),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.urls
                .cmp(&a.urls)
                .then_with(|| a.operator.cmp(&b.operator))
        });
        rows
    }
}

pub fn write_table(rows: &[OperatorRow], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<26} {:<10} {:<8} {:>6} {:>7} {:>8} {:>7} {:>6} {:>7}",
        "OPERATOR (OR HOST)",
        "KIND",
        "COUNTRY",
        "MSGS",
        "URLS",
        "REMOVED",
        "LOADED",
        "TOKEN",
        "SENDERS"
    )?;
    for r in rows {
        let country = match (&r.jurisdiction, r.us_exposure) {
            (Some(j), Some(true)) if j != "US" => format!("{j}/US"),
            (Some(j), _) => j.clone(),
            (None, Some(true)) => "US".into(),
            (None, _) => "?".into(),
        };
        writeln!(
            out,
            "{:<26} {:<10} {:<8} {:>6} {:>7} {:>8} {:>7} {:>6} {:>7}",
            fit(&r.operator, 26),
            fit(&r.kind, 10),
            fit(&country, 8),
            r.messages,
            r.urls,
            r.removed,
            r.still_loaded,
            r.with_token,
            r.senders
        )?;
    }
    if rows.is_empty() {
        writeln!(
            out,
            "(no remote content logged: messages logged before schema v4 have none)"
        )?;
    }
    Ok(())
}

pub fn write_json(rows: &[OperatorRow], out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, rows)?;
    writeln!(out)
}

pub fn write_csv(rows: &[OperatorRow], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "operator,known,kind,legal_entity,jurisdiction,us_exposure,messages,hosts,urls,removed,still_loaded,with_token,senders,first_seen,last_seen"
    )?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.operator),
            r.known,
            csv_field(&r.kind),
            csv_field(r.legal_entity.as_deref().unwrap_or("")),
            csv_field(r.jurisdiction.as_deref().unwrap_or("")),
            r.us_exposure.map_or(String::new(), |b| b.to_string()),
            r.messages,
            r.hosts,
            r.urls,
            r.removed,
            r.still_loaded,
            r.with_token,
            r.senders,
            r.first_seen,
            r.last_seen
        )?;
    }
    Ok(())
}
