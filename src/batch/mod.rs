//! `trackless batch`: rewrite mail already delivered, in Maildirs (with Maildir++ folders) and
//! mbox files. Parallel, bounded in memory, idempotent (a second run rewrites nothing), safe
//! to interrupt (Ctrl-C finishes the messages in flight), and it never loses the original:
//! errors are counted per message and the run goes on.

pub mod maildir;
pub mod mbox;

use crate::core::message::neutralise;
use crate::core::policy::Policy;
use crate::log::{time, Keep, LogWriter, Mode, Record};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How a run is done.
#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    /// Keep originals of rewritten messages here (same relative paths).
    pub backup: Option<PathBuf>,
    /// Only messages newer than this (unix seconds): Maildir by file time, mbox by Date header.
    pub since: Option<i64>,
    pub jobs: usize,
    pub keep: Keep,
}

/// Totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub seen: AtomicU64,
    pub rewritten: AtomicU64,
    pub unchanged: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    pub pixels: AtomicU64,
    pub links: AtomicU64,
    pub fonts: AtomicU64,
    pub bytes: AtomicU64,
    pub esps: Mutex<BTreeMap<String, u64>>,
    /// (path, error) of each failure.
    pub failures: Mutex<Vec<(String, String)>>,
}

impl Summary {
    fn add(&self, record: Option<&Record>, changed: bool) {
        self.seen.fetch_add(1, Ordering::Relaxed);
        if changed {
            self.rewritten.fetch_add(1, Ordering::Relaxed);
        } else {
            self.unchanged.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(r) = record {
            self.pixels.fetch_add(r.pixels as u64, Ordering::Relaxed);
            self.fonts.fetch_add(r.fonts as u64, Ordering::Relaxed);
            self.links.fetch_add(
                (r.links_unwrapped + r.links_cleaned) as u64,
                Ordering::Relaxed,
            );
            if let (Some(esp), Ok(mut m)) = (&r.esp, self.esps.lock()) {
                *m.entry(esp.clone()).or_default() += 1;
            }
        }
    }

    fn fail(&self, path: &Path, e: impl std::fmt::Display) {
        self.seen.fetch_add(1, Ordering::Relaxed);
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.failures.lock() {
            f.push((path.display().to_string(), e.to_string()));
        }
    }

    /// The one-line summary printed at the end.
    pub fn line(&self) -> String {
        let esps = self
            .esps
            .lock()
            .map(|m| {
                let mut v: Vec<(&String, &u64)> = m.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1));
                v.iter()
                    .take(5)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        format!(
            "{} seen, {} rewritten, {} unchanged, {} skipped, {} failed; {} pixels, {} links, {} fonts removed or cleaned{}",
            self.seen.load(Ordering::Relaxed),
            self.rewritten.load(Ordering::Relaxed),
            self.unchanged.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.pixels.load(Ordering::Relaxed),
            self.links.load(Ordering::Relaxed),
            self.fonts.load(Ordering::Relaxed),
            if esps.is_empty() { String::new() } else { format!("; ESPs: {esps}") }
        )
    }
}

/// Progress display: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last: Mutex<std::time::Instant>,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let b = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} messages, {per_sec}, ETA {eta} {msg}",
            ) {
                b.set_style(style);
            }
            b
        });
        Progress {
            bar,
            last: Mutex::new(std::time::Instant::now()),
        }
    }

    fn tick(&self, summary: &Summary, total: u64) {
        match &self.bar {
            Some(b) => b.inc(1),
            None => {
                if let Ok(mut last) = self.last.lock() {
                    if last.elapsed().as_secs() >= 5 {
                        *last = std::time::Instant::now();
                        eprintln!(
                            "trackless batch: {}/{total} messages",
                            summary.seen.load(Ordering::Relaxed)
                        );
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Set by SIGINT/SIGTERM: stop taking new messages.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Install handlers that set `STOP` (a second Ctrl-C kills the process as usual).
pub fn install_stop_handler() {
    extern "C" fn on_signal(_: libc::c_int) {
        if STOP.swap(true, Ordering::SeqCst) {
            // SAFETY: restoring the default action and re-raising is async-signal-safe.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::raise(libc::SIGINT);
            }
        }
    }
    // SAFETY: installing a handler that only touches an atomic (and re-raises).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Rewrite one message's bytes: the outcome and its log record.
fn process(raw: &[u8], policy: &Policy, keep: Keep) -> (Option<Vec<u8>>, Record) {
    let outcome = neutralise(raw, policy);
    let record = Record::new(raw, &outcome, Mode::Batch, None, &[], keep, time::now());
    let new = outcome.changed.then(|| outcome.bytes.into_owned());
    (new, record)
}

/// Copy an original into the backup directory (made durable by the group's flush, before the
/// original is replaced).
fn backup_copy(backup: &Path, root: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let dest = backup.join(rel);
    if let Some(d) = dest.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&dest) {
        Ok(mut f) => f.write_all(bytes).map(|()| dest),
        // Already backed up by an earlier (interrupted) run: that is the original.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dest),
        Err(e) => Err(e),
    }
}

/// Messages a worker takes at a time: their replacements share one flush to disk.
const GROUP: usize = 64;

/// Run over a Maildir (and its folders).
pub fn run_maildir(
    root: &Path,
    policy: &Policy,
    opts: &Options,
    log: Option<&LogWriter>,
    summary: &Summary,
) -> std::io::Result<()> {
    if !opts.dry_run {
        maildir::clean_stale_tmp(root);
    }
    let files = maildir::messages(root)?;
    let total = files.len() as u64;
    let progress = Progress::new(total);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            scope.spawn(|| loop {
                if STOP.load(Ordering::Relaxed) {
                    return;
                }
                let start = next.fetch_add(GROUP, Ordering::Relaxed);
                let Some(group) = files
                    .get(start..(start + GROUP).min(files.len()))
                    .filter(|g| !g.is_empty())
                else {
                    return;
                };
                maildir_group(root, group, policy, opts, log, summary, &progress, total);
            });
        }
    });
    progress.finish();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn maildir_group(
    root: &Path,
    group: &[PathBuf],
    policy: &Policy,
    opts: &Options,
    log: Option<&LogWriter>,
    summary: &Summary,
    progress: &Progress,
    total: u64,
) {
    let mut pending: Vec<maildir::Pending> = Vec::new();
    let mut records: Vec<Record> = Vec::new();
    for path in group {
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        if let Some(since) = opts.since {
            let newer = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|d| d.as_secs() as i64 >= since);
            if !newer {
                summary.skipped.fetch_add(1, Ordering::Relaxed);
                progress.tick(summary, total);
                continue;
            }
        }
        let raw = match std::fs::read(path) {
            Ok(r) => r,
            Err(e) => {
                summary.fail(path, e);
                progress.tick(summary, total);
                continue;
            }
        };
        let (new, record) = process(&raw, policy, opts.keep);
        match new {
            Some(new) if !opts.dry_run => {
                if let Some(b) = &opts.backup {
                    if let Err(e) = backup_copy(b, root, path, &raw) {
                        summary.fail(path, format!("backup failed, message left as it was: {e}"));
                        progress.tick(summary, total);
                        continue;
                    }
                }
                pending.push(maildir::Pending {
                    path: path.clone(),
                    bytes: new,
                });
                records.push(record);
            }
            Some(_) => {
                summary.add(Some(&record), true);
                if let Some(l) = log {
                    l.record_blocking(record);
                }
                progress.tick(summary, total);
            }
            None => {
                summary.add(Some(&record), false);
                if let Some(l) = log {
                    l.record_blocking(record);
                }
                progress.tick(summary, total);
            }
        }
    }
    for ((item, result), record) in pending
        .iter()
        .zip(maildir::replace_many(&pending))
        .zip(records)
    {
        match result {
            Ok(_) => {
                summary.add(Some(&record), true);
                if let Some(l) = log {
                    l.record_blocking(record);
                }
            }
            Err(e) => summary.fail(&item.path, e),
        }
        progress.tick(summary, total);
    }
}

/// Run over one mbox file.
pub fn run_mbox(
    path: &Path,
    policy: &Policy,
    opts: &Options,
    log: Option<&LogWriter>,
    summary: &Summary,
) -> std::io::Result<()> {
    use std::sync::mpsc;
    let flavor = mbox::detect(path)?;
    let _lock = if opts.dry_run {
        None
    } else {
        Some(mbox::Lock::take(path)?)
    };
    let total = {
        let f = std::io::BufReader::new(std::fs::File::open(path)?);
        mbox::Reader::new(f).count() as u64
    };
    let progress = Progress::new(total);
    let reader = mbox::Reader::new(std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(path)?,
    ));
    let mut out = if opts.dry_run {
        None
    } else {
        Some(mbox::Replacement::create(path)?)
    };
    let jobs = opts.jobs.max(1);
    // Reader → workers → writer in order; in flight at most 4 messages per worker.
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>, Vec<u8>)>(jobs * 4);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Vec<u8>, Vec<u8>, bool)>(jobs * 4);
    let mut changed_any = false;
    let mut write_error: Option<std::io::Error> = None;
    let mut read_error: Option<std::io::Error> = None;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            let progress = &progress;
            scope.spawn(move || loop {
                let job = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((seq, sep, stored)) = job else { return };
                let (message, trailer) = mbox::split_trailer(&stored);
                let plain = mbox::unescape(message, flavor);
                let date_ok = opts.since.is_none_or(|since| {
                    mail_parser::MessageParser::new()
                        .parse_headers(&plain)
                        .and_then(|m| m.date().map(|d| d.to_timestamp()))
                        .is_none_or(|d| d >= since)
                });
                let result = if date_ok {
                    let (new, record) = process(&plain, policy, opts.keep);
                    summary.add(Some(&record), new.is_some());
                    if let Some(l) = log {
                        l.record_blocking(record);
                    }
                    match new {
                        Some(n) => {
                            let mut bytes = mbox::escape(&n, flavor);
                            bytes.extend_from_slice(trailer);
                            (bytes, true)
                        }
                        None => (stored.clone(), false),
                    }
                } else {
                    summary.skipped.fetch_add(1, Ordering::Relaxed);
                    (stored.clone(), false)
                };
                progress.tick(summary, total);
                if done_tx.send((seq, sep, result.0, result.1)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        scope.spawn(|| {
            for (seq, item) in reader.enumerate() {
                match item {
                    Ok((sep, body)) => {
                        if work_tx.send((seq, sep, body)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        read_error = Some(e);
                        return;
                    }
                }
            }
            drop(work_tx);
        });
        // The writer: messages back in their original order.
        let mut waiting: BTreeMap<usize, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        let mut next = 0;
        for (seq, sep, bytes, changed) in done_rx.iter() {
            changed_any |= changed;
            waiting.insert(seq, (sep, bytes));
            while let Some((sep, bytes)) = waiting.remove(&next) {
                if let (Some(o), None) = (out.as_mut(), &write_error) {
                    if let Err(e) = o.write(&sep).and_then(|()| o.write(&bytes)) {
                        write_error = Some(e);
                    }
                }
                next += 1;
            }
        }
    });
    progress.finish();
    let Some(out) = out else { return Ok(()) };
    if let Some(e) = read_error.or(write_error) {
        out.abandon();
        return Err(e);
    }
    if STOP.load(Ordering::Relaxed) || !changed_any {
        // Interrupted (the mailbox stays as it was; a rerun does the work) or nothing to do.
        out.abandon();
        return Ok(());
    }
    if let Some(b) = &opts.backup {
        let raw = std::fs::read(path)?;
        let root = path.parent().unwrap_or(Path::new(""));
        if let Err(e) = backup_copy(b, root, path, &raw) {
            out.abandon();
            return Err(std::io::Error::new(
                e.kind(),
                format!("backup failed, mailbox left as it was: {e}"),
            ));
        }
    }
    out.commit()
}
