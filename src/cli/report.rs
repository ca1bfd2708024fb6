//! `trackless report …` and `trackless log prune`: read the tracking log.

use crate::core::operators::Operators;
use crate::core::rules::Rules;
use crate::log::evidence;
use crate::log::originals::{self, Originals};
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
    /// message's number in the dossier) and, when it kept them ([log] keep_originals), the
    /// original messages (originals/N.eml). Files readable by their owner only; the same log
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

/// Run `report` (or `report evidence`, `report dossier`). `rules` are the policy's: the
/// operators of remote hosts and the providers' legal facts come from them (the shipped
/// tables with the user's `[[operator]]` and `[[provider]]` entries on top).
pub fn run(
    args: &ReportArgs,
    log: &LogTarget,
    rules: &Rules,
    out: &mut dyn Write,
) -> Result<(), Error> {
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
        let ask = Ask {
            who,
            lang: *lang,
            dir,
            period,
        };
        write_dossier(&mut store, log, rules, ask, out)?;
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
            let operators = Operators::with_user(rules).map_err(Error::Usage)?;
            let rows = store.by_operator(&f, &operators).map_err(failed)?;
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

/// What `report dossier` was asked for.
struct Ask<'a> {
    who: &'a str,
    lang: crate::dossier::Lang,
    dir: &'a Path,
    period: &'a Period,
}

/// `report dossier`: read the sender's messages, assemble, write the page and the evidence
/// files into `dir`.
fn write_dossier(
    store: &mut Db,
    log: &LogTarget,
    rules: &Rules,
    ask: Ask<'_>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let Ask {
        who,
        lang,
        dir,
        period,
    } = ask;
    let f = filter(period, Some(who.to_string()))?;
    let messages = store.dossier(&f).map_err(failed)?;
    if messages.is_empty() {
        return Err(Error::Failed(format!(
            "no message from {} in the log at {log} ({}): no dossier written",
            who.trim(),
            period_text(&f)
        )));
    }
    let operators = Operators::with_user(rules).map_err(Error::Usage)?;
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
    let mut d = crate::dossier::assemble(who, &messages, &operators, &facts, &from);
    fn at(p: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::Failed(format!("{}: {e}", p.display()))
    }
    create_private_dir(dir).map_err(at(dir))?;
    // The kept originals as originals/N.eml (N the message's number in the dossier), each
    // checked against the SHA-256 the log holds, one at a time; numbered files a previous
    // dossier left there go.
    let folders = Originals::candidates(log);
    let originals_dir = dir.join("originals");
    let mut copied = Numbered::new(&originals_dir, "eml");
    let mut missing = 0;
    for (i, m) in d.messages.iter_mut().enumerate() {
        let Some(sha256) = &m.original_sha256 else {
            continue;
        };
        match read_original(&folders, sha256) {
            Some(bytes) => {
                m.original_file = Some(copied.write(i + 1, &bytes).map_err(|(p, e)| at(&p)(e))?);
            }
            None => missing += 1,
        }
    }
    let copied = copied.finish().map_err(|(p, e)| at(&p)(e))?;
    let page = crate::dossier::html(&d, lang);
    let json = serde_json::to_string_pretty(&d).map_err(failed)? + "\n";
    let html_path = dir.join("dossier.html");
    write_private(&html_path, page.as_bytes()).map_err(at(&html_path))?;
    let json_path = dir.join("evidence.json");
    write_private(&json_path, json.as_bytes()).map_err(at(&json_path))?;
    // Header blocks as headers/N.txt, the same way.
    let headers = dir.join("headers");
    let mut blocks = Numbered::new(&headers, "txt");
    for (i, m) in d.messages.iter().enumerate() {
        if let Some(h) = &m.headers {
            blocks
                .write(i + 1, h.as_bytes())
                .map_err(|(p, e)| at(&p)(e))?;
        }
    }
    let written = blocks.finish().map_err(|(p, e)| at(&p)(e))?;
    let tracked = messages.iter().filter(|m| m.tracked).count();
    let mut files = format!("{}, {}", html_path.display(), json_path.display());
    if written > 0 {
        files.push_str(&format!(
            ", {written} header block(s) in {}",
            headers.display()
        ));
    }
    if copied > 0 {
        files.push_str(&format!(
            ", {copied} original message(s) in {}",
            originals_dir.display()
        ));
    }
    if missing > 0 {
        // Deleted by retention, or damaged: the page gives their SHA-256 only.
        files.push_str(&format!(
            " ({missing} original(s) no longer kept: SHA-256 only)"
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

/// The original whose SHA-256 is `sha256` from the first folder that has it, if its bytes
/// still have that SHA-256 (a file damaged since is not evidence).
fn read_original(folders: &[Originals], sha256: &str) -> Option<Vec<u8>> {
    folders.iter().find_map(|o| {
        let bytes = std::fs::read(o.path(sha256)?).ok()?;
        (originals::sha256_hex(&bytes) == sha256).then_some(bytes)
    })
}

/// Numbered files `N.ext` written into a folder of the dossier (created owner-only with the
/// first one); [`Numbered::finish`] removes the numbered `.ext` files a previous dossier left
/// there that these did not replace, and the folder too when nothing else is in it.
struct Numbered<'a> {
    dir: &'a Path,
    ext: &'a str,
    written: std::collections::BTreeSet<String>,
}

type FileError = (PathBuf, std::io::Error);

impl<'a> Numbered<'a> {
    fn new(dir: &'a Path, ext: &'a str) -> Numbered<'a> {
        Numbered {
            dir,
            ext,
            written: std::collections::BTreeSet::new(),
        }
    }

    /// Write `dir/n.ext`; returns its path relative to the dossier (`folder/n.ext`).
    fn write(&mut self, n: usize, bytes: &[u8]) -> Result<String, FileError> {
        if self.written.is_empty() {
            create_private_dir(self.dir).map_err(|e| (self.dir.to_path_buf(), e))?;
        }
        let name = format!("{n}.{}", self.ext);
        let path = self.dir.join(&name);
        write_private(&path, bytes).map_err(|e| (path.clone(), e))?;
        let folder = self
            .dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.written.insert(name.clone());
        Ok(format!("{folder}/{name}"))
    }

    /// Remove what a previous dossier left; returns how many files this one wrote.
    fn finish(self) -> Result<usize, FileError> {
        if let Ok(entries) = std::fs::read_dir(self.dir) {
            let suffix = format!(".{}", self.ext);
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let numbered = name
                    .strip_suffix(&suffix)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if numbered && !self.written.contains(&name) {
                    std::fs::remove_file(e.path()).map_err(|err| (e.path(), err))?;
                }
            }
            if self.written.is_empty() {
                // Only if nothing else is in it.
                let _ = std::fs::remove_dir(self.dir);
            }
        }
        Ok(self.written.len())
    }
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
    let folders = Originals::candidates(log);
    let p = originals::prune(&mut open_existing(log)?, before, &folders).map_err(failed)?;
    writeln!(
        out,
        "deleted {} message(s) processed before {}",
        p.messages,
        time::datetime(before)
    )
    .map_err(Error::output)?;
    if p.originals > 0 {
        writeln!(out, "deleted {} kept original(s)", p.originals).map_err(Error::output)?;
    }
    Ok(())
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
