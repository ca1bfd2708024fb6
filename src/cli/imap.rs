//! `trackless imap sync --account NAME`: clean the folders of a mailbox at an IMAP server,
//! once; resumable (the state directory remembers where each folder got to).

use super::{Error, Settings};
use crate::config::{ImapAccount, Originals};
use crate::imap::client::Client;
use crate::imap::session::{ImapError, Session};
use crate::imap::state::{self, StateDir};
use crate::imap::sync::{self, Event, Options, Totals};
use crate::log::{time, LogWriter, Mode, Record, WriterConfig};
use crate::Policy;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImapCmd {
    /// One pass over the account's folders: replace each tracked message by its clean copy
    /// (the original goes to the originals folder). Resumable; a rerun does nothing new.
    Sync(SyncArgs),
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
}

/// Attempts at a folder when the connection is lost (the server restarts, the network
/// drops); each one resumes where the last stopped.
const ATTEMPTS: u32 = 4;

pub fn run(
    cmd: &ImapCmd,
    policy: &Policy,
    settings: &Settings,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    let ImapCmd::Sync(args) = cmd;
    let account = settings.config.imap.get(&args.account).ok_or_else(|| {
        Error::Usage(format!(
            "no [imap.{}] section in the configuration file ({})",
            args.account,
            settings
                .config
                .source
                .as_ref()
                .map_or("built-in defaults: none".into(), |p| p
                    .display()
                    .to_string())
        ))
    })?;
    let secret = password(account)?;
    let since = account
        .since
        .as_deref()
        .map(|s| time::parse_when(s, time::now()))
        .transpose()
        .map_err(Error::Usage)?;
    let opts = Options {
        originals: account.originals(),
        max_size: account.max_size.map_or(policy.limits.max_size, |s| s.0) as u64,
        since,
        dry_run: args.dry_run,
    };
    let state = StateDir::new(
        args.state_dir
            .clone()
            .unwrap_or_else(|| state::default_dir(&args.account)),
    );
    let log_cfg = settings.log(false, false);
    let log = log_cfg.path.filter(|_| !args.dry_run).map(|path| {
        LogWriter::spawn(WriterConfig {
            path,
            capacity: 4096,
            retention: None,
        })
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    let start = std::time::Instant::now();
    let warn = std::cell::RefCell::new(warn);
    let result = runtime.block_on(sync_account(
        account,
        &secret,
        &state,
        policy,
        &opts,
        &mut |event, seen| {
            if let (Some(log), Some((raw, outcome))) = (&log, seen) {
                log.record_blocking(Record::new(
                    raw,
                    outcome,
                    Mode::Imap,
                    None,
                    &[],
                    log_cfg.keep,
                    time::now(),
                ));
            }
            if let Event::Failed { uid, error } = event {
                let _ = writeln!(
                    warn.borrow_mut(),
                    "trackless imap: UID {uid}: {error}; the original is kept"
                );
            }
        },
        &warn,
    ));
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
    if totals.failed > 0 || failed_folders > 0 {
        return Err(Error::Partial);
    }
    Ok(())
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

/// Every folder of the account, each resumed after a lost connection. Returns the totals
/// and how many folders could not be finished.
async fn sync_account(
    account: &ImapAccount,
    secret: &str,
    state: &StateDir,
    policy: &Policy,
    opts: &Options,
    each: &mut sync::OnMessage<'_>,
    warn: &std::cell::RefCell<&mut dyn Write>,
) -> Result<(Totals, usize), Error> {
    let say = |m: String| {
        let _ = writeln!(warn.borrow_mut(), "trackless imap: {m}");
    };
    let login_failed = |e: ImapError| Error::Failed(e.message);
    let mut client = Client::connect(account, secret)
        .await
        .map_err(login_failed)?;
    // The originals folder is written with `/`; the server may use another delimiter.
    let delimiter = client
        .delimiter()
        .await
        .map_err(|e| Error::Failed(e.message))?;
    let mut opts = opts.clone();
    if let (Originals::Folder(f), Some(d)) = (&mut opts.originals, delimiter) {
        *f = f.replace('/', &d.to_string());
    }
    let opts = &opts;
    let keep_folder = match &opts.originals {
        Originals::Folder(f) => Some(f.clone()),
        Originals::Delete => None,
    };
    let mut folders = Vec::new();
    for pattern in account.folders() {
        let found = client
            .list(&pattern)
            .await
            .map_err(|e| Error::Failed(e.message))?;
        if found.is_empty() {
            say(format!("no folder matches {pattern:?}"));
        }
        for f in found {
            // Never clean the originals: they are the user's way back.
            let is_keep = keep_folder.as_deref().is_some_and(|k| {
                f == k || delimiter.is_some_and(|d| f.starts_with(&format!("{k}{d}")))
            });
            if !is_keep && !folders.contains(&f) {
                folders.push(f);
            }
        }
    }
    let mut totals = Totals::default();
    let mut failed_folders = 0;
    for folder in &folders {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match sync::folder(&mut client, folder, state, policy, opts, each).await {
                Ok(t) => {
                    totals.seen += t.seen;
                    totals.replaced += t.replaced;
                    totals.clean += t.clean;
                    totals.skipped += t.skipped;
                    totals.failed += t.failed;
                    break;
                }
                Err(e) if e.fatal && attempt < ATTEMPTS => {
                    let wait = Duration::from_secs(1 << attempt);
                    say(format!(
                        "{folder}: {e}; reconnecting in {}s",
                        wait.as_secs()
                    ));
                    tokio::time::sleep(wait).await;
                    match Client::connect(account, secret).await {
                        Ok(c) => client = c,
                        Err(e) => say(e.message),
                    }
                }
                Err(e) => {
                    say(format!("{folder}: {e}"));
                    failed_folders += 1;
                    if e.fatal {
                        match Client::connect(account, secret).await {
                            Ok(c) => client = c,
                            Err(e) => return Err(Error::Failed(e.message)),
                        }
                    }
                    break;
                }
            }
        }
    }
    client.logout().await;
    Ok((totals, failed_folders))
}
