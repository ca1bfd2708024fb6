//! `trackless report …` and `trackless log prune`: read the tracking log.

use crate::core::operators::Operators;
use crate::log::evidence;
use crate::log::remote;
use crate::log::report::{self, By, Filter, Format};
use crate::log::{html, time, Db, LogTarget};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Error;

/// Options of `trackless report`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub sub: Option<ReportSub>,
    /// Group rows by sender domain, sender address or ESP; or list the remote hosts the
    /// messages make the reader's client contact, by their operator (CDN, cloud, font
    /// service, ESP) with its country.
    #[arg(long, value_enum, default_value = "domain")]
    pub by: GroupBy,
    #[command(flatten)]
    pub period: Period,
    /// Only this sender address, or domain.
    #[arg(long)]
    pub sender: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Also write a self-contained HTML report (tables and charts) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Period {
    /// From this time on: a duration back from now (30d, 12h, 2w) or a date (2026-11-01).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Before this time (same forms).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ReportSub {
    /// Evidence for one sender address or domain (for a data-protection complaint).
    Evidence {
        /// news@shop.example or shop.example
        who: String,
        /// At most this many messages, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        period: Period,
        /// table: text for a complaint; json; csv: one row per tracker and per provider
        /// evidence line.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// A complaint-ready dossier for one sender address or domain, written to DIR: a
    /// self-contained printable page (dossier.html), the same data as JSON (evidence.json) and,
    /// when the log kept them (--keep-headers), the raw header blocks (headers/N.txt, N the
    /// message's number in the dossier). Files readable by their owner only; the same log
    /// gives the same bytes.
    Dossier {
        /// news@shop.example or shop.example
        who: String,
        /// The language of the page: en or fr.
        #[arg(long, default_value = "en", value_name = "LANG")]
        lang: crate::dossier::Lang,
        /// The folder to write (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also print the page to DIR/dossier.pdf with a headless Chromium (chromium,
        /// chromium-browser or google-chrome on PATH, or TRACKLESS_CHROMIUM).
        #[arg(long)]
        pdf: bool,
        #[command(flatten)]
        period: Period,
    },
}

/// `trackless log …`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LogCmd {
    /// Delete messages older than a duration or date (retention).
    Prune {
        #[arg(long, value_name = "WHEN")]
        older_than: String,
    },
}

fn filter(period: &Period, sender: Option<String>) -> Result<Filter, Error> {
    let now = time::now();
    let when = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| time::parse_when(s, now))
            .transpose()
            .map_err(|e| Error::Usage(format!("--{flag}: {e}")))
    };
    Ok(Filter {
        since: when("since", &period.since)?,
        until: when("until", &period.until)?,
        sender,
    })
}

fn open_existing(log: &LogTarget) -> Result<Db, Error> {
    if !log.exists() {
        return Err(Error::Usage(format!(
            "no tracking log at {log} (trackless filter and the daemons write it; or give --log PATH)"
        )));
    }
    Db::open(log).map_err(failed)
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::Failed(e.to_string())
}

fn period_text(f: &Filter) -> String {
    match (f.since, f.until) {
        (Some(s), Some(u)) => format!("{} to {}", time::date(s), time::date(u)),
        (Some(s), None) => format!("since {}", time::date(s)),
        (None, Some(u)) => format!("until {}", time::date(u)),
        (None, None) => "all time".into(),
    }
}

/// How `report` groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Domain,
    Sender,
    Esp,
    Operator,
}

/// Run `report` (or `report evidence`).
pub fn run(args: &ReportArgs, log: &LogTarget, out: &mut dyn Write) -> Result<(), Error> {
    let mut store = open_existing(log)?;
    let io = Error::output;
    if let Some(ReportSub::Dossier {
        who,
        lang,
        out: dir,
        pdf,
        period,
    }) = &args.sub
    {
        write_dossier(&mut store, log, who, *lang, dir, period, out)?;
        if *pdf {
            let html = std::fs::canonicalize(dir.join("dossier.html"))
                .map_err(|e| Error::Failed(format!("{}: {e}", dir.display())))?;
            let pdf = html.with_file_name("dossier.pdf");
            crate::dossier::pdf::print(&html, &pdf)
                .map_err(|e| Error::Failed(format!("{e}; {} was written", html.display())))?;
            writeln!(out, "printed {}", pdf.display()).map_err(io)?;
        }
        return Ok(());
    }
    if let Some(ReportSub::Evidence {
        who,
        limit,
        period,
        format,
    }) = &args.sub
    {
        let f = filter(period, Some(who.clone()))?;
        let items = store.evidence(&f, *limit).map_err(failed)?;
        return match format {
            Format::Json => serde_json::to_string_pretty(&items)
                .map_err(failed)
                .and_then(|s| writeln!(out, "{s}").map_err(io)),
            Format::Csv => evidence::write_csv(&items, out).map_err(io),
            Format::Table => evidence::write_text(who, &items, out).map_err(io),
        };
    }
    let f = filter(&args.period, args.sender.clone())?;
    let by = match args.by {
        GroupBy::Domain => By::Domain,
        GroupBy::Sender => By::Sender,
        GroupBy::Esp => By::Esp,
        GroupBy::Operator => {
            if args.html.is_some() {
                return Err(Error::Usage(
                    "--html draws the sender and ESP tables: use it without --by operator".into(),
                ));
            }
            let rows = store
                .by_operator(&f, Operators::embedded())
                .map_err(failed)?;
            match args.format {
                Format::Table => remote::write_table(&rows, out).map_err(io)?,
                Format::Json => remote::write_json(&rows, out).map_err(io)?,
                Format::Csv => remote::write_csv(&rows, out).map_err(io)?,
            }
            return Ok(());
        }
    };
    let rows = store.summarise(by, &f).map_err(failed)?;
    match args.format {
        Format::Table => report::write_table(&rows, by, out).map_err(io)?,
        Format::Json => report::write_json(&rows, out).map_err(io)?,
        Format::Csv => report::write_csv(&rows, out).map_err(io)?,
    }
    if let Some(path) = &args.html {
        let by_domain = if by == By::Domain {
            rows.clone()
        } else {
            store.summarise(By::Domain, &f).map_err(failed)?
        };
        let by_esp = store.summarise(By::Esp, &f).map_err(failed)?;
        let weeks = store.trackers_per_week(&f).map_err(failed)?;
        let page = html::page(
            "trackless: who tracks me",
            &period_text(&f),
            &by_domain,
            &by_esp,
            &weeks,
        );
        write_private(path, page.as_bytes())
            .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// `report dossier`: read the sender's messages, assemble, write the page and the evidence
/// files into `dir`.
fn write_dossier(
    store: &mut Db,
    log: &LogTarget,
    who: &str,
    lang: crate::dossier::Lang,
    dir: &Path,
    period: &Period,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let f = filter(period, Some(who.to_string()))?;
    let messages = store.dossier(&f).map_err(failed)?;
    if messages.is_empty() {
        return Err(Error::Failed(format!(
            "no message from {} in the log at {log} ({}): no dossier written",
            who.trim(),
            period_text(&f)
        )));
    }
    let rules = crate::core::rules::Rules::embedded();
    let facts = |name: &str| rules.provider_facts(name);
    // The kind of log, not its path: a dossier goes to third parties, and a path names the
    // user's home (or a database host).
    let mut from = format!(
        "trackless {}, {} log",
        env!("CARGO_PKG_VERSION"),
        match log {
            LogTarget::Sqlite(_) => "SQLite",
            LogTarget::Postgres(_) => "PostgreSQL",
        }
    );
    if f.since.is_some() || f.until.is_some() {
        from.push_str(", ");
        from.push_str(&period_text(&f));
    }
    let d = crate::dossier::assemble(who, &messages, Operators::embedded(), &facts, &from);
    let page = crate::dossier::html(&d, lang);
    let json = serde_json::to_string_pretty(&d).map_err(failed)? + "\n";
    fn at(p: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::Failed(format!("{}: {e}", p.display()))
    }
    create_private_dir(dir).map_err(at(dir))?;
    let html_path = dir.join("dossier.html");
    write_private(&html_path, page.as_bytes()).map_err(at(&html_path))?;
    let json_path = dir.join("evidence.json");
    write_private(&json_path, json.as_bytes()).map_err(at(&json_path))?;
    // Header blocks as headers/N.txt; numbered files a previous dossier left there go.
    let headers = dir.join("headers");
    let mut written = std::collections::BTreeSet::new();
    for (i, m) in d.messages.iter().enumerate() {
        let Some(h) = &m.headers else { continue };
        if written.is_empty() {
            create_private_dir(&headers).map_err(at(&headers))?;
        }
        let name = format!("{}.txt", i + 1);
        let path = headers.join(&name);
        write_private(&path, h.as_bytes()).map_err(at(&path))?;
        written.insert(name);
    }
    if let Ok(entries) = std::fs::read_dir(&headers) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let numbered = name
                .strip_suffix(".txt")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if numbered && !written.contains(&name) {
                std::fs::remove_file(e.path()).map_err(at(&e.path()))?;
            }
        }
        if written.is_empty() {
            // Only if nothing else is in it.
            let _ = std::fs::remove_dir(&headers);
        }
    }
    let tracked = messages.iter().filter(|m| m.tracked).count();
    let mut files = format!("{}, {}", html_path.display(), json_path.display());
    if !written.is_empty() {
        files.push_str(&format!(
            ", {} header block(s) in {}",
            written.len(),
            headers.display()
        ));
    }
    writeln!(
        out,
        "dossier for {}: {} message(s), {tracked} with trackers; wrote {files}",
        d.sender.address,
        d.messages.len()
    )
    .map_err(Error::output)
}

/// A folder only its owner can enter (created with its parents if missing; an existing one is
/// left as it is).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Run `log prune`.
pub fn prune(cmd: &LogCmd, log: &LogTarget, out: &mut dyn Write) -> Result<(), Error> {
    let LogCmd::Prune { older_than } = cmd;
    let before = time::parse_when(older_than, time::now())
        .map_err(|e| Error::Usage(format!("--older-than: {e}")))?;
    let n = open_existing(log)?.prune(before).map_err(failed)?;
    writeln!(
        out,
        "deleted {n} message(s) processed before {}",
        time::datetime(before)
    )
    .map_err(Error::output)
}

/// Write a file readable by its owner only (reports hold personal data).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}
