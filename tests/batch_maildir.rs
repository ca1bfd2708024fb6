//! `trackless batch` over a Maildir: every message ends up exactly as `trackless filter` would
//! write it, flags and mtimes kept, Dovecot sizes fixed, a second run changes nothing, a run
//! killed mid-way leaves every message whole, problems are reported and do not stop the run.

mod common;

use common::cli::assert_exit;
use common::mailbox::{maildir_base as base, mkmaildir};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use trackless::{neutralise, Policy};

/// A Maildir with the corpus `copies` times over, in cur/ (with S= and flags), new/ and a
/// Maildir++ sub-folder. Returns base name → original bytes.
fn fill(root: &Path, copies: usize) -> HashMap<String, Vec<u8>> {
    mkmaildir(root);
    mkmaildir(&root.join(".Newsletters"));
    let mut originals = HashMap::new();
    let mut n = 0;
    for c in 0..copies {
        for (i, raw) in common::corpus_messages().iter().enumerate() {
            n += 1;
            let base = format!("17000{n:05}.M{c}P{i}.host");
            let (dir, name) = match n % 3 {
                0 => (root.join("cur"), format!("{base},S={}:2,RS", raw.len())),
                1 => (root.join("new"), base.clone()),
                _ => (
                    root.join(".Newsletters/cur"),
                    format!("{base},S={},W={}:2,", raw.len(), raw.len() + 1),
                ),
            };
            std::fs::write(dir.join(&name), raw).expect("write");
            originals.insert(base, raw.clone());
        }
    }
    originals
}

fn files(root: &Path) -> Vec<PathBuf> {
    let mut v = trackless::batch::maildir::messages(root).expect("list");
    v.sort();
    v
}

/// Every message file of the Maildir with its bytes.
fn contents(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files(root)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect()
}

fn batch(args: &[&str], root: &Path) -> std::process::Output {
    common::cli::batch(args, root).output().expect("run")
}

#[test]
fn rewrites_like_the_filter_keeps_flags_and_fixes_sizes() {
    let dir = common::scratch("basic");
    let root = dir.join("Maildir");
    let originals = fill(&root, 1);
    let mtime_before: HashMap<String, std::time::SystemTime> = files(&root)
        .iter()
        .map(|p| {
            (
                base(p),
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .expect("mtime"),
            )
        })
        .collect();
    // Dry run touches nothing.
    let before = contents(&root);
    let out = batch(&["--dry-run"], &root);
    assert_eq!(out.status.code(), Some(0));
    let after = contents(&root);
    assert_eq!(before, after, "--dry-run changed the Maildir");

    let out = batch(&["--jobs", "2"], &root);
    assert_exit(&out, 0);
    let summary = String::from_utf8_lossy(&out.stdout);
    let policy = Policy::default();
    let changing = originals
        .values()
        .filter(|o| neutralise(o, &policy).changed)
        .count();
    let want = format!(
        "{} seen, {changing} rewritten, {} unchanged",
        originals.len(),
        originals.len() - changing
    );
    assert!(summary.contains(&want), "{summary} (expected {want})");
    for p in files(&root) {
        let b = base(&p);
        let orig = &originals[&b];
        let now = std::fs::read(&p).expect("read");
        let expected = neutralise(orig, &policy);
        assert_eq!(
            now,
            expected.bytes.as_ref(),
            "{} is not what trackless filter writes",
            p.display()
        );
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if now != *orig && name.contains(",S=") {
            assert!(
                name.contains(&format!(",S={}", now.len())),
                "{name}: S= not fixed"
            );
        }
        if now != *orig && name.contains(",W=") {
            let bare_lf = now
                .iter()
                .enumerate()
                .filter(|&(i, &c)| c == b'\n' && (i == 0 || now[i - 1] != b'\r'))
                .count();
            assert!(
                name.contains(&format!(",W={}", now.len() + bare_lf)),
                "{name}: W= not fixed"
            );
        }
        if p.parent().is_some_and(|d| d.ends_with("cur"))
            && p.to_string_lossy().contains("/Maildir/cur/")
        {
            assert!(name.ends_with(":2,RS"), "{name}: flags lost");
        }
        let mtime = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(mtime, mtime_before[&b], "{name}: mtime changed");
    }
    // Second run: nothing to do, nothing touched.
    let snapshot = contents(&root);
    let out = batch(&[], &root);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" 0 rewritten"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let again = contents(&root);
    assert_eq!(snapshot, again);
    assert_eq!(
        std::fs::read_dir(root.join("tmp")).expect("tmp").count(),
        0,
        "temporary files left behind"
    );
}

#[test]
fn backup_keeps_originals() {
    let dir = common::scratch("backup");
    let root = dir.join("Maildir");
    let originals = fill(&root, 1);
    let backup = dir.join("backup");
    let out = batch(&["--backup", backup.to_str().expect("path")], &root);
    assert_eq!(out.status.code(), Some(0));
    let mut kept = 0;
    for p in trackless::batch::maildir::messages(&backup.join("")).unwrap_or_default() {
        assert_eq!(std::fs::read(&p).expect("read"), originals[&base(&p)]);
        kept += 1;
    }
    let sub: Vec<PathBuf> = walk(&backup);
    assert!(sub.len() >= 37, "{} backups", sub.len());
    for p in sub {
        assert_eq!(
            std::fs::read(&p).expect("read"),
            originals[&base(&p)],
            "{}",
            p.display()
        );
    }
    let _ = kept;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn killed_mid_run_leaves_every_message_whole_and_a_rerun_completes() {
    let dir = common::scratch("kill");
    let root = dir.join("Maildir");
    let originals = fill(&root, 60);
    let policy = Policy::default();
    let rewritten: HashMap<String, Vec<u8>> = originals
        .iter()
        .map(|(k, v)| (k.clone(), neutralise(v, &policy).bytes.into_owned()))
        .collect();
    let mut child = common::cli::batch(&["--jobs", "2"], &root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once some, but not all, messages are rewritten.
    let start = std::time::Instant::now();
    loop {
        let done = files(&root)
            .iter()
            .filter(|p| std::fs::read(p).ok().as_ref() == rewritten.get(&base(p)))
            .count();
        if done > 20 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let mut partial = 0;
    let now = files(&root);
    assert_eq!(
        now.len(),
        originals.len(),
        "a message was lost or duplicated"
    );
    for p in &now {
        let b = base(p);
        let bytes = std::fs::read(p).expect("read");
        assert!(
            bytes == originals[&b] || bytes == rewritten[&b],
            "{} is neither the original nor the rewrite",
            p.display()
        );
        if bytes == originals[&b] && originals[&b] != rewritten[&b] {
            partial += 1;
        }
    }
    assert!(
        partial > 0,
        "the run finished before it could be killed; make the Maildir bigger"
    );
    let out = batch(&["--jobs", "2"], &root);
    assert_eq!(out.status.code(), Some(0));
    for p in files(&root) {
        assert_eq!(std::fs::read(&p).expect("read"), rewritten[&base(&p)]);
    }
    for folder in [root.clone(), root.join(".Newsletters")] {
        let left = std::fs::read_dir(folder.join("tmp")).expect("tmp").count();
        assert_eq!(
            left,
            0,
            "{}: temporary files of the killed run were not cleaned",
            folder.display()
        );
    }
}

#[test]
fn unreadable_and_unwritable_messages_are_reported_not_fatal() {
    let dir = common::scratch("errors");
    let root = dir.join("Maildir");
    fill(&root, 1);
    // A dangling symlink where a message should be: cannot be read.
    std::os::unix::fs::symlink(dir.join("gone"), root.join("cur/1799999999.M0P0.host:2,S"))
        .expect("symlink");
    // A sub-folder whose tmp/ is a file: its messages cannot be rewritten.
    let sub = root.join(".Newsletters");
    std::fs::remove_dir_all(sub.join("tmp")).expect("rm tmp");
    std::fs::write(sub.join("tmp"), b"not a directory").expect("tmp file");
    let out = batch(&["--jobs", "2"], &root);
    assert_eq!(out.status.code(), Some(1), "some messages failed: exit 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed: ") && err.contains("1799999999"),
        "{err}"
    );
    assert!(err.contains(".Newsletters"), "{err}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("rewritten") && !summary.contains(" 0 rewritten"),
        "the rest was still done: {summary}"
    );
    // Bad usage: exit 2.
    let out = batch(&[], &dir.join("nowhere"));
    assert_eq!(out.status.code(), Some(2));
}
