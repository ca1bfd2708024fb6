//! Ctrl-C (SIGINT) during `trackless batch`, as the README promises: the run stops after the
//! messages in flight, every message is still there exactly once (original or rewritten),
//! nothing is left behind (locks, temporary files), the exit status says the run was
//! interrupted, and a rerun finishes the job. Real processes on a mailbox big enough that the
//! signal arrives while the run is under way.

mod common;

use common::cli::assert_exit;
use common::corpus_lf as corpus;
use common::mailbox::{maildir_base as base, mkmaildir, SEP};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;
use trackless::batch::mbox::{self, Flavor};
use trackless::{neutralise, Policy};

/// `trackless --no-log batch --jobs 2 TARGET`, its output piped.
fn spawn(target: &Path) -> Child {
    common::cli::batch(&["--jobs", "2"], target)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// A second run over `target` after the interrupted one: it must finish (exit 0).
fn rerun(target: &Path) {
    let out = common::cli::batch(&["--jobs", "2"], target)
        .output()
        .expect("rerun");
    assert_exit(&out, 0);
}

fn sigint(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child, which has not been waited for yet.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// `N` of the summary line's "N seen".
fn seen(stdout: &str) -> u64 {
    stdout
        .split(" seen")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line: {stdout}"))
}

/// Checks common to both kinds of mailbox after the interrupted run.
fn interrupted(out: &Output, total: usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "an interrupted run exits 130 (128 + SIGINT)\n{stdout}{stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    let n = seen(&stdout);
    assert!(
        n > 0 && n < total as u64,
        "{n} of {total} messages seen: the run did not stop at the signal, or finished before it\n{stdout}"
    );
}

#[test]
fn ctrl_c_during_an_mbox_run_keeps_every_message_and_a_rerun_completes() {
    let dir = common::scratch("mbox");
    let path = dir.join("inbox");
    let policy = Policy::default();
    // Each message as stored (mboxo) and as the run writes it when it rewrites it.
    let templates: Vec<(Vec<u8>, Vec<u8>)> = corpus()
        .iter()
        .map(|m| {
            let stored = mbox::escape(m, Flavor::Mboxo);
            let out = neutralise(&stored, &policy);
            let rewritten = if out.changed {
                mbox::escape(&out.bytes, Flavor::Mboxo)
            } else {
                stored.clone()
            };
            (stored, rewritten)
        })
        .collect();
    let copies = 60;
    let total = templates.len() * copies;
    let mut data = Vec::new();
    for _ in 0..copies {
        for (stored, _) in &templates {
            data.extend_from_slice(SEP);
            data.extend_from_slice(stored);
            data.push(b'\n');
        }
    }
    std::fs::write(&path, &data).expect("write");

    let mut child = spawn(&path);
    // Under way: the new mailbox is being written (its buffer of 1 MiB was flushed once).
    let tmp = dir.join(format!(".inbox.trackless-{}.tmp", child.id()));
    loop {
        if std::fs::metadata(&tmp).is_ok_and(|m| m.len() >= 1 << 20) {
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sigint(&child);
    let out = child.wait_with_output().expect("wait");
    interrupted(&out, total);

    // Every message once, in its place, whole: the original or the rewrite, byte for byte.
    let after = std::fs::read(&path).expect("read");
    let messages: Vec<Vec<u8>> = mbox::Reader::new(&after[..])
        .map(|m| {
            let (sep, stored) = m.expect("read");
            assert_eq!(sep, SEP);
            mbox::split_trailer(&stored).0.to_vec()
        })
        .collect();
    assert_eq!(messages.len(), total, "messages lost or duplicated");
    let (mut rewritten, mut pending) = (0, 0);
    let mut expected_file = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (stored, new) = &templates[i % templates.len()];
        assert!(
            m == stored || m == new,
            "message {i} is neither the original nor its rewrite"
        );
        if stored != new {
            if m == new {
                rewritten += 1;
            } else {
                pending += 1;
            }
        }
        expected_file.extend_from_slice(SEP);
        expected_file.extend_from_slice(m);
        expected_file.push(b'\n');
    }
    assert_eq!(after, expected_file, "bytes between the messages changed");
    assert!(
        rewritten > 0,
        "the messages processed before Ctrl-C were not kept"
    );
    assert!(pending > 0, "the run did not stop at Ctrl-C");
    assert_eq!(
        leftovers(&dir),
        vec!["inbox".to_string()],
        "lock or temporary file left behind"
    );

    // A rerun does the rest.
    rerun(&path);
    let mut want = Vec::new();
    for i in 0..total {
        want.extend_from_slice(SEP);
        want.extend_from_slice(&templates[i % templates.len()].1);
        want.push(b'\n');
    }
    assert!(
        std::fs::read(&path).expect("read") == want,
        "the rerun did not finish the mailbox"
    );
    assert_eq!(leftovers(&dir), vec!["inbox".to_string()]);
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Message files of a Maildir folder (cur/ and new/), by base name (before `,` or `:`).
fn maildir_files(root: &Path) -> Vec<PathBuf> {
    trackless::batch::maildir::messages(root).expect("list")
}

#[test]
fn ctrl_c_during_a_maildir_run_keeps_every_message_and_a_rerun_completes() {
    let dir = common::scratch("maildir");
    let root = dir.join("Maildir");
    let policy = Policy::default();
    for folder in [root.clone(), root.join(".Newsletters")] {
        mkmaildir(&folder);
    }
    let templates: Vec<(Vec<u8>, Vec<u8>)> = corpus()
        .into_iter()
        .map(|m| {
            let new = neutralise(&m, &policy).bytes.into_owned();
            (m, new)
        })
        .collect();
    let mut originals: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    for c in 0..40 {
        for (i, (raw, _)) in templates.iter().enumerate() {
            n += 1;
            let base = format!("17000{n:05}.M{c}P{i}.host");
            let file = match n % 3 {
                0 => root.join("cur").join(format!("{base}:2,S")),
                1 => root.join("new").join(&base),
                _ => root.join(".Newsletters/cur").join(format!("{base}:2,")),
            };
            std::fs::write(file, raw).expect("write");
            originals.insert(base, i);
        }
    }
    let total = originals.len();
    let done = |root: &Path| {
        maildir_files(root)
            .iter()
            .filter(|p| {
                let (orig, new) = &templates[originals[&base(p)]];
                orig != new && std::fs::read(p).is_ok_and(|b| &b == new)
            })
            .count()
    };

    let mut child = spawn(&root);
    // Under way: some messages already rewritten.
    loop {
        if done(&root) >= 20 || child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sigint(&child);
    let out = child.wait_with_output().expect("wait");
    interrupted(&out, total);

    let files = maildir_files(&root);
    assert_eq!(files.len(), total, "messages lost or duplicated");
    let mut pending = 0;
    let mut names = std::collections::HashSet::new();
    for p in &files {
        assert!(names.insert(base(p)), "{} twice", base(p));
        let (orig, new) = &templates[originals[&base(p)]];
        let bytes = std::fs::read(p).expect("read");
        assert!(
            &bytes == orig || &bytes == new,
            "{} is neither the original nor its rewrite",
            p.display()
        );
        if orig != new && &bytes == orig {
            pending += 1;
        }
    }
    assert!(done(&root) > 0);
    assert!(pending > 0, "the run did not stop at Ctrl-C");
    for folder in [root.clone(), root.join(".Newsletters")] {
        assert_eq!(
            std::fs::read_dir(folder.join("tmp")).expect("tmp").count(),
            0,
            "{}: temporary files left behind",
            folder.display()
        );
    }

    rerun(&root);
    for p in maildir_files(&root) {
        let (_, new) = &templates[originals[&base(&p)]];
        assert!(
            &std::fs::read(&p).expect("read") == new,
            "{} not rewritten by the rerun",
            p.display()
        );
    }
}
