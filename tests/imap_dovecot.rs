//! `trackless imap sync` against a real Dovecot (started by tests/e2e/imap.sh, which sets
//! TRACKLESS_TEST_IMAP_*; the tests are #[ignore]d otherwise). The mailbox is written as a
//! Maildir before the run and read back from disk after it, so the checks do not go through
//! our own IMAP client: every message once in INBOX (clean if it was tracked, untouched if
//! not) with its flags and date, every replaced original once in the originals folder, \Seen
//! never added, a rerun changes nothing; a wrong password or an unverifiable certificate
//! touches nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};
use trackless::{neutralise, Policy};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} (run these through tests/e2e/imap.sh)"))
}

fn server_dir() -> PathBuf {
    PathBuf::from(env("TRACKLESS_TEST_IMAP_DIR"))
}

/// Maildir flag letters of the i-th message (keyword `a` is `$Label1`).
fn flags_of(i: usize) -> &'static str {
    match i % 3 {
        0 => "S",
        1 => "Fa",
        _ => "",
    }
}

fn mtime_of(i: usize) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000 + 3_600 * i as u64)
}

fn lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 40);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

fn message_id(b: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(b);
    let head = text.split("\n\n").next().unwrap_or("");
    head.lines()
        .find(|l| l.len() > 11 && l[..11].eq_ignore_ascii_case("message-id:"))
        .map(|l| l[11..].trim().to_string())
}

/// The corpus messages that have a Message-ID (the checks find messages by it).
fn messages() -> Vec<Vec<u8>> {
    common::corpus_files()
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .filter(|b| message_id(b).is_some())
        .collect()
}

fn chown_nobody(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(st.success());
}

/// Write the corpus into USER's INBOX as a Maildir (before Dovecot has looked at it).
fn fill(user: &str, msgs: &[Vec<u8>]) -> PathBuf {
    let home = server_dir().join("mail").join(user);
    let _ = std::fs::remove_dir_all(&home);
    let md = home.join("Maildir");
    fill_folder(&md, msgs);
    std::fs::write(md.join("dovecot-keywords"), "0 $Label1\n").expect("keywords");
    chown_nobody(&home);
    md
}

/// Messages in one Maildir folder (the `i`-th with `flags_of(i)` and `mtime_of(i)`).
fn fill_folder(md: &Path, msgs: &[Vec<u8>]) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).expect("maildir");
    }
    for (i, m) in msgs.iter().enumerate() {
        let path = md
            .join("cur")
            .join(format!("{i:04}.M1P1.test:2,{}", flags_of(i)));
        std::fs::write(&path, m).expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(mtime_of(i)).expect("mtime");
    }
}

/// A message file in a Maildir folder: (name, flags, mtime, bytes).
type Entry = (String, String, SystemTime, Vec<u8>);

/// The visible (not \Deleted) messages of a Maildir folder, by Message-ID.
fn folder(md: &Path) -> BTreeMap<String, Vec<Entry>> {
    let mut out: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(md.join(sub)) else {
            continue;
        };
        for e in rd {
            let p = e.expect("entry").path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name.split_once(":2,").map_or("", |(_, f)| f).to_string();
            if flags.contains('T') {
                continue;
            }
            let body = std::fs::read(&p).expect("read");
            let mtime = std::fs::metadata(&p)
                .expect("meta")
                .modified()
                .expect("mtime");
            let id = message_id(&body).unwrap_or_default();
            out.entry(id).or_default().push((name, flags, mtime, body));
        }
    }
    out
}

/// What both folders hold: (folder, flags, SHA-256 of the bytes), sorted. File names are left
/// out: Dovecot adds sizes to them when it first looks at a message.
fn snapshot(md: &Path) -> Vec<(usize, String, String)> {
    use sha2::Digest;
    let mut all = Vec::new();
    for (n, f) in [md.to_path_buf(), md.join(".Trackless.Originals")]
        .iter()
        .enumerate()
    {
        for (_, entries) in folder(f) {
            for (_, flags, _, body) in entries {
                let digest: String = sha2::Sha256::digest(&body)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                all.push((n, flags, digest));
            }
        }
    }
    all.sort();
    all
}

fn config(user: &str, port: &str, tls: &str, ca: bool) -> PathBuf {
    let dir = server_dir();
    let path = dir.join(format!("{user}-{tls}-{ca}.toml"));
    let ca_line = if ca {
        format!("ca_file = \"{}\"\n", dir.join("ca.pem").display())
    } else {
        String::new()
    };
    std::fs::write(
        &path,
        format!(
            "[imap.{user}]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\n{ca_line}user = \"{user}\"\npassword_command = \"cat {}\"\n",
            dir.join(format!("{user}.pw")).display()
        ),
    )
    .expect("config");
    path
}

fn sync(cfg: &Path, user: &str, extra: &[&str]) -> (bool, String, String) {
    let dir = server_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_trackless"))
        .arg("--config")
        .arg(cfg)
        .arg("--log")
        .arg(dir.join(format!("{user}-log.sqlite")))
        .args(["imap", "sync", "--account", user, "--state-dir"])
        .arg(dir.join(format!("{user}-state")))
        .args(extra)
        .output()
        .expect("run trackless");
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        // How it ended (an exit code or a signal), for the failure message.
        err.push_str(&format!("[trackless ended: {}]\n", out.status));
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// Every message once in INBOX — the clean copy when it was tracked, the same file when not —
/// with its flags and date; every replaced original once in the originals folder.
fn check(md: &Path, msgs: &[Vec<u8>]) -> usize {
    check_folder(md, &md.join(".Trackless.Originals"), msgs)
}

/// `check` for one folder (`md`) whose originals went to `kept`.
fn check_folder(md: &Path, kept: &Path, msgs: &[Vec<u8>]) -> usize {
    let policy = Policy::default();
    let inbox = folder(md);
    let kept = folder(kept);
    let mut replaced = 0;
    for (i, m) in msgs.iter().enumerate() {
        let id = message_id(m).expect("id");
        let copies = inbox.get(&id).map_or(&[][..], Vec::as_slice);
        assert_eq!(
            copies.len(),
            1,
            "{id}: {} visible copies in INBOX",
            copies.len()
        );
        let (name, flags, mtime, body) = &copies[0];
        assert_eq!(
            flags,
            flags_of(i),
            "{id}: flags kept, \\Seen not added ({name})"
        );
        assert_eq!(*mtime, mtime_of(i), "{id}: INTERNALDATE kept");
        // Dovecot serves messages with CRLF and stores them with LF.
        let served = crlf(m);
        let out = neutralise(&served, &policy);
        if out.changed {
            replaced += 1;
            assert_eq!(lf(body), lf(&out.bytes), "{id}: the clean copy");
            let k = kept.get(&id).map_or(&[][..], Vec::as_slice);
            assert_eq!(k.len(), 1, "{id}: the original kept once");
            assert_eq!(lf(&k[0].3), lf(m), "{id}: the original kept as it was");
        } else {
            assert!(name.starts_with(&format!("{i:04}.")), "{id}: not replaced");
            assert_eq!(body, m, "{id}: untouched");
            assert!(!kept.contains_key(&id), "{id}: clean, nothing to keep");
        }
    }
    replaced
}

fn account(user: &str, port_var: &str, tls: &str) {
    let msgs = messages();
    assert!(msgs.len() > 40);
    let md = fill(user, &msgs);
    let port = env(port_var);
    let before = snapshot(&md);

    // A certificate the client cannot verify (the test CA is not trusted): refused, untouched.
    let (ok, _, err) = sync(&config(user, &port, tls, false), user, &[]);
    assert!(!ok, "an unverified certificate was accepted");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(snapshot(&md), before);

    // A wrong password: a clear error, exit 1, untouched.
    let cfg = config(user, &port, tls, true);
    let pw = server_dir().join(format!("{user}.pw"));
    let right = std::fs::read_to_string(&pw).expect("pw");
    std::fs::write(&pw, "wrong\n").expect("pw");
    let (ok, _, err) = sync(&cfg, user, &[]);
    std::fs::write(&pw, &right).expect("pw");
    assert!(!ok);
    assert!(err.contains("login as"), "{err}");
    assert_eq!(snapshot(&md), before);

    // A dry run says what it would do and does nothing.
    let (ok, out, err) = sync(&cfg, user, &["--dry-run"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("dry run: "), "{out}");
    assert_eq!(snapshot(&md), before);

    let (ok, out, err) = sync(&cfg, user, &[]);
    assert!(ok, "{out}{err}");
    let replaced = check(&md, &msgs);
    assert!(replaced > 20, "{replaced}");
    assert!(out.contains(&format!("{replaced} replaced")), "{out}");

    // A rerun replaces nothing and changes nothing.
    let after = snapshot(&md);
    let (ok, out, err) = sync(&cfg, user, &[]);
    assert!(ok, "{err}");
    assert!(out.contains(" 0 replaced"), "{out}");
    assert_eq!(snapshot(&md), after);
    check(&md, &msgs);

    // Restore: every original back in INBOX in place of its clean copy, the originals folder
    // empty; a sync afterwards leaves them as they are.
    let restore = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_trackless"))
            .arg("--config")
            .arg(&cfg)
            .args([
                "imap",
                "restore",
                "--account",
                user,
                "--since",
                "1d",
                "--state-dir",
            ])
            .arg(server_dir().join(format!("{user}-state")))
            .args(extra)
            .output()
            .expect("restore");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let said = restore(&["--dry-run"]);
    assert!(
        said.contains(&format!("{replaced} message(s) restored")),
        "{said}"
    );
    assert_eq!(snapshot(&md), after, "a dry run restores nothing");
    restore(&[]);
    let inbox = folder(&md);
    for m in &msgs {
        let id = message_id(m).expect("id");
        let copies = &inbox[&id];
        assert_eq!(
            copies.len(),
            1,
            "{id}: {} copies after restore",
            copies.len()
        );
        assert_eq!(lf(&copies[0].3), lf(m), "{id}: the original is back");
    }
    assert!(folder(&md.join(".Trackless.Originals")).is_empty());
    let (ok, out, err) = sync(&cfg, user, &[]);
    assert!(ok && out.contains(" 0 replaced"), "{out}{err}");
}

/// 200 corpus messages across two folders, two folders at once (`--jobs 2`, a connection
/// each): every tracked message replaced in its own folder, the clean ones untouched, every
/// original in the one originals folder; a rerun is a no-op.
#[test]
#[ignore = "needs Dovecot: bash tests/e2e/imap.sh"]
fn two_folders_at_once() {
    let user = "gina";
    add_user(user);
    let msgs = copies(200);
    let (inbox, news) = msgs.split_at(100);
    let (md, cfg) = two_folders(user, inbox, news);
    let (ok, out, err) = sync(&cfg, user, &["--jobs", "2"]);
    assert!(ok, "{out}{err}");
    let log = std::fs::read_to_string(server_dir().join("dovecot.log")).expect("server log");
    let logins = log
        .lines()
        .filter(|l| l.contains("Login: user=<gina>"))
        .count();
    assert_eq!(logins, 2, "one connection per folder");
    let kept = md.join(".Trackless.Originals");
    let replaced = check_folder(&md, &kept, inbox) + check_folder(&md.join(".News"), &kept, news);
    assert!(replaced > 100, "{replaced}");
    assert!(out.starts_with("200 message(s)"), "{out}");
    assert!(out.contains(&format!(" {replaced} replaced")), "{out}");
    assert_eq!(
        folder(&kept).values().map(Vec::len).sum::<usize>(),
        replaced,
        "every original kept once, none twice"
    );
    let (before, before_news) = (snapshot(&md), snapshot(&md.join(".News")));
    let before_news_clean = before_news.clone();
    let (ok, out, err) = sync(&cfg, user, &["--jobs", "2"]);
    assert!(ok && out.contains(" 0 replaced"), "{out}{err}");
    assert_eq!(
        (snapshot(&md), snapshot(&md.join(".News"))),
        (before, before_news)
    );

    // Retention: once it has passed, the kept originals go, the user's own message filed in
    // that folder stays, and the clean copies are untouched.
    let mut mine = b"X-Filed-By: gina\n".to_vec();
    mine.extend_from_slice(&msgs[0]);
    std::fs::write(kept.join("cur/mine.M1P1.test:2,S"), &mine).expect("file");
    chown_nobody(&kept);
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("originals_retention = \"1s\"\n");
    std::fs::write(&cfg, text).expect("config");
    // The journal notes replacements in whole seconds and retention deletes only those
    // strictly older than the cutoff (late rather than early): an original replaced at the
    // start of a second is past "1s" only once two seconds have turned.
    std::thread::sleep(Duration::from_millis(2100));
    let (ok, out, err) = sync(&cfg, user, &[]);
    assert!(ok, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{replaced} kept original(s) replaced more than 1s ago deleted"
        )),
        "{err}"
    );
    let left = folder(&kept);
    assert_eq!(
        left.len(),
        1,
        "only the user's message is left: {:?}",
        left.keys().collect::<Vec<_>>()
    );
    assert_eq!(left.values().next().expect("one")[0].3, mine);
    assert_eq!(snapshot(&md.join(".News")), before_news_clean);
    assert_eq!(folder(&md).len(), inbox.len());
}

/// USER's INBOX and a subscribed folder News filled with these messages, and an account
/// (implicit TLS) that syncs both: (the Maildir, the config file).
fn two_folders(user: &str, inbox: &[Vec<u8>], news: &[Vec<u8>]) -> (PathBuf, PathBuf) {
    let md = fill(user, inbox);
    fill_folder(&md.join(".News"), news);
    std::fs::write(md.join(".News/maildirfolder"), "").expect("maildirfolder");
    std::fs::write(md.join("subscriptions"), "News\n").expect("subscriptions");
    chown_nobody(&md);
    let cfg = config(user, &env("TRACKLESS_TEST_IMAPS_PORT"), "implicit", true);
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("folders = [\"INBOX\", \"News\"]\n");
    std::fs::write(&cfg, text).expect("config");
    (md, cfg)
}

/// A user of the test server, added on the fly if `tests/e2e/imap.sh` did not: Dovecot looks
/// at the password file at most once a second, hence the wait.
fn add_user(user: &str) {
    let passwd = server_dir().join("passwd");
    let mut text = std::fs::read_to_string(&passwd).expect("passwd");
    if !text.contains(&format!("\n{user}:")) {
        text.push_str(&format!("{user}:{{PLAIN}}{user}-secret::::::\n"));
        std::fs::write(&passwd, text).expect("passwd");
        std::fs::write(
            server_dir().join(format!("{user}.pw")),
            format!("{user}-secret\n"),
        )
        .expect("pw");
    }
}

#[test]
#[ignore = "needs Dovecot: bash tests/e2e/imap.sh"]
fn implicit_tls_with_every_extension() {
    account("alice", "TRACKLESS_TEST_IMAPS_PORT", "implicit");
}

#[test]
#[ignore = "needs Dovecot: bash tests/e2e/imap.sh"]
fn starttls_without_uidplus_or_move() {
    account("bob", "TRACKLESS_TEST_IMAP_PORT", "starttls");
}

/// `imap watch`: after its first pass it waits in IDLE; a tracked message delivered then
/// (written into the Maildir, as a local delivery does) is replaced within seconds, and
/// SIGTERM ends it cleanly.
#[test]
#[ignore = "needs Dovecot: bash tests/e2e/imap.sh"]
fn watch_cleans_mail_as_it_arrives() {
    let user = "carol";
    let msgs = messages();
    let policy = Policy::default();
    let tracked: Vec<&Vec<u8>> = msgs
        .iter()
        .filter(|m| neutralise(&crlf(m), &policy).changed)
        .collect();
    let (first, later) = (tracked[0], tracked[1]);
    let md = fill(user, std::slice::from_ref(first));
    let cfg = config(user, &env("TRACKLESS_TEST_IMAPS_PORT"), "implicit", true);
    let dir = server_dir();
    let child = Command::new(env!("CARGO_BIN_EXE_trackless"))
        .arg("--config")
        .arg(&cfg)
        .arg("--log")
        .arg(dir.join("carol-log.sqlite"))
        .args(["imap", "watch", "--account", user, "--state-dir"])
        .arg(dir.join("carol-state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start watch");
    let replaced = |m: &[u8]| {
        let id = message_id(m).expect("id");
        folder(&md.join(".Trackless.Originals")).contains_key(&id)
    };
    let wait = |m: &[u8], secs: u64| {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if replaced(m) {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    };
    assert!(
        wait(first, 30).is_some(),
        "the first pass replaced the message"
    );
    // Let it settle in IDLE, then deliver.
    std::thread::sleep(Duration::from_millis(500));
    let path = md.join("new").join("9999.M1P1.test");
    std::fs::write(&path, later).expect("deliver");
    chown_nobody(&path);
    let took = wait(later, 10);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    let took =
        took.unwrap_or_else(|| panic!("the delivered message was not replaced in 10 s: {err}"));
    eprintln!("watch: delivery to clean copy in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(out.status.success(), "SIGTERM ends it with 0: {err}");
    let inbox = folder(&md);
    for m in [first, later] {
        let copies = &inbox[&message_id(m).expect("id")];
        assert_eq!(copies.len(), 1);
        assert_eq!(lf(&copies[0].3), lf(&neutralise(&crlf(m), &policy).bytes));
    }
}

/// `n` messages: the corpus again and again, each with a Message-ID of its own.
fn copies(n: usize) -> Vec<Vec<u8>> {
    let base = messages();
    (0..n)
        .map(|i| {
            let m = &base[i % base.len()];
            let text = String::from_utf8_lossy(m);
            let old = message_id(m).expect("id");
            // Only in the Message-ID field (SES, say, uses the same string in Return-Path).
            let at = text
                .match_indices(&old)
                .map(|(at, _)| at)
                .find(|&at| {
                    let line = text[..at].rfind('\n').map_or(0, |n| n + 1);
                    text[line..at]
                        .to_ascii_lowercase()
                        .starts_with("message-id:")
                })
                .expect("the Message-ID field");
            format!(
                "{}<copy-{i}.{}{}",
                &text[..at],
                &old[1..],
                &text[at + old.len()..]
            )
            .into_bytes()
        })
        .collect()
}

/// 500 messages (the corpus again and again, each with a Message-ID of its own); `imap sync`
/// killed with SIGKILL 19 times at random moments; then 300 more are delivered and the server
/// restarted while a run works on them. Afterwards every message is in INBOX exactly once,
/// replaced or not, and every replaced original once in the originals folder: nothing lost,
/// nothing doubled.
#[test]
#[ignore = "needs Dovecot: bash tests/e2e/imap.sh"]
fn killed_runs_and_a_server_restart_lose_and_duplicate_nothing() {
    let user = "dave";
    let msgs = copies(800);
    let (first, later) = msgs.split_at(500);
    let md = fill(user, first);
    let cfg = config(user, &env("TRACKLESS_TEST_IMAPS_PORT"), "implicit", true);
    let dir = server_dir();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_trackless"))
            .arg("--config")
            .arg(&cfg)
            .arg("--log")
            .arg(dir.join("dave-log.sqlite"))
            .args(["imap", "sync", "--account", user, "--state-dir"])
            .arg(dir.join("dave-state"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start")
    };
    // A fixed pseudo-random sequence of kill times, 40–200 ms into each run (a run does a few
    // hundred messages a second); the last run is not killed: 300 messages are delivered
    // before it starts, and the server restarts under it 300 ms in.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if round == 19 {
            for (i, m) in later.iter().enumerate() {
                let path = md.join("new").join(format!("late{i}.M1P1.test"));
                std::fs::write(&path, m).expect("deliver");
            }
            chown_nobody(&md);
        }
        let mut child = run();
        if round == 19 {
            std::thread::sleep(Duration::from_millis(300));
            // The server goes away under a running sync, which reconnects and goes on.
            let st = Command::new("sh")
                .arg("-c")
                .arg(env("TRACKLESS_TEST_IMAP_RESTART"))
                .status()
                .expect("restart");
            assert!(st.success());
            let out = child.wait_with_output().expect("wait");
            let err = String::from_utf8_lossy(&out.stderr);
            eprintln!(
                "restart run: {:?} {} {err}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
            assert!(
                out.status.success(),
                "a run through a server restart: {err}"
            );
            assert!(err.contains("reconnecting"), "{err}");
            continue;
        }
        std::thread::sleep(Duration::from_millis(40 + seed % 160));
        if child.try_wait().expect("try_wait").is_none() {
            kills += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("{kills} of 19 runs killed while working");
    assert!(
        kills >= 15,
        "runs were killed while working ({kills} of 19)"
    );
    let out = run().wait_with_output().expect("final run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replaced = check_all(&md, &msgs);
    assert!(replaced > 300, "{replaced}");
}

/// Like `check`, without the flag and date checks (the messages were written without them).
fn check_all(md: &Path, msgs: &[Vec<u8>]) -> usize {
    let policy = Policy::default();
    let inbox = folder(md);
    let kept = folder(&md.join(".Trackless.Originals"));
    let mut replaced = 0;
    for m in msgs {
        let id = message_id(m).expect("id");
        let copies = inbox.get(&id).map_or(&[][..], Vec::as_slice);
        assert_eq!(copies.len(), 1, "{id}: {} visible copies", copies.len());
        let served = crlf(m);
        let out = neutralise(&served, &policy);
        if out.changed {
            replaced += 1;
            assert_eq!(lf(&copies[0].3), lf(&out.bytes), "{id}: the clean copy");
            let k = kept.get(&id).map_or(0, Vec::len);
            assert_eq!(k, 1, "{id}: the original kept {k} times");
        } else {
            assert_eq!(&copies[0].3, m, "{id}: untouched");
        }
    }
    replaced
}

/// A mailbox at its quota: every APPEND of a clean copy is refused. Each original stays where
/// it is, the refusal is reported, the other messages are still looked at, and the run exits 1
/// with the mailbox untouched.
#[test]
#[ignore = "needs Dovecot: bash tests/e2e/imap.sh"]
fn appends_refused_over_quota_keep_the_originals() {
    let user = "erin";
    let policy = Policy::default();
    let msgs: Vec<Vec<u8>> = messages().into_iter().take(12).collect();
    let tracked = msgs
        .iter()
        .filter(|m| neutralise(&crlf(m), &policy).changed)
        .count();
    assert!(tracked >= 3 && tracked < msgs.len(), "{tracked}");
    // The quota: what the messages take (as Dovecot counts them, with CRLF) and not a
    // kilobyte more, so that no clean copy fits.
    let used: usize = msgs.iter().map(|m| crlf(m).len()).sum();
    let kb = used.div_ceil(1024);
    let passwd = server_dir().join("passwd");
    let mut text = std::fs::read_to_string(&passwd).expect("passwd");
    if !text.contains("\nerin:") {
        text.push_str(&format!(
            "erin:{{PLAIN}}erin-secret::::::userdb_quota_rule=*:storage={kb}K\n"
        ));
        std::fs::write(&passwd, text).expect("passwd");
        // Dovecot looks at the password file at most once a second.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let md = fill(user, &msgs);
    let before = snapshot(&md);
    let cfg = config(user, &env("TRACKLESS_TEST_IMAPS_PORT"), "implicit", true);
    let (ok, out, err) = sync(&cfg, user, &[]);
    assert!(!ok, "refused appends make the run exit 1: {out}");
    assert!(err.to_lowercase().contains("quota"), "{err}");
    assert!(err.contains("the original is kept"), "{err}");
    assert!(
        out.contains(&format!("{tracked} failed")),
        "every tracked message refused, the rest looked at: {out}"
    );
    assert_eq!(snapshot(&md), before, "nothing changed in the mailbox");
}

/// Not a test: `bash benches/imap_sync.sh` runs it with a release build and prints messages/s
/// of `imap sync` over N generated 100 KB newsletters, each rewritten (TRACKLESS_BENCH_MESSAGES,
/// default 1000) in one folder with `--jobs 1`, the time of a rerun, N more across two folders
/// with `--jobs 2`, and the delay from delivery to clean copy under `imap watch` (median, p99,
/// max over TRACKLESS_BENCH_DELIVERIES, default 100).
#[test]
#[ignore = "benchmark: bash benches/imap_sync.sh"]
fn bench_sync_and_watch() {
    use common::newsletter::{newsletter, Spec};
    let n: usize = std::env::var("TRACKLESS_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // The hard case: 100 KB newsletters, every one rewritten (a third of them in base64).
    let newsletters = |first: u64, n: usize| -> Vec<Vec<u8>> {
        (first..first + n as u64)
            .map(|seed| {
                lf(&newsletter(Spec {
                    seed,
                    size: 100 << 10,
                    links: 40,
                    base64: seed.is_multiple_of(3),
                }))
            })
            .collect()
    };
    let kb = |msgs: &[Vec<u8>]| msgs.iter().map(Vec::len).sum::<usize>() / msgs.len() / 1024;

    // One folder, one connection.
    let user = "frank";
    add_user(user);
    let msgs = newsletters(0, n);
    let md = fill(user, &msgs);
    let cfg = config(user, &env("TRACKLESS_TEST_IMAPS_PORT"), "implicit", true);
    let (ok, out, err) = sync(&cfg, user, &[]);
    assert!(ok, "{err}");
    println!(
        "bench: sync, one folder, --jobs 1, {n} newsletters ({} KB each): {}",
        kb(&msgs),
        out.trim()
    );
    assert!(out.contains(&format!(" {n} replaced")), "{out}");
    let t0 = std::time::Instant::now();
    let (ok, out, _) = sync(&cfg, user, &[]);
    assert!(ok);
    println!(
        "bench: rerun: {} ({:.2} s wall)",
        out.trim(),
        t0.elapsed().as_secs_f64()
    );

    // Two folders, a connection each.
    let user2 = "hana";
    add_user(user2);
    let two = newsletters(n as u64, n);
    let (inbox, news) = two.split_at(n / 2);
    let (_, cfg2) = two_folders(user2, inbox, news);
    let (ok, out, err) = sync(&cfg2, user2, &["--jobs", "2"]);
    assert!(ok, "{err}");
    println!(
        "bench: sync, two folders of {} and {}, --jobs 2: {}",
        inbox.len(),
        news.len(),
        out.trim()
    );

    // Watch: deliveries one at a time, each waited for.
    let deliveries: usize = std::env::var("TRACKLESS_BENCH_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = server_dir();
    let child = Command::new(env!("CARGO_BIN_EXE_trackless"))
        .arg("--config")
        .arg(&cfg)
        .arg("--log")
        .arg(dir.join("frank-log.sqlite"))
        .args(["imap", "watch", "--account", user, "--state-dir"])
        .arg(dir.join("frank-state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("watch");
    std::thread::sleep(Duration::from_secs(2));
    let kept = md.join(".Trackless.Originals");
    let mut delays = Vec::new();
    for (i, m) in newsletters(2 * n as u64, deliveries).iter().enumerate() {
        let id = message_id(m).expect("id");
        let path = md.join("new").join(format!("b{i}.M1P1.bench"));
        let t0 = std::time::Instant::now();
        std::fs::write(&path, m).expect("deliver");
        chown_nobody(&path);
        while !folder(&kept).contains_key(&id) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "not replaced in 30 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        delays.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait_with_output();
    delays.sort();
    let at =
        |q: f64| delays[((delays.len() as f64 * q).ceil() as usize).clamp(1, delays.len()) - 1];
    println!(
        "bench: watch, delivery to clean copy over {} deliveries: median {:?}, p99 {:?}, max {:?}",
        delays.len(),
        at(0.5),
        at(0.99),
        delays[delays.len() - 1]
    );
}
