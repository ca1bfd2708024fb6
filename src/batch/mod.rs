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
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
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
    pub spacers: AtomicU64,
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
            self.spacers.fetch_add(r.spacers as u64, Ordering::Relaxed);
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

    /// Add the totals of `other` (one mailbox's, once its result is final).
    fn merge(&self, other: &Summary) {
        for (to, from) in [
            (&self.seen, &other.seen),
            (&self.rewritten, &other.rewritten),
            (&self.unchanged, &other.unchanged),
            (&self.skipped, &other.skipped),
            (&self.failed, &other.failed),
            (&self.pixels, &other.pixels),
            (&self.spacers, &other.spacers),
            (&self.links, &other.links),
            (&self.fonts, &other.fonts),
            (&self.bytes, &other.bytes),
        ] {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        if let (Ok(mut to), Ok(from)) = (self.esps.lock(), other.esps.lock()) {
            for (esp, n) in from.iter() {
                *to.entry(esp.clone()).or_default() += n;
            }
        }
        if let (Ok(mut to), Ok(from)) = (self.failures.lock(), other.failures.lock()) {
            to.extend(from.iter().cloned());
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
            "{} seen, {} rewritten, {} unchanged, {} skipped, {} failed; {} pixels, {} links, {} fonts removed or cleaned{}{}",
            self.seen.load(Ordering::Relaxed),
            self.rewritten.load(Ordering::Relaxed),
            self.unchanged.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.pixels.load(Ordering::Relaxed),
            self.links.load(Ordering::Relaxed),
            self.fonts.load(Ordering::Relaxed),
            match self.spacers.load(Ordering::Relaxed) {
                0 => String::new(),
                n => format!(" ({n} invisible layout spacers removed too)"),
            },
            if esps.is_empty() { String::new() } else { format!("; ESPs: {esps}") }
        )
    }
}

/// Progress display: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last: Mutex<std::time::Instant>,
    /// Messages dealt with so far (processed, skipped or failed).
    done: AtomicU64,
    total: u64,
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
            done: AtomicU64::new(0),
            total,
        }
    }

    fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(b) => b.inc(1),
            None => {
                if let Ok(mut last) = self.last.lock() {
                    if last.elapsed().as_secs() >= 5 {
                        *last = std::time::Instant::now();
                        eprintln!("trackless batch: {done}/{} messages", self.total);
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

/// The first stop signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signal that stopped the run, if one did.
pub fn stopped_by() -> Option<i32> {
    STOP.load(Ordering::SeqCst)
        .then(|| match SIGNAL.load(Ordering::SeqCst) {
            0 => libc::SIGINT,
            s => s,
        })
}

/// Install handlers that set `STOP` (a second signal kills the process as usual).
pub fn install_stop_handler() {
    extern "C" fn on_signal(sig: libc::c_int) {
        let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        if STOP.swap(true, Ordering::SeqCst) {
            // SAFETY: restoring the default action and re-raising is async-signal-safe.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::raise(sig);
            }
        }
    }
    // SAFETY: installing a handler that only touches atomics (and re-raises).
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
                maildir_group(root, group, policy, opts, log, summary, &progress);
            });
        }
    });
    progress.finish();
    Ok(())
}

fn maildir_group(
    root: &Path,
    group: &[PathBuf],
    policy: &Policy,
    opts: &Options,
    log: Option<&LogWriter>,
    summary: &Summary,
    progress: &Progress,
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
                progress.tick();
                continue;
            }
        }
        let raw = match std::fs::read(path) {
            Ok(r) => r,
            Err(e) => {
                summary.fail(path, e);
                progress.tick();
                continue;
            }
        };
        let (new, record) = process(&raw, policy, opts.keep.clone());
        match new {
            Some(new) if !opts.dry_run => {
                if let Some(b) = &opts.backup {
                    if let Err(e) = backup_copy(b, root, path, &raw) {
                        summary.fail(path, format!("backup failed, message left as it was: {e}"));
                        progress.tick();
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
                progress.tick();
            }
            None => {
                summary.add(Some(&record), false);
                if let Some(l) = log {
                    l.record_blocking(record);
                }
                progress.tick();
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
        progress.tick();
    }
}

/// What a worker made of one mbox message.
enum Done {
    /// Rewritten (`changed`) or found clean; its log record.
    Processed { record: Box<Record>, changed: bool },
    /// Older than `--since`.
    Skipped,
    /// Not looked at: the run was stopped (Ctrl-C) before this message.
    Untouched,
}

/// Run over one mbox file.
///
/// The new mailbox is written beside the old one and renamed over it: readers see the old or
/// the new mailbox, never a mix. Log records and totals wait until that rename succeeded (or
/// until a complete run found nothing to rewrite): a run whose new mailbox is not committed
/// (an I/O error, a failed backup) leaves the mailbox as it was and logs nothing, so the
/// rerun that does the work logs each message once.
///
/// On Ctrl-C (SIGINT/SIGTERM) the messages in flight are finished and every later message is
/// copied into the new mailbox exactly as it is stored, then the new mailbox is committed:
/// the work done is kept, every message is there once (rewritten or as it was), and a rerun
/// does the rest. Committing is as safe as on a complete run, since the rename replaces the
/// whole file at once; the copy is plain I/O, no rewriting.
pub fn run_mbox(
    path: &Path,
    policy: &Policy,
    opts: &Options,
    log: Option<&LogWriter>,
    summary: &Summary,
) -> std::io::Result<()> {
    use std::sync::mpsc;
    let flavor = mbox::detect(path)?;
    let lock = if opts.dry_run {
        None
    } else {
        Some(mbox::Lock::take(path)?)
    };
    // fcntl locks belong to the process, and closing any descriptor of the file releases
    // them: every descriptor of the mailbox opened from here on stays open until the new
    // mailbox is committed (`mailbox` for counting, the head and the backup; `stream` for
    // the reader thread).
    let mailbox = std::fs::File::open(path)?;
    let stream = std::fs::File::open(path)?;
    let (total, preamble) = {
        let mut r = mbox::Reader::new(std::io::BufReader::new(&mailbox));
        (r.by_ref().count() as u64, r.preamble_len())
    };
    let progress = Progress::new(total);
    let reader = mbox::Reader::new(std::io::BufReader::with_capacity(1 << 20, &stream));
    let mut out = if opts.dry_run {
        None
    } else {
        Some(mbox::Replacement::create(path)?)
    };
    // What comes before the first separator is no message but may be mail: kept as it is.
    if let (Some(o), true) = (out.as_mut(), preamble > 0) {
        let copied = std::io::Seek::rewind(&mut &mailbox)
            .and_then(|()| o.copy_from(&mut std::io::Read::take(&mailbox, preamble)))
            .and_then(|n| {
                (n == preamble)
                    .then_some(())
                    .ok_or_else(|| std::io::Error::other("the mailbox shrank while locked"))
            });
        if let Err(e) = copied {
            if let Some(o) = out.take() {
                o.abandon();
            }
            return Err(e);
        }
    }
    // This mailbox's totals and log records, kept until its result is final.
    let counts = Summary::default();
    let mut spool = log.filter(|_| out.is_some()).map(|_| Spool::new(path));
    let jobs = opts.jobs.max(1);
    // Reader → workers → writer in order; in flight at most 4 messages per worker.
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<u8>, Vec<u8>)>(jobs * 4);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Vec<u8>, Vec<u8>, Done)>(jobs * 4);
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
                if STOP.load(Ordering::Relaxed) {
                    // Stopped: the rest of the mailbox is copied as it is.
                    if done_tx.send((seq, sep, stored, Done::Untouched)).is_err() {
                        return;
                    }
                    continue;
                }
                let (message, trailer) = mbox::split_trailer(&stored);
                let plain = mbox::unescape(message, flavor);
                let date_ok = opts.since.is_none_or(|since| {
                    mail_parser::MessageParser::new()
                        .parse_headers(&plain)
                        .and_then(|m| m.date().map(|d| d.to_timestamp()))
                        .is_none_or(|d| d >= since)
                });
                let (bytes, done) = if date_ok {
                    let (new, record) = process(&plain, policy, opts.keep.clone());
                    match new {
                        Some(n) => {
                            let mut bytes = mbox::escape(&n, flavor);
                            bytes.extend_from_slice(trailer);
                            let done = Done::Processed {
                                record: Box::new(record),
                                changed: true,
                            };
                            (bytes, done)
                        }
                        None => {
                            let done = Done::Processed {
                                record: Box::new(record),
                                changed: false,
                            };
                            (stored, done)
                        }
                    }
                } else {
                    (stored, Done::Skipped)
                };
                progress.tick();
                if done_tx.send((seq, sep, bytes, done)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        scope.spawn(|| {
            for (seq, item) in reader.enumerate() {
                // A stopped dry run has nothing to copy.
                if opts.dry_run && STOP.load(Ordering::Relaxed) {
                    return;
                }
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
        let mut waiting: BTreeMap<usize, (Vec<u8>, Vec<u8>, Done)> = BTreeMap::new();
        let mut next = 0;
        for (seq, sep, bytes, done) in done_rx.iter() {
            waiting.insert(seq, (sep, bytes, done));
            while let Some((sep, bytes, done)) = waiting.remove(&next) {
                if let (Some(o), None) = (out.as_mut(), &write_error) {
                    if let Err(e) = o.write(&sep).and_then(|()| o.write(&bytes)) {
                        write_error = Some(e);
                    }
                }
                match done {
                    Done::Processed { record, changed } => {
                        changed_any |= changed;
                        counts.add(Some(&record), changed);
                        if let Some(s) = spool.as_mut() {
                            s.push(*record);
                        }
                    }
                    Done::Skipped => {
                        counts.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Done::Untouched => {}
                }
                next += 1;
            }
        }
    });
    progress.finish();
    let Some(out) = out else {
        // Dry run: nothing written; the totals say what would change.
        summary.merge(&counts);
        return Ok(());
    };
    if let Some(e) = read_error.or(write_error) {
        out.abandon();
        return Err(e);
    }
    if changed_any {
        if let Some(b) = &opts.backup {
            let root = path.parent().unwrap_or(Path::new(""));
            let mut raw = Vec::new();
            let copied = std::io::Seek::rewind(&mut &mailbox)
                .and_then(|()| std::io::Read::read_to_end(&mut &mailbox, &mut raw))
                .and_then(|_| backup_copy(b, root, path, &raw));
            if let Err(e) = copied {
                out.abandon();
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("backup failed, mailbox left as it was: {e}"),
                ));
            }
        }
        out.commit()?;
    } else {
        // Nothing rewritten: the mailbox as it is is the result.
        out.abandon();
    }
    drop(lock);
    drop((mailbox, stream));
    // Committed: now the messages count, and go to the log.
    summary.merge(&counts);
    if let (Some(l), Some(s)) = (log, spool) {
        s.replay(l);
    }
    Ok(())
}

/// The log records of an mbox run, in order, kept until the new mailbox is committed. They go
/// to an unlinked file beside the mailbox, so that memory stays bounded whatever the size of
/// the mailbox; once that file fails (no space), the rest are kept in memory.
struct Spool {
    file: Option<std::fs::File>,
    /// Bytes of whole records in `file`.
    len: u64,
    /// Still writing to `file`.
    writable: bool,
    memory: Vec<Record>,
}

impl Spool {
    fn new(mailbox: &Path) -> Spool {
        let file = spool_file(mailbox).ok();
        Spool {
            writable: file.is_some(),
            file,
            len: 0,
            memory: Vec::new(),
        }
    }

    fn push(&mut self, record: Record) {
        if let (Some(f), true) = (self.file.as_mut(), self.writable) {
            if let Ok(mut line) = serde_json::to_vec(&record) {
                line.push(b'\n');
                if f.write_all(&line).is_ok() {
                    self.len += line.len() as u64;
                    return;
                }
            }
            self.writable = false;
        }
        self.memory.push(record);
    }

    /// Every record, in order, to the log.
    fn replay(self, log: &LogWriter) {
        use std::io::{BufRead, Read, Seek};
        if let Some(mut f) = self.file {
            if f.rewind().is_ok() {
                let lines = std::io::BufReader::new(f.take(self.len)).split(b'\n');
                for line in lines.map_while(Result::ok) {
                    if let Ok(r) = serde_json::from_slice::<Record>(&line) {
                        log.record_blocking(r);
                    }
                }
            }
        }
        for r in self.memory {
            log.record_blocking(r);
        }
    }
}

/// A private (0600) file beside the mailbox, already unlinked: nothing is left behind, even
/// by a crash.
fn spool_file(mailbox: &Path) -> std::io::Result<std::fs::File> {
    let dir = mailbox
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = mailbox
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join(format!(".{name}.trackless-{}.log.tmp", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Keep, Mode};

    /// Every corpus message's record, with everything the log may keep, comes back from the
    /// spool equal, in order.
    #[test]
    fn spooled_records_come_back_whole() {
        let dir = std::env::temp_dir().join(format!("trackless-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        let keep = Keep {
            subject: true,
            recipients: true,
            headers: true,
            ..Default::default()
        };
        let policy = Policy::default();
        let records: Vec<Record> = files
            .iter()
            .map(|p| {
                let raw = std::fs::read(p).unwrap();
                let out = neutralise(&raw, &policy);
                Record::new(
                    &raw,
                    &out,
                    Mode::Batch,
                    Some("<b@x.example>"),
                    &["r@y.example".into()],
                    keep.clone(),
                    1_790_000_000,
                )
            })
            .collect();
        assert!(records
            .iter()
            .any(|r| !r.esps.is_empty() && !r.trackers.is_empty() && r.headers.is_some()));
        let mut spool = Spool::new(&dir.join("inbox"));
        assert!(spool.file.is_some());
        for r in &records {
            spool.push(r.clone());
        }
        assert!(spool.memory.is_empty());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "spool file not unlinked"
        );
        // Read back the way replay does, and compare.
        let mut f = spool.file.take().unwrap();
        use std::io::{BufRead, Read, Seek};
        f.rewind().unwrap();
        let back: Vec<Record> = std::io::BufReader::new(f.take(spool.len))
            .split(b'\n')
            .map(|l| serde_json::from_slice::<Record>(&l.unwrap()).unwrap())
            .collect();
        assert_eq!(back, records);
    }
}
