//! `trackless batch PATH…`: Maildirs and mbox files already on disk.

use super::{setting, Error, Settings};
use crate::batch::{self, Options, Summary};
use crate::core::policy::Policy;
use crate::log::{LogWriter, WriterConfig};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Maildir folders (with their Maildir++ sub-folders) and mbox files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Report what would change; touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the originals of rewritten messages (and mailboxes) in DIR [default: [batch] backup]
    #[arg(long, value_name = "DIR")]
    pub backup: Option<PathBuf>,
    /// Only messages newer than this: a duration (7d) or a date (2026-11-01).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Messages processed at the same time [default: [batch] jobs, or the number of CPUs]
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
}

/// Fails with `Error::Partial` when some messages failed, `Error::Usage` on bad arguments and
/// `Error::Signal` when a signal stopped the run before the end.
pub fn run(
    args: &BatchArgs,
    policy: &Policy,
    settings: &Settings,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    let since = args
        .since
        .as_deref()
        .map(|s| crate::log::time::parse_when(s, crate::log::time::now()))
        .transpose()
        .map_err(|e| Error::Usage(format!("--since: {e}")))?;
    for p in &args.paths {
        if !p.exists() {
            return Err(Error::Usage(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
        if p.is_dir() && !batch::maildir::is_maildir(p) {
            return Err(Error::Usage(format!(
                "{} is a directory but not a Maildir (no cur/ and new/)",
                p.display()
            )));
        }
    }
    let log_cfg = settings.log(false, false);
    let cfg = &settings.config.batch;
    let opts = Options {
        dry_run: args.dry_run,
        backup: args.backup.clone().or(cfg.backup.clone()),
        since,
        jobs: setting(args.jobs, cfg.jobs.map(|n| n.get()), || {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }),
        // A dry run keeps no original either: it logs nothing that would refer to one.
        keep: crate::log::Keep {
            originals: log_cfg.keep.originals.clone().filter(|_| !args.dry_run),
            ..log_cfg.keep.clone()
        },
    };
    // A dry run records nothing: it changed nothing.
    let log = log_cfg.path.filter(|_| !args.dry_run).map(|path| {
        LogWriter::spawn(WriterConfig {
            path,
            capacity: 4096,
            retention: None,
            originals: None,
        })
    });
    batch::install_stop_handler();
    let summary = Summary::default();
    let start = std::time::Instant::now();
    let mut status = Ok(());
    let mut interrupted = None;
    for p in &args.paths {
        let result = if p.is_dir() {
            batch::run_maildir(p, policy, &opts, log.as_ref(), &summary)
        } else {
            batch::run_mbox(p, policy, &opts, log.as_ref(), &summary)
        };
        if let Err(e) = result {
            let _ = writeln!(warn, "trackless batch: {}: {e}", p.display());
            status = Err(Error::Partial);
        }
        if let Some(signal) = batch::stopped_by() {
            interrupted = Some(signal);
            let _ = writeln!(warn, "trackless batch: interrupted; messages in flight were finished; run again to continue");
            break;
        }
    }
    if let Some(l) = log {
        l.close();
    }
    let secs = start.elapsed().as_secs_f64();
    let seen = summary.seen.load(std::sync::atomic::Ordering::Relaxed);
    let _ = writeln!(
        out,
        "{}{} in {:.1} s ({:.0} messages/s)",
        if args.dry_run { "dry run: " } else { "" },
        summary.line(),
        secs,
        seen as f64 / secs.max(1e-9)
    );
    if let Ok(failures) = summary.failures.lock() {
        for (path, e) in failures.iter() {
            let _ = writeln!(warn, "failed: {path}: {e}");
        }
        if !failures.is_empty() {
            status = Err(Error::Partial);
        }
    }
    // Interrupted: not all done, whatever else happened (as a shell reports a killed job).
    if let Some(signal) = interrupted {
        status = Err(Error::Signal(signal));
    }
    status
}
