//! Everything the log does in SQL, written once for both backends: migrations, inserting
//! records, retention, the report scan, weekly counts and the evidence of a sender. A backend
//! (SQLite in `store.rs`, PostgreSQL in `postgres.rs`) only connects, runs a statement with
//! its parameters and hands back the cells of each row.

use super::evidence::{
    message_id_of, not_sent_through, EspEvidence, MessageEvidence, TrackerEvidence,
};
use super::record::Record;
use super::remote::{self, OperatorRow};
use super::report::{self, By, Filter, Param, Row, ScanRow, Summary};
use super::schema::{self, Dialect};
use super::time;
use crate::core::operators::Operators;

/// A statement parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Arg::Int(i64::from(v))
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

impl<'a> From<&'a Param> for Arg<'a> {
    fn from(p: &'a Param) -> Self {
        match p {
            Param::Int(i) => Arg::Int(*i),
            Param::Text(t) => Arg::Text(t),
        }
    }
}

/// A cell of a result row (anything neither an integer nor text reads as NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> Cell<'a> {
    pub fn int(self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn text(self) -> Option<&'a str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }

    fn string(self) -> Option<String> {
        self.text().map(str::to_string)
    }
}

/// A connection to the log, as the statements below use it.
pub trait Backend {
    type Error;

    const DIALECT: Dialect;

    /// Run statements without parameters or results (DDL, BEGIN/COMMIT).
    fn batch(&mut self, sql: &str) -> Result<(), Self::Error>;

    /// Run one statement; returns the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, Self::Error>;

    /// Run a query, calling `row` with the cells of each result row in order.
    fn query(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        row: &mut dyn FnMut(&[Cell<'_>]),
    ) -> Result<(), Self::Error>;

    /// Insert one row and return its key (`id`). `RETURNING id` here; SQLite reads the rowid
    /// instead (a statement with `RETURNING` copies every page it touches into a statement
    /// journal first).
    fn insert_id(&mut self, insert: &str, args: &[Arg<'_>]) -> Result<i64, Self::Error> {
        let mut id = 0;
        self.query(&format!("{insert} RETURNING id"), args, &mut |c| {
            id = c.first().and_then(|c| c.int()).unwrap_or(0)
        })?;
        Ok(id)
    }

    /// The error for a log whose schema is newer than this program.
    fn too_new(&self, found: i64) -> Self::Error;

    /// Extra statement run first in a migration's transaction (PostgreSQL's advisory lock).
    fn migration_lock(&self) -> Option<&'static str> {
        None
    }

    // What the log does, the same on every backend.

    /// Apply migrations up to `target` (tests use smaller targets to build old logs).
    fn migrate(&mut self, target: usize) -> Result<(), Self::Error>
    where
        Self: Sized,
    {
        migrate(self, target)
    }

    /// The schema version the log is at.
    fn version(&mut self) -> Result<i64, Self::Error>
    where
        Self: Sized,
    {
        version(self)
    }

    /// Insert records in one transaction (all or none).
    fn insert(&mut self, records: &[Record]) -> Result<(), Self::Error>
    where
        Self: Sized,
    {
        insert(self, records)
    }

    /// Delete messages processed before `before` (unix seconds); returns how many.
    fn prune(&mut self, before: i64) -> Result<usize, Self::Error>
    where
        Self: Sized,
    {
        prune(self, before)
    }

    /// The SHA-256 of every kept original a message refers to.
    fn original_hashes(&mut self) -> Result<std::collections::HashSet<String>, Self::Error>
    where
        Self: Sized,
    {
        original_hashes(self)
    }

    fn summarise(&mut self, by: By, filter: &Filter) -> Result<Vec<Row>, Self::Error>
    where
        Self: Sized,
    {
        summarise(self, by, filter)
    }

    fn trackers_per_week(&mut self, filter: &Filter) -> Result<Vec<(String, u64)>, Self::Error>
    where
        Self: Sized,
    {
        trackers_per_week(self, filter)
    }

    fn by_operator(
        &mut self,
        filter: &Filter,
        operators: &Operators,
    ) -> Result<Vec<OperatorRow>, Self::Error>
    where
        Self: Sized,
    {
        by_operator(self, filter, operators)
    }

    fn evidence(
        &mut self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<MessageEvidence>, Self::Error>
    where
        Self: Sized,
    {
        evidence(self, filter, limit)
    }
}

/// Run `f` in a transaction: committed if it succeeds, rolled back if not.
fn transaction<B: Backend, T>(
    b: &mut B,
    f: impl FnOnce(&mut B) -> Result<T, B::Error>,
) -> Result<T, B::Error> {
    in_transaction(b, B::DIALECT.begin(), f)
}

/// Run `f`, which only reads, in a read transaction (one state of the log throughout).
pub fn read_transaction<B: Backend, T>(
    b: &mut B,
    f: impl FnOnce(&mut B) -> Result<T, B::Error>,
) -> Result<T, B::Error> {
    in_transaction(b, B::DIALECT.begin_read(), f)
}

fn in_transaction<B: Backend, T>(
    b: &mut B,
    begin: &str,
    f: impl FnOnce(&mut B) -> Result<T, B::Error>,
) -> Result<T, B::Error> {
    b.batch(begin)?;
    match f(b) {
        Ok(v) => {
            b.batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            // The error that made us roll back is the one to report.
            let _ = b.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Every row of a query, owned (for a query whose rows run other queries).
fn rows<B: Backend>(
    b: &mut B,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Vec<Vec<Option<Value>>>, B::Error> {
    let mut out = Vec::new();
    b.query(sql, args, &mut |cells| out.push(owned(cells)))?;
    Ok(out)
}

/// An owned cell.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Int(i64),
    Text(String),
}

fn owned(cells: &[Cell<'_>]) -> Vec<Option<Value>> {
    cells
        .iter()
        .map(|c| match c {
            Cell::Null => None,
            Cell::Int(i) => Some(Value::Int(*i)),
            Cell::Text(t) => Some(Value::Text(t.to_string())),
        })
        .collect()
}

fn int_at(row: &[Option<Value>], i: usize) -> Option<i64> {
    match row.get(i) {
        Some(Some(Value::Int(v))) => Some(*v),
        _ => None,
    }
}

fn text_at(row: &[Option<Value>], i: usize) -> Option<String> {
    match row.get(i) {
        Some(Some(Value::Text(t))) => Some(t.clone()),
        _ => None,
    }
}

/// The schema version the log is at (0: empty).
pub fn version<B: Backend>(b: &mut B) -> Result<i64, B::Error> {
    let mut v = 0;
    b.query("SELECT version FROM schema_version", &[], &mut |c| {
        v = c.first().and_then(|c| c.int()).unwrap_or(0)
    })?;
    Ok(v)
}

/// Apply migrations up to `target` in one transaction (tests use smaller targets to build
/// old logs). A log newer than this program is refused, not touched.
pub fn migrate<B: Backend>(b: &mut B, target: usize) -> Result<(), B::Error> {
    let dialect = B::DIALECT;
    transaction(b, |b| {
        if let Some(lock) = b.migration_lock() {
            b.batch(lock)?;
        }
        b.batch(&dialect.version_table())?;
        let current = version(b)?;
        if current > schema::VERSION as i64 {
            return Err(b.too_new(current));
        }
        for v in (current as usize + 1)..=target.min(schema::VERSION) {
            b.batch(&dialect.migration(v))?;
        }
        let new = (target as i64).max(current);
        if new != current {
            b.execute("DELETE FROM schema_version", &[])?;
            let sql = format!(
                "INSERT INTO schema_version (version) VALUES ({})",
                dialect.placeholder(1)
            );
            b.execute(&sql, &[Arg::Int(new)])?;
        }
        Ok(())
    })
}

/// The `messages` columns a record fills, with its values, in the table's order.
pub fn message_args(r: &Record) -> Vec<(&'static str, Arg<'_>)> {
    vec![
        ("ts", r.ts.into()),
        ("date", r.date.into()),
        ("seen", r.seen().into()),
        ("mode", r.mode.as_str().into()),
        ("message_id_hash", r.message_id_hash.as_deref().into()),
        ("envelope_sender", r.envelope_sender.as_deref().into()),
        ("from_addr", r.from_addr.as_deref().into()),
        ("from_domain", r.from_domain.as_deref().into()),
        ("subject", r.subject.as_deref().into()),
        ("recipients", r.recipients.as_deref().into()),
        ("changed", r.changed.into()),
        ("tracked", r.tracked().into()),
        ("pixels", r.pixels.into()),
        ("fonts", r.fonts.into()),
        ("links_total", r.links_total.into()),
        ("links_unwrapped", r.links_unwrapped.into()),
        ("links_cleaned", r.links_cleaned.into()),
        ("links_opaque", r.links_opaque.into()),
        ("skipped", r.skipped.as_deref().into()),
        ("esp", r.esp.as_deref().into()),
        (
            "esp_confidence",
            r.esp_confidence.map(|c| c.as_str()).into(),
        ),
        ("jurisdiction", r.jurisdiction.as_deref().into()),
        ("us_exposure", r.us_exposure.into()),
        ("spacers", r.spacers.into()),
        ("original_sha256", r.original_sha256.as_deref().into()),
    ]
}

/// `INSERT INTO table (columns) VALUES (placeholders)`.
fn insert_sql(d: Dialect, table: &str, columns: &[&str]) -> String {
    let values: Vec<String> = (1..=columns.len()).map(|n| d.placeholder(n)).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

/// The columns of a table that a row names, in the table's order (all but a `Key`).
fn columns_of(t: &schema::Table) -> Vec<&'static str> {
    t.columns
        .iter()
        .filter(|c| c.ty != schema::Ty::Key)
        .map(|c| c.name)
        .collect()
}

/// Insert records in one transaction (all or none). Batch and IMAP runs are repeatable: a
/// message an earlier run of the same mode already logged is not logged twice.
pub fn insert<B: Backend>(b: &mut B, records: &[Record]) -> Result<(), B::Error> {
    insert_and(b, records, |_| Ok(()))
}

/// [`insert`], and `also` in the same transaction.
pub fn insert_and<B: Backend>(
    b: &mut B,
    records: &[Record],
    also: impl FnOnce(&mut B) -> Result<(), B::Error>,
) -> Result<(), B::Error> {
    let d = B::DIALECT;
    let messages = insert_sql(d, "messages", &columns_of(&schema::MESSAGES));
    let esp = insert_sql(d, "esp", &columns_of(&schema::ESP));
    let trackers = insert_sql(d, "trackers", &columns_of(&schema::TRACKERS));
    let headers = insert_sql(d, "headers", &columns_of(&schema::HEADERS));
    let remote = insert_sql(d, "remote", &columns_of(&schema::REMOTE));
    let logged = format!(
        "SELECT 1 FROM messages WHERE message_id_hash = {} AND mode = {} LIMIT 1",
        d.placeholder(1),
        d.placeholder(2)
    );
    transaction(b, |b| {
        for r in records {
            if r.mode.repeats() {
                if let Some(h) = &r.message_id_hash {
                    let mut found = false;
                    let args = [Arg::Text(h), Arg::Text(r.mode.as_str())];
                    b.query(&logged, &args, &mut |_| found = true)?;
                    if found {
                        continue;
                    }
                }
            }
            let args: Vec<Arg<'_>> = message_args(r).into_iter().map(|(_, a)| a).collect();
            let id = b.insert_id(&messages, &args)?;
            for e in &r.esps {
                let evidence = serde_json::to_string(&e.evidence).unwrap_or_else(|_| "[]".into());
                b.execute(
                    &esp,
                    &[
                        id.into(),
                        e.name.as_str().into(),
                        e.layer.as_str().into(),
                        e.confidence.as_str().into(),
                        e.jurisdiction.as_str().into(),
                        e.us_exposure.into(),
                        evidence.as_str().into(),
                    ],
                )?;
            }
            for t in &r.trackers {
                b.execute(
                    &trackers,
                    &[
                        id.into(),
                        t.kind.as_str().into(),
                        t.action.as_str().into(),
                        t.host.as_str().into(),
                        t.vendor.as_deref().into(),
                        t.rule.as_deref().into(),
                        t.url.as_str().into(),
                    ],
                )?;
            }
            if let Some(h) = &r.headers {
                b.execute(&headers, &[id.into(), h.as_str().into()])?;
            }
            for x in &r.remote {
                b.execute(
                    &remote,
                    &[
                        id.into(),
                        x.host.as_str().into(),
                        x.kind.as_str().into(),
                        x.removed.into(),
                        x.token.into(),
                        (x.count.min(i64::MAX as usize) as i64).into(),
                    ],
                )?;
            }
        }
        also(b)
    })
}

/// Delete messages processed before `before` (unix seconds); returns how many.
pub fn prune<B: Backend>(b: &mut B, before: i64) -> Result<usize, B::Error> {
    let sql = format!(
        "DELETE FROM messages WHERE ts < {}",
        B::DIALECT.placeholder(1)
    );
    Ok(b.execute(&sql, &[Arg::Int(before)])? as usize)
}

/// The SHA-256 of every kept original a message of the log refers to (retention deletes the
/// files of the others).
pub fn original_hashes<B: Backend>(
    b: &mut B,
) -> Result<std::collections::HashSet<String>, B::Error> {
    let mut out = std::collections::HashSet::new();
    b.query(
        "SELECT DISTINCT original_sha256 FROM messages WHERE original_sha256 IS NOT NULL",
        &[],
        &mut |c| {
            if let Some(h) = c.first().and_then(|c| c.text()) {
                out.insert(h.to_string());
            }
        },
    )?;
    Ok(out)
}

/// One row per group, most tracking first.
///
/// One plain scan of the log, aggregated here: SQLite's GROUP BY with DISTINCT aggregates
/// sorts the whole table through temporary b-trees, which takes several times longer on a
/// million rows than reading them once.
pub fn summarise<B: Backend>(b: &mut B, by: By, filter: &Filter) -> Result<Vec<Row>, B::Error> {
    let d = B::DIALECT;
    let (cond, params) = filter.condition(|n| d.placeholder(n));
    let args: Vec<Arg<'_>> = params.iter().map(Arg::from).collect();
    let sql = report::scan_sql(by, &cond);
    let mut summary = Summary::new(by);
    b.query(&sql, &args, &mut |c| {
        let int = |i: usize| c.get(i).and_then(|c| c.int()).unwrap_or(0);
        let text = |i: usize| c.get(i).and_then(|c| c.text());
        summary.add(&ScanRow {
            key: text(0),
            esp: text(1),
            jurisdiction: text(2),
            from_domain: text(3),
            tracked: int(4),
            pixels: int(5),
            fonts: int(6),
            links_unwrapped: int(7),
            links_cleaned: int(8),
            links_opaque: int(9),
            us_exposure: int(10),
            seen: int(11),
            spacers: int(12),
        });
    })?;
    b.query(&report::remote_sql(by, &cond), &args, &mut |c| {
        let removed = c.get(2).and_then(|c| c.int()).unwrap_or(0) != 0;
        if let Some(host) = c.get(1).and_then(|c| c.text()) {
            summary.add_remote(c.first().and_then(|c| c.text()), host, removed);
        }
    })?;
    Ok(summary.finish())
}

/// The remote hosts the filtered messages contact, by operator (`report --by operator`).
pub fn by_operator<B: Backend>(
    b: &mut B,
    filter: &Filter,
    operators: &Operators,
) -> Result<Vec<OperatorRow>, B::Error> {
    let d = B::DIALECT;
    let (cond, params) = filter.condition(|n| d.placeholder(n));
    let args: Vec<Arg<'_>> = params.iter().map(Arg::from).collect();
    let mut acc = remote::ByOperator::new(operators);
    b.query(&remote::scan_sql(&cond), &args, &mut |c| {
        let int = |i: usize| c.get(i).and_then(|c| c.int()).unwrap_or(0);
        acc.add(&remote::ScanRow {
            host: c.first().and_then(|c| c.text()).unwrap_or(""),
            removed: int(1) != 0,
            token: int(2) != 0,
            count: int(3),
            message: int(4),
            from_domain: c.get(5).and_then(|c| c.text()),
            seen: int(6),
        });
    })?;
    Ok(acc.finish())
}

/// Trackers per ISO week (Monday) over the filter, for the HTML chart: (week start, count).
pub fn trackers_per_week<B: Backend>(
    b: &mut B,
    filter: &Filter,
) -> Result<Vec<(String, u64)>, B::Error> {
    let d = B::DIALECT;
    let (cond, params) = filter.condition(|n| d.placeholder(n));
    let args: Vec<Arg<'_>> = params.iter().map(Arg::from).collect();
    let mut out = Vec::new();
    b.query(&report::weeks_sql(&cond), &args, &mut |c| {
        let week = c.first().and_then(|c| c.int()).unwrap_or(0);
        let n = c.get(1).and_then(|c| c.int()).unwrap_or(0).max(0) as u64;
        out.push((time::date(week), n));
    })?;
    Ok(out)
}

/// Tracked messages of a sender or domain, newest first, with their evidence.
pub fn evidence<B: Backend>(
    b: &mut B,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<MessageEvidence>, B::Error> {
    let d = B::DIALECT;
    let (cond, mut params) = filter.condition(|n| d.placeholder(n));
    params.push(Param::Int(limit as i64));
    let args: Vec<Arg<'_>> = params.iter().map(Arg::from).collect();
    let sql = format!(
        "SELECT id, ts, date, from_addr, envelope_sender, message_id_hash, subject, mode,
                original_sha256
         FROM messages WHERE {cond} AND tracked = 1 ORDER BY seen DESC, id DESC LIMIT {}",
        d.placeholder(params.len())
    );
    let order = d.row_order();
    let p1 = d.placeholder(1);
    let esp_sql = format!(
        "SELECT name, layer, confidence, jurisdiction, us_exposure, evidence FROM esp
         WHERE message = {p1} ORDER BY layer DESC, {order}"
    );
    let trk_sql = format!(
        "SELECT kind, action, host, vendor, rule, url FROM trackers
         WHERE message = {p1} ORDER BY {order}"
    );
    let hdr_sql = format!("SELECT block FROM headers WHERE message = {p1}");
    let messages = rows(b, &sql, &args)?;
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        let id = Arg::Int(int_at(&m, 0).unwrap_or(0));
        let mut esp = Vec::new();
        b.query(&esp_sql, &[id], &mut |c| {
            let t = |i: usize| c.get(i).and_then(|c| c.string());
            esp.push(EspEvidence {
                name: t(0).unwrap_or_default(),
                layer: t(1).unwrap_or_default(),
                confidence: t(2).unwrap_or_default(),
                jurisdiction: t(3),
                us_exposure: c.get(4).and_then(|c| c.int()).map(|v| v != 0),
                evidence: c
                    .get(5)
                    .and_then(|c| c.text())
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or_default(),
            })
        })?;
        let mut trackers = Vec::new();
        b.query(&trk_sql, &[id], &mut |c| {
            let t = |i: usize| c.get(i).and_then(|c| c.string());
            trackers.push(TrackerEvidence {
                kind: t(0).unwrap_or_default(),
                action: t(1).unwrap_or_default(),
                host: t(2).unwrap_or_default(),
                vendor: t(3),
                rule: t(4),
                url: t(5).unwrap_or_default(),
            })
        })?;
        let mut headers = None;
        b.query(&hdr_sql, &[id], &mut |c| {
            headers = c.first().and_then(|c| c.string())
        })?;
        out.push(MessageEvidence {
            processed: time::datetime(int_at(&m, 1).unwrap_or(0)),
            date: int_at(&m, 2).map(time::datetime),
            from: text_at(&m, 3),
            envelope_sender: text_at(&m, 4),
            message_id: headers.as_deref().and_then(message_id_of),
            message_id_sha256: super::record::message_id_sha256(text_at(&m, 5)),
            subject: text_at(&m, 6),
            mode: text_at(&m, 7).unwrap_or_default(),
            original_sha256: text_at(&m, 8),
            trackers_not_sent_through: not_sent_through(&esp, &trackers),
            esp,
            trackers,
            headers,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record fills every column of `messages` but its key, in the table's order, so a
    /// column added to the schema without its value (or the reverse) fails here.
    #[test]
    fn a_record_fills_exactly_the_messages_columns() {
        let r: Record = serde_json::from_str(
            r#"{"ts":1,"date":null,"mode":"filter","message_id_hash":null,"envelope_sender":null,
            "from_addr":null,"from_domain":null,"subject":null,"recipients":null,"changed":false,
            "pixels":0,"spacers":0,"fonts":0,"links_total":0,"links_unwrapped":0,
            "links_cleaned":0,"links_opaque":0,"skipped":null,"esp":null,"esp_confidence":null,
            "jurisdiction":null,"us_exposure":null,"esps":[],"trackers":[],"headers":null}"#,
        )
        .expect("record");
        let named: Vec<&str> = message_args(&r).iter().map(|(n, _)| *n).collect();
        assert_eq!(named, columns_of(&schema::MESSAGES));
    }

    #[test]
    fn statements_use_the_dialects_placeholders() {
        assert_eq!(
            insert_sql(Dialect::Postgres, "headers", &["message", "block"]),
            "INSERT INTO headers (message, block) VALUES ($1, $2)"
        );
        assert_eq!(
            insert_sql(Dialect::Sqlite, "headers", &["message", "block"]),
            "INSERT INTO headers (message, block) VALUES (?1, ?2)"
        );
    }
}
