//! `trackless batch` and the tracking log (`--log FILE`): one row per message processed, none
//! for a dry run, none for an mbox run whose new mailbox was not committed (the mailbox is as
//! it was, so a rerun processes those messages again and must not log them twice).

mod common;

use common::cli::ok;
use common::mailbox::mkmaildir;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use trackless::batch::mbox::{self, Flavor};
use trackless::log::{Keep, Mode, Record};
use trackless::{neutralise, Policy};

/// The corpus (LF line endings, as mbox files and most Maildirs hold them); every fourth
/// message has its Message-ID removed (mail without one exists, and the log cannot tell such
/// messages apart by ID).
fn corpus() -> Vec<Vec<u8>> {
    common::corpus_lf()
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            if i % 4 == 1 {
                without_message_id(&raw)
            } else {
                raw
            }
        })
        .collect()
}

/// The message without its Message-ID field (and the field's continuation lines).
fn without_message_id(raw: &[u8]) -> Vec<u8> {
    let head_end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(raw.len(), |p| p + 1);
    let mut out = Vec::with_capacity(raw.len());
    let mut dropping = false;
    for line in raw[..head_end].split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if !dropping {
                out.extend_from_slice(line);
            }
            continue;
        }
        dropping = line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:");
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    assert!(
        out.len() < head_end,
        "the message had no Message-ID to remove"
    );
    out.extend_from_slice(&raw[head_end..]);
    out
}

/// An mboxo mailbox of `messages`, each followed by a blank line.
fn build_mbox(messages: &[Vec<u8>]) -> Vec<u8> {
    common::mailbox::build_mbox(messages, Flavor::Mboxo)
}

/// The messages as an mboxo mailbox stores them (escaped), which is how batch reads them.
fn as_stored(messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    messages
        .iter()
        .map(|m| mbox::escape(m, Flavor::Mboxo))
        .collect()
}

/// A Maildir with `messages` in new/.
fn build_maildir(root: &Path, messages: &[Vec<u8>]) {
    mkmaildir(root);
    for (i, m) in messages.iter().enumerate() {
        std::fs::write(root.join(format!("new/17000{i:05}.M0P{i}.host")), m).expect("write");
    }
}

/// What identifies a message's row: (SHA-256 of the Message-ID, From, Subject). The subject is
/// logged because the runs use `--log-subject`.
type Key = (Option<String>, Option<String>, Option<String>);

/// The key trackless computes for a message as batch reads it (for mboxo: as stored).
fn key_of(stored: &[u8]) -> Key {
    let outcome = neutralise(stored, &Policy::default());
    let keep = Keep {
        subject: true,
        ..Keep::default()
    };
    let r = Record::new(stored, &outcome, Mode::Batch, None, &[], keep, 0);
    (r.message_id_hash, r.from_addr, r.subject)
}

/// Each message's key once; the keys must tell the messages apart.
fn expected(stored: &[Vec<u8>]) -> BTreeMap<Key, i64> {
    let mut m = BTreeMap::new();
    for s in stored {
        *m.entry(key_of(s)).or_insert(0) += 1;
    }
    assert_eq!(m.len(), stored.len(), "two test messages share a key");
    m
}

/// Rows of the log per key (an absent log has none).
fn logged(log: &Path) -> BTreeMap<Key, i64> {
    let mut m = BTreeMap::new();
    if !log.exists() {
        return m;
    }
    let conn = Connection::open(log).expect("open log");
    let mut stmt = conn
        .prepare("SELECT message_id_hash, from_addr, subject, mode FROM messages")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, String>(3)?))
        })
        .expect("query");
    for row in rows {
        let (key, mode) = row.expect("row");
        assert_eq!(mode, "batch");
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

/// Every expected message logged exactly once, and nothing else.
fn assert_once(log: &Path, want: &BTreeMap<Key, i64>) {
    let got = logged(log);
    let wrong: Vec<String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| got.get(*k).copied().unwrap_or(0) != want.get(*k).copied().unwrap_or(0))
        .map(|k| format!("{k:?}: {} rows", got.get(k).copied().unwrap_or(0)))
        .collect();
    assert!(
        wrong.is_empty(),
        "not one row per message:\n{}",
        wrong.join("\n")
    );
}

fn rows(log: &Path) -> i64 {
    logged(log).values().sum()
}

fn trackless(log: &Path, args: &[&str], target: &Path) -> Command {
    let mut c = common::cli::trackless();
    c.arg("--log")
        .arg(log)
        .args(["--log-subject", "batch", "--jobs", "2"])
        .args(args)
        .arg(target);
    c
}

fn run(log: &Path, args: &[&str], target: &Path) -> Output {
    trackless(log, args, target).output().expect("run")
}

/// Files of a directory other than `keep` (temporary files, locks left behind).
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn an_mbox_run_that_is_not_committed_logs_nothing() {
    let dir = common::scratch("failed");
    let path = dir.join("inbox");
    let log = dir.join("log.sqlite");
    let messages = corpus();
    let data = build_mbox(&messages);
    std::fs::write(&path, &data).expect("write");
    let stored = as_stored(&messages);
    let want = expected(&stored);

    // 1. The backup cannot be made (the backup "directory" is a file): every message was
    //    processed, then the mailbox is left as it was, so nothing may be logged.
    let not_a_dir = dir.join("backup-is-a-file");
    std::fs::write(&not_a_dir, b"").expect("file");
    let out = run(
        &log,
        &["--backup", not_a_dir.to_str().expect("path")],
        &path,
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("backup failed, mailbox left as it was"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).expect("read"), data);
    assert_eq!(
        rows(&log),
        0,
        "messages of a run whose mailbox was not replaced were logged"
    );

    // 2. The new mailbox cannot be written: a file size limit below its size (works as root
    //    too, unlike a read-only directory). The temporary file must go, the mailbox stay.
    let limit = (data.len() * 2 / 3) as libc::rlim_t;
    let mut cmd = trackless(&log, &[], &path);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Writes past the limit fail with EFBIG instead of killing the process.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let rl = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("File too large"), "{err}");
    assert_eq!(std::fs::read(&path).expect("read"), data);
    assert_eq!(
        rows(&log),
        0,
        "messages of a run whose mailbox was not replaced were logged"
    );
    assert_eq!(
        leftovers(&dir, &["inbox", "log.sqlite", "backup-is-a-file"]),
        Vec::<String>::new(),
        "left behind"
    );

    // 3. A run that commits: every message logged exactly once, with or without Message-ID.
    let summary = ok(&run(&log, &[], &path));
    assert!(
        summary.contains(&format!("{} seen", messages.len())),
        "{summary}"
    );
    assert_ne!(std::fs::read(&path).expect("read"), data);
    assert_once(&log, &want);

    // 4. A rerun changes nothing; messages with a Message-ID are not logged again.
    let summary = ok(&run(&log, &[], &path));
    assert!(summary.contains(" 0 rewritten"), "{summary}");
    let after = logged(&log);
    for (key, n) in &want {
        if key.0.is_some() {
            assert_eq!(after.get(key), Some(n), "{key:?} logged again by a rerun");
        }
    }
}

/// A rerun over a mailbox already done must not log its messages again, those without a
/// Message-ID included: for them the log keeps a hash of the message as the run left it.
#[test]
fn a_rerun_does_not_log_messages_without_message_id_again() {
    let dir = common::scratch("rerun");
    let path = dir.join("inbox");
    let log = dir.join("log.sqlite");
    let messages = corpus();
    std::fs::write(&path, build_mbox(&messages)).expect("write");
    let stored = as_stored(&messages);
    let want = expected(&stored);
    ok(&run(&log, &[], &path));
    assert_once(&log, &want);
    ok(&run(&log, &[], &path));
    assert_once(&log, &want);
}

#[test]
fn an_mbox_run_logs_one_row_per_message_and_a_dry_run_none() {
    let dir = common::scratch("mbox-rows");
    let log = dir.join("log.sqlite");
    let messages = corpus();
    let stored = as_stored(&messages);
    let path = dir.join("inbox");
    let data = build_mbox(&messages);
    std::fs::write(&path, &data).expect("write");
    let out = run(&log, &["--dry-run"], &path);
    let summary = ok(&out);
    assert!(summary.starts_with("dry run: "), "{summary}");
    assert_eq!(std::fs::read(&path).expect("read"), data);
    assert_eq!(rows(&log), 0, "a dry run logged messages");
    ok(&run(&log, &[], &path));
    assert_once(&log, &expected(&stored));

    // A mailbox in which nothing changes is not replaced, and its messages are still logged.
    let clean: Vec<Vec<u8>> = stored
        .iter()
        .filter(|m| !neutralise(m, &Policy::default()).changed)
        .cloned()
        .collect();
    assert!(clean.len() >= 3, "the corpus has too few clean messages");
    let clean_path = dir.join("clean");
    let clean_log = dir.join("clean.sqlite");
    let clean_data = build_mbox(&clean);
    std::fs::write(&clean_path, &clean_data).expect("write");
    ok(&run(&clean_log, &[], &clean_path));
    assert_eq!(std::fs::read(&clean_path).expect("read"), clean_data);
    assert_once(&clean_log, &expected(&clean));
}

#[test]
fn a_maildir_run_logs_one_row_per_message_and_a_dry_run_none() {
    let dir = common::scratch("maildir-rows");
    let root = dir.join("Maildir");
    let log = dir.join("log.sqlite");
    let messages = corpus();
    build_maildir(&root, &messages);
    let summary = ok(&run(&log, &["--dry-run"], &root));
    assert!(summary.starts_with("dry run: "), "{summary}");
    assert_eq!(rows(&log), 0, "a dry run logged messages");
    let summary = ok(&run(&log, &[], &root));
    assert!(
        summary.contains(&format!("{} seen", messages.len())),
        "{summary}"
    );
    assert_once(&log, &expected(&messages));
}
