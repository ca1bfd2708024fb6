//! `trackless report`: who tracks me, through which provider, since when. Reads the log with
//! one aggregate query per report; prints a table that fits 100 columns, JSON or CSV.
//!
//! JSON/CSV schema (stable; one object / row per group):
//! `key` (sender domain, sender address or ESP), `messages`, `tracked` (messages with at least
//! one tracker), `tracked_share` (0–1), `pixels`, `fonts`, `links_unwrapped`, `links_cleaned`,
//! `links_opaque`, `spacers` (invisible layout images removed, not tracking), `esps` (platform/carrier combinations seen), `jurisdictions` (of the
//! carriers), `us_exposure` (some message went through a US provider or US-owned one),
//! `senders` (distinct sender domains), `first_seen`, `last_seen` (YYYY-MM-DD, UTC),
//! `remote_hosts` (distinct remote hosts the messages' HTML would contact on opening),
//! `remote_hosts_left` (those the rewritten messages still contact).

use super::time;
use serde::Serialize;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum By {
    #[default]
    Domain,
    Sender,
    Esp,
}

impl By {
    fn column(self) -> &'static str {
        match self {
            By::Domain => "from_domain",
            By::Sender => "from_addr",
            By::Esp => "esp",
        }
    }

    fn title(self) -> &'static str {
        match self {
            By::Domain => "SENDER DOMAIN",
            By::Sender => "SENDER",
            By::Esp => "ESP (PLATFORM/CARRIER)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

/// Which messages a report covers (by `seen`: the message's own date when plausible).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// A sender address (with `@`) or domain.
    pub sender: Option<String>,
}

/// A parameter of a filter condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Int(i64),
    Text(String),
}

impl Filter {
    /// SQL condition and parameters; `placeholder(n)` writes the n-th (1-based) parameter
    /// (`?1` for SQLite, `$1` for PostgreSQL).
    pub fn condition(&self, placeholder: impl Fn(usize) -> String) -> (String, Vec<Param>) {
        let mut cond = vec!["1=1".to_string()];
        let mut params = Vec::new();
        if let Some(s) = self.since {
            cond.push(format!("seen >= {}", placeholder(params.len() + 1)));
            params.push(Param::Int(s));
        }
        if let Some(u) = self.until {
            cond.push(format!("seen < {}", placeholder(params.len() + 1)));
            params.push(Param::Int(u));
        }
        if let Some(s) = &self.sender {
            let s = s.trim().to_ascii_lowercase();
            let col = if s.contains('@') {
                "from_addr"
            } else {
                "from_domain"
            };
            cond.push(format!("{col} = {}", placeholder(params.len() + 1)));
            params.push(Param::Text(s));
        }
        (cond.join(" AND "), params)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub key: String,
    pub messages: u64,
    pub tracked: u64,
    pub tracked_share: f64,
    pub pixels: u64,
    pub spacers: u64,
    pub fonts: u64,
    pub links_unwrapped: u64,
    pub links_cleaned: u64,
    pub links_opaque: u64,
    pub esps: Vec<String>,
    pub jurisdictions: Vec<String>,
    pub us_exposure: bool,
    pub senders: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub remote_hosts: u64,
    pub remote_hosts_left: u64,
}

/// The remote rows a summary reads: group key, host, removed (shared by the backends).
pub fn remote_sql(by: By, cond: &str) -> String {
    format!(
        "SELECT messages.{}, remote.host, remote.removed
         FROM remote JOIN messages ON messages.id = remote.message WHERE {cond}",
        by.column()
    )
}

/// The columns a summary reads from each message, in this order (shared by the backends).
pub fn scan_sql(by: By, cond: &str) -> String {
    format!(
        "SELECT {}, esp, jurisdiction, from_domain, tracked, pixels, fonts, links_unwrapped,
                links_cleaned, links_opaque, us_exposure, seen, spacers
         FROM messages WHERE {cond}",
        by.column()
    )
}

/// One message as a summary sees it (the columns of [`scan_sql`]).
#[derive(Debug, Default)]
pub struct ScanRow<'a> {
    pub key: Option<&'a str>,
    pub esp: Option<&'a str>,
    pub jurisdiction: Option<&'a str>,
    pub from_domain: Option<&'a str>,
    pub tracked: i64,
    pub pixels: i64,
    pub fonts: i64,
    pub links_unwrapped: i64,
    pub links_cleaned: i64,
    pub links_opaque: i64,
    pub us_exposure: i64,
    pub seen: i64,
    pub spacers: i64,
}

struct Acc {
    row: Row,
    domains: std::collections::HashSet<String>,
    first: i64,
    last: i64,
    hosts: std::collections::HashSet<String>,
    hosts_left: std::collections::HashSet<String>,
}

/// Groups messages into report rows. Every backend feeds it the same [`ScanRow`]s, so
/// reports agree whatever the log is stored in.
pub struct Summary {
    by: By,
    groups: std::collections::HashMap<String, Acc>,
}

impl Summary {
    pub fn new(by: By) -> Summary {
        Summary {
            by,
            groups: std::collections::HashMap::new(),
        }
    }

    pub fn add(&mut self, r: &ScanRow<'_>) {
        let key = r.key.unwrap_or("(none)");
        let acc = match self.groups.get_mut(key) {
            Some(a) => a,
            None => self.groups.entry(key.to_string()).or_insert_with(|| Acc {
                row: Row {
                    key: key.to_string(),
                    messages: 0,
                    tracked: 0,
                    tracked_share: 0.0,
                    pixels: 0,
                    spacers: 0,
                    fonts: 0,
                    links_unwrapped: 0,
                    links_cleaned: 0,
                    links_opaque: 0,
                    esps: Vec::new(),
                    jurisdictions: Vec::new(),
                    us_exposure: false,
                    senders: 0,
                    first_seen: String::new(),
                    last_seen: String::new(),
                    remote_hosts: 0,
                    remote_hosts_left: 0,
                },
                domains: std::collections::HashSet::new(),
                first: i64::MAX,
                last: i64::MIN,
                hosts: std::collections::HashSet::new(),
                hosts_left: std::collections::HashSet::new(),
            }),
        };
        let row = &mut acc.row;
        row.messages += 1;
        row.tracked += r.tracked as u64;
        row.pixels += r.pixels as u64;
        row.spacers += r.spacers as u64;
        row.fonts += r.fonts as u64;
        row.links_unwrapped += r.links_unwrapped as u64;
        row.links_cleaned += r.links_cleaned as u64;
        row.links_opaque += r.links_opaque as u64;
        row.us_exposure |= r.us_exposure != 0;
        if let Some(e) = r.esp {
            if !row.esps.iter().any(|x| x == e) {
                row.esps.push(e.to_string());
            }
        }
        if let Some(j) = r.jurisdiction {
            if !row.jurisdictions.iter().any(|x| x == j) {
                row.jurisdictions.push(j.to_string());
            }
        }
        // Distinct sender domains only matter per ESP (a domain or sender row has one).
        if let Some(d) = r.from_domain {
            if (self.by == By::Esp || acc.domains.is_empty()) && !acc.domains.contains(d) {
                acc.domains.insert(d.to_string());
            }
        }
        acc.first = acc.first.min(r.seen);
        acc.last = acc.last.max(r.seen);
    }

    /// A remote host of a message of group `key` (`removed`: the rewrite took it out). Rows
    /// of a group the message scan did not see are left out.
    pub fn add_remote(&mut self, key: Option<&str>, host: &str, removed: bool) {
        let Some(acc) = self.groups.get_mut(key.unwrap_or("(none)")) else {
            return;
        };
        if !acc.hosts.contains(host) {
            acc.hosts.insert(host.to_string());
        }
        if !removed && !acc.hosts_left.contains(host) {
            acc.hosts_left.insert(host.to_string());
        }
    }

    /// The rows, most tracking first.
    pub fn finish(self) -> Vec<Row> {
        let mut out: Vec<Row> = self
            .groups
            .into_values()
            .map(|mut a| {
                a.row.esps.sort();
                a.row.jurisdictions.sort();
                a.row.senders = a.domains.len() as u64;
                a.row.tracked_share = if a.row.messages > 0 {
                    a.row.tracked as f64 / a.row.messages as f64
                } else {
                    0.0
                };
                a.row.first_seen = time::date(a.first);
                a.row.last_seen = time::date(a.last);
                a.row.remote_hosts = a.hosts.len() as u64;
                a.row.remote_hosts_left = a.hosts_left.len() as u64;
                a.row
            })
            .collect();
        // Most tracking first: tracked messages, then trackers, then volume, then name.
        out.sort_by(|a, b| {
            b.tracked
                .cmp(&a.tracked)
                .then(
                    (b.pixels + b.links_opaque + b.links_unwrapped)
                        .cmp(&(a.pixels + a.links_opaque + a.links_unwrapped)),
                )
                .then(b.messages.cmp(&a.messages))
                .then(a.key.cmp(&b.key))
        });
        out
    }
}

pub(crate) fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The human table: at most 100 columns (a test holds it to that).
pub fn write_table(rows: &[Row], by: By, out: &mut dyn Write) -> std::io::Result<()> {
    let key_w = 17;
    writeln!(
        out,
        "{:<key_w$} {:>4} {:>4} {:>6} {:>9} {:>5} {:>5} {:<16} {:<4} {:<10} {:<10}",
        fit(by.title(), key_w),
        "MSGS",
        "TRK%",
        "PIXELS",
        "LINKS U/O",
        "FONTS",
        "HOSTS",
        if by == By::Esp { "SENDERS" } else { "ESP" },
        "JUR",
        "FIRST",
        "LAST"
    )?;
    for r in rows {
        let esp = if by == By::Esp {
            r.senders.to_string()
        } else {
            r.esps.join(",")
        };
        let jur = jurisdiction_cell(r);
        writeln!(
            out,
            "{:<key_w$} {:>4} {:>3.0}% {:>6} {:>9} {:>5} {:>5} {:<16} {:<4} {:<10} {:<10}",
            fit(&r.key, key_w),
            r.messages,
            r.tracked_share * 100.0,
            r.pixels,
            fit(&format!("{}/{}", r.links_unwrapped, r.links_opaque), 9),
            r.fonts,
            fit(&format!("{}/{}", r.remote_hosts_left, r.remote_hosts), 5),
            fit(if esp.is_empty() { "-" } else { &esp }, 16),
            fit(&jur, 4),
            r.first_seen,
            r.last_seen
        )?;
    }
    let total: u64 = rows.iter().map(|r| r.messages).sum();
    let tracked: u64 = rows.iter().map(|r| r.tracked).sum();
    let us: u64 = rows
        .iter()
        .filter(|r| r.us_exposure)
        .map(|r| r.messages)
        .sum();
    writeln!(
        out,
        "JUR: country of the carrier (? unknown); * = US provider or US-owned parent"
    )?;
    writeln!(
        out,
        "HOSTS: remote hosts the mail still makes the reader's client contact / before the rewrite"
    )?;
    writeln!(
        out,
        "{} message(s), {} tracked; {} group(s); {} message(s) in groups that used a US provider",
        total,
        tracked,
        rows.len(),
        us
    )?;
    let spacers: u64 = rows.iter().map(|r| r.spacers).sum();
    if spacers > 0 {
        writeln!(
            out,
            "PIXELS counts beacons only; {spacers} invisible layout spacer(s) were removed too (not tracking)"
        )?;
    }
    Ok(())
}

/// The jurisdiction column: carrier countries, `?` for unknown, `*` when a US company is involved
/// (the provider or its parent) and the country shown is not already US.
fn jurisdiction_cell(r: &Row) -> String {
    let mut j: Vec<&str> = r
        .jurisdictions
        .iter()
        .map(|j| if j == "unknown" { "?" } else { j.as_str() })
        .collect();
    j.dedup();
    let mut s = if j.is_empty() {
        "-".to_string()
    } else {
        j.join(",")
    };
    if r.us_exposure && s != "US" {
        s.push('*');
    }
    s
}

pub fn write_json(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    let s = serde_json::to_string_pretty(rows).map_err(std::io::Error::other)?;
    writeln!(out, "{s}")
}

/// One CSV field, quoted as RFC 4180 says when it holds a comma, a double quote or a line break.
/// Fields come from hostile mail (subjects, header lines): one that a spreadsheet would read as
/// a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`.
pub(crate) fn csv_field(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        return format!("\"'{}\"", s.replace('"', "\"\""));
    }
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn write_csv(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "key,messages,tracked,tracked_share,pixels,fonts,links_unwrapped,links_cleaned,links_opaque,esps,jurisdictions,us_exposure,senders,first_seen,last_seen,spacers,remote_hosts,remote_hosts_left"
    )?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{:.4},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.key),
            r.messages,
            r.tracked,
            r.tracked_share,
            r.pixels,
            r.fonts,
            r.links_unwrapped,
            r.links_cleaned,
            r.links_opaque,
            csv_field(&r.esps.join(";")),
            csv_field(&r.jurisdictions.join(";")),
            r.us_exposure,
            r.senders,
            r.first_seen,
            r.last_seen,
            r.spacers,
            r.remote_hosts,
            r.remote_hosts_left
        )?;
    }
    Ok(())
}

/// Trackers per ISO week: (week start in unix seconds, count) rows, for every backend.
pub fn weeks_sql(cond: &str) -> String {
    // 1970-01-01 was a Thursday: shift by 3 days so weeks start on Monday.
    format!(
        "SELECT ((seen + 259200) / 604800) * 604800 - 259200 AS week,
                CAST(SUM(pixels + fonts + links_unwrapped + links_cleaned + links_opaque) AS BIGINT)
         FROM messages WHERE {cond} GROUP BY week ORDER BY week"
    )
}

#[cfg(test)]
mod csv_tests {
    use super::csv_field;

    #[test]
    fn formulas_from_mail_are_defused() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+1"), "\"'+1\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_field("-2+3"), "\"'-2+3\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("shop.example"), "shop.example");
    }
}
