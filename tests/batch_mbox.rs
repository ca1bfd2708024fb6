//! `trackless batch` over mbox files: split only on real separators, escaping kept (mboxo and
//! mboxrd), each message as `trackless filter` writes it, untouched messages byte for byte,
//! nothing rewritten on a second run, locks respected.

mod common;

use common::cli::assert_exit;
use common::mailbox::{build_mbox as build, SEP};
use std::path::{Path, PathBuf};
use std::process::Command;
use trackless::batch::mbox::{self, Flavor};
use trackless::{neutralise, Policy};

/// Corpus messages by file name, with LF line endings (as mbox files on disk have them).
fn corpus(names: &[&str]) -> Vec<Vec<u8>> {
    names
        .iter()
        .map(|n| common::lf(&common::corpus_message(n)))
        .collect()
}

/// `trackless --no-log batch --jobs 2 PATH`.
fn batch(path: &Path) -> std::process::Output {
    common::cli::batch(&["--jobs", "2"], path)
        .output()
        .expect("run")
}

/// Messages of an mbox, unescaped.
fn read_back(path: &Path, flavor: Flavor) -> Vec<Vec<u8>> {
    let f = std::io::BufReader::new(std::fs::File::open(path).expect("open"));
    mbox::Reader::new(f)
        .map(|m| {
            let (_, stored) = m.expect("read");
            let (msg, _) = mbox::split_trailer(&stored);
            mbox::unescape(msg, flavor)
        })
        .collect()
}

fn messages_with_from_lines() -> Vec<Vec<u8>> {
    let mut msgs = corpus(&[
        "mailgun-newsletter.eml",
        "personal-plain.eml",
        "sendgrid-newsletter.eml",
        "mandrill-shipping.eml",
    ]);
    // A body line starting with "From " (not after a blank line) and one with ">From ".
    msgs.push(
        b"From: Ann <ann@example.org>\nTo: jane@example.net\nSubject: quoting\nMessage-ID: <q1@example.org>\n\nHello,\nFrom my side all is fine.\n>From the archive, a quote.\nBye\n".to_vec(),
    );
    msgs
}

#[test]
fn mboxrd_rewritten_like_the_filter() {
    for flavor in [Flavor::Mboxrd, Flavor::Mboxo] {
        let dir = common::scratch(&format!("{flavor:?}"));
        let path = dir.join("inbox");
        let msgs = messages_with_from_lines();
        let mut data = build(&msgs, flavor);
        if flavor == Flavor::Mboxrd {
            // Make detection certain: a doubly quoted line.
            data.extend_from_slice(SEP);
            data.extend_from_slice(b"From: x@example.org\nSubject: rd\n\n>>From here\n\n");
        }
        std::fs::write(&path, &data).expect("write");
        let out = batch(&path);
        assert_exit(&out, 0);
        let after = read_back(&path, flavor);
        let policy = Policy::default();
        for (i, original) in msgs.iter().enumerate() {
            // For mboxo the stored form is what is rewritten (unescaping is ambiguous).
            let stored = if flavor == Flavor::Mboxo {
                mbox::escape(original, flavor)
            } else {
                original.clone()
            };
            let expected = neutralise(&stored, &policy);
            let want = if flavor == Flavor::Mboxo {
                mbox::unescape(&mbox::escape(&expected.bytes, flavor), flavor)
            } else {
                expected.bytes.to_vec()
            };
            assert_eq!(
                after[i], want,
                "{flavor:?} message {i} differs from trackless filter"
            );
        }
        assert_eq!(
            after.len(),
            msgs.len() + usize::from(flavor == Flavor::Mboxrd),
            "{flavor:?}: messages merged or split"
        );
        // The quoted message survives whole, its From lines intact.
        // (mboxo cannot be unescaped: there the stored, escaped form is what we read back.)
        let quoting = String::from_utf8_lossy(&after[4]).into_owned();
        let want = match flavor {
            Flavor::Mboxrd => "\nFrom my side all is fine.\n>From the archive, a quote.\nBye\n",
            Flavor::Mboxo => "\n>From my side all is fine.\n>From the archive, a quote.\nBye\n",
        };
        assert!(quoting.contains(want), "{flavor:?}: {quoting}");
        // Second run: nothing rewritten, the file not even replaced.
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("meta"));
        let bytes = std::fs::read(&path).expect("read");
        let out = batch(&path);
        assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 rewritten"));
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).expect("meta")),
            inode
        );
    }
}

#[test]
fn untouched_messages_stay_byte_identical() {
    let dir = common::scratch("clean");
    let path = dir.join("clean.mbox");
    let data = build(
        &corpus(&["personal-plain.eml", "clean-newsletter.eml"]),
        Flavor::Mboxo,
    );
    std::fs::write(&path, &data).expect("write");
    let out = batch(&path);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(&path).expect("read"), data);
}

/// A mailbox with a message trackless would rewrite, so that a run that ignored a lock would
/// show in the file.
fn lockable(name: &str) -> (PathBuf, Vec<u8>) {
    let dir = common::scratch(name);
    let path = dir.join("inbox");
    let data = build(&corpus(&["mailgun-newsletter.eml"]), Flavor::Mboxo);
    assert!(
        neutralise(&data[SEP.len()..], &Policy::default()).changed,
        "the test message must be one that gets rewritten"
    );
    std::fs::write(&path, &data).expect("write");
    (path, data)
}

#[test]
fn a_dotlocked_mailbox_is_refused_clearly() {
    let (path, data) = lockable("dotlocked");
    let dotlock = PathBuf::from(format!("{}.lock", path.display()));
    // Only the dotlock (as procmail or Postfix local(8) take it); no fcntl lock anywhere.
    std::fs::write(&dotlock, b"").expect("dotlock");
    let out = batch(&path);
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot take the dotlock"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        data,
        "a dotlocked mailbox was modified"
    );
    assert!(
        dotlock.exists(),
        "the other program's dotlock was removed by trackless"
    );
    std::fs::remove_file(&dotlock).expect("unlock");
    // Once the lock is gone the same mailbox is done.
    let out = batch(&path);
    assert_eq!(out.status.code(), Some(0));
    assert_rewritten(&path, &data);
    assert!(!dotlock.exists(), "trackless left its dotlock behind");
}

/// The mailbox at `path` was rewritten from `before`: the same messages (as many separator
/// lines), with our header (merely "different" would also pass on an emptied file).
fn assert_rewritten(path: &Path, before: &[u8]) {
    let after = std::fs::read(path).expect("read");
    let separators = |b: &[u8]| {
        b.split(|&c| c == b'\n')
            .filter(|l| l.starts_with(b"From "))
            .count()
    };
    assert_eq!(
        separators(&after),
        separators(before),
        "messages lost or added"
    );
    assert!(
        after.windows(14).any(|w| w == b"\nX-Trackless: "),
        "no message was rewritten"
    );
}

#[test]
fn an_fcntl_locked_mailbox_is_refused_clearly() {
    let (path, data) = lockable("fcntl");
    let dotlock = PathBuf::from(format!("{}.lock", path.display()));
    // Only an fcntl write lock (as mutt or Dovecot take it), held by this test process; the
    // trackless child is another process, so the lock conflicts with its F_SETLK. fcntl locks
    // belong to the process and any close of a descriptor of the file releases them, so the
    // file is not opened again here while the lock must hold.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open");
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: fcntl(F_SETLK) on a descriptor we own, with an initialised flock.
        let rc = unsafe {
            let mut fl: libc::flock = std::mem::zeroed();
            fl.l_type = libc::F_WRLCK as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            libc::fcntl(held.as_raw_fd(), libc::F_SETLK, &fl)
        };
        assert_eq!(rc, 0, "fcntl lock: {}", std::io::Error::last_os_error());
    }
    assert!(!dotlock.exists());
    let out = batch(&path);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("locked by another process (fcntl)"), "{err}");
    assert!(
        !dotlock.exists(),
        "trackless left its dotlock behind after the fcntl refusal"
    );
    drop(held);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        data,
        "an fcntl-locked mailbox was modified"
    );
    // Lock released: the same mailbox is done.
    let out = batch(&path);
    assert_eq!(out.status.code(), Some(0));
    assert_rewritten(&path, &data);
}

#[test]
fn bytes_before_the_first_separator_are_kept() {
    let dir = common::scratch("preamble");
    let path = dir.join("inbox");
    // A message whose "From " line was lost (a truncated or hand-edited mailbox), then a
    // message that gets rewritten.
    let msgs = corpus(&["personal-plain.eml", "mailgun-newsletter.eml"]);
    let mut lost = msgs[0].clone();
    lost.extend_from_slice(b"\n");
    let rest = build(&msgs[1..], Flavor::Mboxo);
    std::fs::write(&path, [&lost[..], &rest[..]].concat()).expect("write");
    let out = batch(&path);
    assert_exit(&out, 0);
    let after = std::fs::read(&path).expect("read");
    let rewritten = neutralise(&msgs[1], &Policy::default());
    assert!(rewritten.changed);
    let want = [&lost[..], SEP, &rewritten.bytes, b"\n"].concat();
    assert!(
        after == want,
        "the mailbox is not the bytes before the first separator, then the rewritten message"
    );
}

/// The fcntl lock holder of `path` that conflicts with a write lock, if any (F_GETLK: asks
/// without taking a lock).
fn fcntl_holder(path: &Path) -> Option<libc::pid_t> {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    // SAFETY: fcntl(F_GETLK) on a descriptor we own, with an initialised flock.
    let (rc, fl) = unsafe {
        let mut fl: libc::flock = std::mem::zeroed();
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let rc = libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl);
        (rc, fl)
    };
    assert_eq!(rc, 0, "F_GETLK: {}", std::io::Error::last_os_error());
    (fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

#[test]
fn the_mailbox_stays_fcntl_locked_while_it_is_rewritten() {
    let dir = common::scratch("held");
    let path = dir.join("inbox");
    let msgs: Vec<Vec<u8>> = (0..20).flat_map(|_| common::corpus_lf()).collect();
    std::fs::write(&path, build(&msgs, Flavor::Mboxo)).expect("write");
    let mut child = common::cli::batch(&["--jobs", "2"], &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Under way: the new mailbox is being written (its 1 MiB buffer was flushed once).
    let tmp = dir.join(format!(".inbox.trackless-{}.tmp", child.id()));
    loop {
        if std::fs::metadata(&tmp).is_ok_and(|m| m.len() >= 1 << 20) {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before it could be observed; make the mailbox bigger"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let holder = fcntl_holder(&path);
    let dotlocked = dir.join("inbox.lock").exists();
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the run ended during the check; make the mailbox bigger"
    );
    let status = child.wait().expect("wait");
    assert_eq!(
        holder,
        Some(libc::pid_t::try_from(child.id()).expect("pid")),
        "the mailbox was not fcntl-locked by trackless while it rewrote it"
    );
    assert!(dotlocked, "no dotlock while the mailbox was rewritten");
    assert_eq!(status.code(), Some(0));
    assert!(fcntl_holder(&path).is_none());
    assert!(!dir.join("inbox.lock").exists());
    assert!(!tmp.exists(), "temporary file left behind");
}

#[test]
fn backup_keeps_the_original_mailbox() {
    let dir = common::scratch("backup");
    let path = dir.join("inbox");
    let data = build(&messages_with_from_lines(), Flavor::Mboxo);
    std::fs::write(&path, &data).expect("write");
    let backup = dir.join("originals");
    let out = common::cli::batch(&["--backup", backup.to_str().expect("path")], &path)
        .output()
        .expect("run");
    assert_exit(&out, 0);
    assert_rewritten(&path, &data);
    assert!(
        std::fs::read(backup.join("inbox")).expect("backup") == data,
        "the backup is not the original mailbox"
    );
}

/// A run killed with SIGKILL leaves its dotlock (with its PID in it) and its temporary mailbox
/// behind. The next run recognises both as its own dead run's, removes them and does the
/// work; a dotlock whose PID is alive, or one without a PID (as mail programs write it), is
/// still respected.
#[test]
fn a_killed_runs_dotlock_and_temporary_mailbox_are_recovered() {
    let (path, data) = lockable("stale");
    let dir = path.parent().expect("dir").to_path_buf();
    let dotlock = PathBuf::from(format!("{}.lock", path.display()));
    // A PID that is gone: a child that has exited and been reaped.
    let mut child = Command::new("true").spawn().expect("spawn true");
    let dead = child.id();
    child.wait().expect("wait");

    // Alive PID (this test): refused, and the lock left as it was.
    std::fs::write(&dotlock, format!("{}\n", std::process::id())).expect("lock");
    let out = batch(&path);
    assert_exit(&out, 1);
    assert_eq!(std::fs::read(&path).expect("read"), data);
    assert!(dotlock.exists());
    // No PID at all: a mail program's lock, refused too.
    std::fs::write(&dotlock, "").expect("lock");
    assert_eq!(batch(&path).status.code(), Some(1));
    assert_eq!(std::fs::read(&path).expect("read"), data);

    // The dead run's lock and half-written mailbox.
    std::fs::write(&dotlock, format!("{dead}\n")).expect("lock");
    let stale_tmp = dir.join(format!(".inbox.trackless-{dead}.tmp"));
    std::fs::write(&stale_tmp, b"half a mailbox").expect("tmp");
    let out = batch(&path);
    assert_exit(&out, 0);
    assert_rewritten(&path, &data);
    assert!(!dotlock.exists(), "dotlock left behind");
    assert!(
        !stale_tmp.exists(),
        "the killed run's temporary mailbox was left"
    );
}
