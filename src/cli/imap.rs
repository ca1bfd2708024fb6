//! `trackless imap sync|watch --account NAME`: clean the folders of a mailbox at an IMAP
//! server, once (resumable: the state directory remembers where each folder got to) or
//! continuously (IDLE on the first folder, the others looked at after each wake-up).

use super::{Error, Settings};
use crate::config::{ImapAccount, Originals};
use crate::imap::client::{Client, Woke};
use crate::imap::retention;
use crate::imap::session::{ImapError, Session};
use crate::imap::state::{self, StateDir};
use crate::imap::sync::{self, Event, Options, Totals};
use crate::log::{time, LogWriter, Mode, Record, WriterConfig};
use crate::Policy;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImapCmd {
    /// One pass over the account's folders: replace each tracked message by its clean copy
    /// (the original goes to the originals folder). Resumable; a rerun does nothing new.
    Sync(SyncArgs),
    /// Stay connected and clean each message as it arrives (IDLE on the first folder, the
    /// other folders looked at on each wake-up and every --poll). SIGTERM finishes the message
    /// in flight and stops.
    Watch {
        #[command(flatten)]
        args: SyncArgs,
        /// Look at every folder at least this often [default: 5m]
        #[arg(long, value_name = "DURATION", value_parser = crate::config::values::parse_duration)]
        poll: Option<Duration>,
    },
    /// Put the kept originals of messages replaced since WHEN back in their folders, in place
    /// of their clean copies; later syncs leave them alone.
    Restore {
        #[command(flatten)]
        args: SyncArgs,
        /// Replacements made since: a duration (7d) or a date (2026-11-01).
        #[arg(long, value_name = "WHEN")]
        since: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The account: a [imap.NAME] section of the configuration file.
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// Say what would change; change nothing on the server.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to remember each folder's progress [default: ~/.local/state/trackless/imap/NAME]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Folders worked on at once, each over a connection of its own (never two connections
    /// on one folder) [default: 1]
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub jobs: u16,
}

/// Attempts at a folder within one pass when the connection is lost (the server restarts,
/// the network drops); each one resumes where the last stopped.
const ATTEMPTS: u32 = 4;

/// IDLE is renewed well before the 30 minutes after which a server may drop it (RFC 2177).
const IDLE_MAX: Duration = Duration::from_secs(25 * 60);

/// How often `watch` deletes the kept originals past their retention.
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// Longest wait between two attempts to reconnect in `watch`.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub fn run(
    cmd: &ImapCmd,
    policy: &Policy,
    settings: &Settings,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    let (args, watch) = match cmd {
        ImapCmd::Sync(args) => (args, None),
        ImapCmd::Watch { args, poll } => (args, Some(poll.unwrap_or(Duration::from_secs(300)))),
        ImapCmd::Restore { args, since } => return restore(args, since, settings, out, warn),
    };
    let account = account(settings, &args.account)?;
    let secret = password(account)?;
    let since = account
        .since
        .as_deref()
        .map(|s| time::parse_when(s, time::now()))
        .transpose()
        .map_err(Error::Usage)?;
    let stop = Arc::new(AtomicBool::new(false));
    let opts = Options {
        originals: account.originals(),
        max_size: account.max_size.map_or(policy.limits.max_size, |s| s.0) as u64,
        since,
        dry_run: args.dry_run,
        stop: stop.clone(),
        round: sync::ROUND,
    };
    let state = StateDir::new(
        args.state_dir
            .clone()
            .unwrap_or_else(|| state::default_dir(&args.account)),
    );
    let _lock = state.lock().map_err(locked)?;
    let log_cfg = settings.log(false, false);
    let log = log_cfg.path.filter(|_| !args.dry_run).map(|path| {
        LogWriter::spawn(WriterConfig {
            path,
            capacity: 4096,
            retention: None,
            originals: None,
        })
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    let warn = RefCell::new(warn);
    let mut each = |event: &Event, seen: Option<(&[u8], &crate::Outcome<'_>)>| {
        if let (Some(log), Some((raw, outcome))) = (&log, seen) {
            log.record_blocking(Record::new(
                raw,
                outcome,
                Mode::Imap,
                None,
                &[],
                log_cfg.keep.clone(),
                time::now(),
            ));
        }
        if let Event::Failed { uid, error } = event {
            let _ = writeln!(
                warn.borrow_mut(),
                "trackless imap: UID {uid}: {error}; the original is kept"
            );
        }
    };
    let start = std::time::Instant::now();
    let result = runtime.block_on(async {
        let wake = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(signals(stop.clone(), wake.clone()));
        let mut runner = Runner {
            account,
            secret: &secret,
            state: &state,
            policy,
            opts,
            folders: Vec::new(),
            client: None,
            spare: Vec::new(),
            jobs: usize::from(args.jobs),
            warn: &warn,
        };
        match watch {
            None => {
                // A server restarting or a network hiccup: a few tries; a refused login or
                // certificate: at once.
                let mut attempt = 0;
                while let Err(e) = runner.connect().await {
                    attempt += 1;
                    if !e.fatal || attempt >= ATTEMPTS {
                        return Err(Error::Failed(e.message));
                    }
                    let wait = Duration::from_secs(1 << attempt);
                    runner.say(format!("{e}; trying again in {}s", wait.as_secs()));
                    tokio::time::sleep(wait).await;
                }
                let r = runner.pass(&mut each).await;
                if r.is_ok() {
                    runner.expire().await;
                }
                if let Some(c) = runner.client.take() {
                    c.logout().await;
                }
                r
            }
            Some(poll) => runner.watch(poll, &wake, &mut each).await,
        }
    });
    if let Some(l) = log {
        l.close();
    }
    let (totals, failed_folders) = result?;
    let secs = start.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "{}{} message(s): {} replaced, {} clean, {} skipped, {} failed in {secs:.1} s ({:.0} messages/s)",
        if args.dry_run { "dry run: " } else { "" },
        totals.seen,
        totals.replaced,
        totals.clean,
        totals.skipped,
        totals.failed,
        totals.seen as f64 / secs.max(1e-9)
    );
    if stop.load(Ordering::Relaxed) && watch.is_none() {
        let _ = writeln!(
            warn.borrow_mut(),
            "trackless imap: interrupted; the messages in flight were finished; run again to continue"
        );
    }
    if totals.failed > 0 || failed_folders > 0 {
        return Err(Error::Partial);
    }
    Ok(())
}

fn account<'a>(settings: &'a Settings, name: &str) -> Result<&'a ImapAccount, Error> {
    settings.config.imap.get(name).ok_or_else(|| {
        Error::Usage(format!(
            "no [imap.{name}] section in the configuration file ({})",
            settings
                .config
                .source
                .as_ref()
                .map_or("built-in defaults: none".into(), |p| p
                    .display()
                    .to_string())
        ))
    })
}

/// `imap restore`: every replacement the journal holds since `since`, undone.
fn restore(
    args: &SyncArgs,
    since: &str,
    settings: &Settings,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    use crate::imap::restore::{self, Restored};
    let account = account(settings, &args.account)?;
    let since =
        time::parse_when(since, time::now()).map_err(|e| Error::Usage(format!("--since: {e}")))?;
    let state = StateDir::new(
        args.state_dir
            .clone()
            .unwrap_or_else(|| state::default_dir(&args.account)),
    );
    let _lock = state.lock().map_err(locked)?;
    let todo: Vec<_> = state
        .replacements()
        .into_iter()
        .filter(|r| r.ts >= since)
        .collect();
    let secret = password(account)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    let (mut done, mut missing) = (0, 0);
    runtime.block_on(async {
        let mut client = Client::connect(account, &secret)
            .await
            .map_err(|e| Error::Failed(e.message))?;
        for r in &todo {
            match restore::one(&mut client, &state, r, args.dry_run)
                .await
                .map_err(|e| Error::Failed(format!("{}: {e}; run again to finish", r.folder)))?
            {
                Restored::Done | Restored::Would => done += 1,
                Restored::Missing => {
                    missing += 1;
                    let _ = writeln!(
                        warn,
                        "trackless imap: {} in {}: the original is no longer in {}; its clean copy stays",
                        r.message_id.as_deref().unwrap_or("a message without Message-ID"),
                        r.folder,
                        r.originals
                    );
                }
            }
        }
        client.logout().await;
        Ok::<(), Error>(())
    })?;
    let _ = writeln!(
        out,
        "{}{done} message(s) restored, {missing} original(s) not found",
        if args.dry_run { "dry run: " } else { "" }
    );
    if missing > 0 {
        return Err(Error::Partial);
    }
    Ok(())
}

fn add(totals: &mut Totals, t: Totals) {
    totals.seen += t.seen;
    totals.replaced += t.replaced;
    totals.clean += t.clean;
    totals.skipped += t.skipped;
    totals.failed += t.failed;
}

/// SIGTERM, SIGINT: finish the round in flight, then stop.
async fn signals(stop: Arc<AtomicBool>, wake: Arc<tokio::sync::Notify>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    stop.store(true, Ordering::Relaxed);
    // A stored permit: a wait that starts later ends at once.
    wake.notify_one();
}

/// The password (or access token): the first line the account's `password_command` prints.
fn password(account: &ImapAccount) -> Result<String, Error> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&account.password_command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Failed(format!("password_command: {e}")))?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "password_command failed ({})",
            out.status
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| Error::Failed("password_command printed something not UTF-8".into()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(Error::Failed("password_command printed nothing".into()));
    }
    Ok(line)
}

/// One account: its connection (re-established when lost) and its folders.
struct Runner<'a, 'w> {
    account: &'a ImapAccount,
    secret: &'a str,
    state: &'a StateDir,
    policy: &'a Policy,
    opts: Options,
    /// The folders to clean, resolved from the account's patterns at each connection.
    folders: Vec<String>,
    client: Option<Client>,
    /// The other connections of a pass over several folders at once, kept for the next.
    spare: Vec<Option<Client>>,
    jobs: usize,
    warn: &'a RefCell<&'w mut (dyn Write + 'w)>,
}

impl Runner<'_, '_> {
    fn say(&self, m: impl std::fmt::Display) {
        let _ = writeln!(self.warn.borrow_mut(), "trackless imap: {m}");
    }

    /// Log in, learn the server's delimiter, resolve the folder patterns.
    async fn connect(&mut self) -> Result<(), ImapError> {
        let mut client = Client::connect(self.account, self.secret).await?;
        // The originals folder is written with `/`; the server may use another delimiter.
        let delimiter = client.delimiter().await?;
        let mut originals = self.account.originals();
        if let (Originals::Folder(f), Some(d)) = (&mut originals, delimiter) {
            *f = f.replace('/', &d.to_string());
        }
        let keep = match &originals {
            Originals::Folder(f) => Some(f.clone()),
            Originals::Delete => None,
        };
        self.opts.originals = originals;
        let mut folders = Vec::new();
        for pattern in self.account.folders() {
            let found = client.list(&pattern).await?;
            if found.is_empty() {
                self.say(format!("no folder matches {pattern:?}"));
            }
            for f in found {
                // Never clean the originals: they are the user's way back.
                let is_keep = keep.as_deref().is_some_and(|k| {
                    f == k || delimiter.is_some_and(|d| f.starts_with(&format!("{k}{d}")))
                });
                if !is_keep && !folders.contains(&f) {
                    folders.push(f);
                }
            }
        }
        self.folders = folders;
        self.client = Some(client);
        Ok(())
    }

    /// One pass over every folder, each resumed after a lost connection; with `jobs` > 1,
    /// that many folders at once, each over its own connection. Returns the totals and how
    /// many folders could not be finished.
    async fn pass(&mut self, each: &mut sync::OnMessage<'_>) -> Result<(Totals, usize), Error> {
        let workers = self.jobs.clamp(1, self.folders.len().max(1));
        let mut clients = vec![self.client.take()];
        clients.append(&mut self.spare);
        clients.resize_with(workers.max(clients.len()), || None);
        let spare_after = clients.split_off(workers);
        let queue = RefCell::new(self.folders.iter().cloned().collect::<VecDeque<_>>());
        let each = RefCell::new(each);
        let this = &*self;
        let results = futures_util::future::join_all(
            clients
                .into_iter()
                .map(|client| this.worker(client, &queue, &each)),
        )
        .await;
        let mut totals = Totals::default();
        let mut failed_folders = 0;
        let mut error = None;
        let mut clients = Vec::new();
        for (t, failed, client, e) in results {
            add(&mut totals, t);
            failed_folders += failed;
            clients.push(client);
            error = error.or(e);
        }
        clients.extend(spare_after);
        let mut clients = clients.into_iter();
        self.client = clients.next().flatten();
        self.spare = clients.collect();
        match error {
            Some(e) => Err(e),
            None => Ok((totals, failed_folders)),
        }
    }

    /// Folders from the queue until it is empty, over one connection (re-established when
    /// lost): the totals, the folders not finished, the connection, and the error that ended
    /// the pass.
    async fn worker(
        &self,
        mut client: Option<Client>,
        queue: &RefCell<VecDeque<String>>,
        each: &RefCell<&mut sync::OnMessage<'_>>,
    ) -> (Totals, usize, Option<Client>, Option<Error>) {
        let mut totals = Totals::default();
        let mut failed_folders = 0;
        let mut on =
            |e: &Event, seen: Option<(&[u8], &crate::Outcome<'_>)>| (each.borrow_mut())(e, seen);
        loop {
            let Some(folder) = queue.borrow_mut().pop_front() else {
                break;
            };
            let mut attempt = 0;
            loop {
                if self.opts.stop.load(Ordering::Relaxed) {
                    return (totals, failed_folders, client, None);
                }
                attempt += 1;
                if client.is_none() {
                    match Client::connect(self.account, self.secret).await {
                        Ok(c) => client = Some(c),
                        Err(e) => self.say(e),
                    }
                }
                let result = match client.as_mut() {
                    Some(c) => {
                        sync::folder(c, &folder, self.state, self.policy, &self.opts, &mut on).await
                    }
                    None => Err(ImapError::fatal("not connected")),
                };
                match result {
                    Ok(t) => {
                        add(&mut totals, t);
                        break;
                    }
                    Err(e) if e.fatal && attempt < ATTEMPTS => {
                        let wait = Duration::from_secs(1 << attempt);
                        self.say(format!(
                            "{folder}: {e}; reconnecting in {}s",
                            wait.as_secs()
                        ));
                        client = None;
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => {
                        self.say(format!("{folder}: {e}"));
                        failed_folders += 1;
                        if e.fatal {
                            client = match Client::connect(self.account, self.secret).await {
                                Ok(c) => Some(c),
                                Err(e) => {
                                    return (
                                        totals,
                                        failed_folders,
                                        None,
                                        Some(Error::Failed(e.message)),
                                    )
                                }
                            };
                        }
                        break;
                    }
                }
            }
        }
        (totals, failed_folders, client, None)
    }

    /// Delete the kept originals older than the account's retention; a failure is said and
    /// left for the next time.
    async fn expire(&mut self) {
        if self.opts.dry_run || !matches!(self.opts.originals, Originals::Folder(_)) {
            return;
        }
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let retention = self.account.retention();
        let cutoff = time::now() - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 2);
        match retention::expire(client, self.state, cutoff).await {
            Ok(e) if e.deleted > 0 => self.say(format!(
                "{} kept original(s) replaced more than {} ago deleted",
                e.deleted,
                crate::config::values::Dur(retention)
            )),
            Ok(_) => {}
            Err(e) => {
                self.say(format!("originals retention: {e}"));
                if e.fatal {
                    self.client = None;
                }
            }
        }
    }

    /// Pass after pass until stopped: IDLE on the first folder between passes (at most
    /// `poll`, or a plain wait on a server without IDLE); a lost connection is re-established
    /// with a growing wait.
    async fn watch(
        &mut self,
        poll: Duration,
        wake: &tokio::sync::Notify,
        each: &mut sync::OnMessage<'_>,
    ) -> Result<(Totals, usize), Error> {
        let mut totals = Totals::default();
        let mut backoff = Duration::from_secs(1);
        let mut last_expiry = None;
        loop {
            if self.opts.stop.load(Ordering::Relaxed) {
                break;
            }
            if self.client.is_none() {
                if let Err(e) = self.connect().await {
                    self.say(format!("{e}; trying again in {}s", backoff.as_secs()));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                backoff = Duration::from_secs(1);
            }
            match self.pass(each).await {
                Ok((t, _)) => add(&mut totals, t),
                Err(e) => {
                    self.say(e);
                    self.client = None;
                    continue;
                }
            }
            if last_expiry.is_none_or(|t: std::time::Instant| t.elapsed() >= EXPIRE_EVERY) {
                self.expire().await;
                last_expiry = Some(std::time::Instant::now());
            }
            if self.opts.stop.load(Ordering::Relaxed) {
                break;
            }
            let (Some(mut client), Some(first)) = (self.client.take(), self.folders.first()) else {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = wake.notified() => {}
                }
                continue;
            };
            if let Err(e) = client.select(first).await {
                self.say(format!("{first}: {e}"));
                continue;
            }
            match client.idle(poll.min(IDLE_MAX), wake.notified()).await {
                Ok((c, woke)) => {
                    self.client = Some(c);
                    if woke == Woke::Stopped {
                        break;
                    }
                }
                Err(e) => self.say(format!("IDLE: {e}; reconnecting")),
            }
        }
        if let Some(c) = self.client.take() {
            c.logout().await;
        }
        Ok((totals, 0))
    }
}

/// A held lock is another run of the same account: a temporary condition (exit 75, so that a
/// timer or cron job simply tries again); any other lock failure is a failure (exit 1).
fn locked(e: state::LockError) -> Error {
    match e {
        state::LockError::Held(m) => Error::TempFail(m),
        state::LockError::Io(m) => Error::Failed(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_asks_to_try_again_later() {
        let held = locked(state::LockError::Held("another run".into()));
        assert_eq!(held.exit_code(), 75, "{held:?}");
        let io = locked(state::LockError::Io("permission denied".into()));
        assert_eq!(io.exit_code(), 1, "{io:?}");
    }
}
