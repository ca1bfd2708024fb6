//! `[log] keep_originals = "tracked"` as a user meets it: `trackless filter` keeps the original
//! bytes of a tracked message once (owner-only, named by their SHA-256, which the log records)
//! and nothing of a clean one; without the setting nothing is kept; retention (`log prune`, and
//! the daemons' writer) deletes the files with their records; `report dossier` copies them
//! beside the page with their hash; a folder that cannot be written never holds up the mail.

mod common;

use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};
use trackless::log::{Keep, LogTarget, LogWriter, Mode, Originals, Record, WriterConfig};

const TRACKED: &str = "sendgrid-newsletter.eml";
const CLEAN: &str = "clean-newsletter.eml";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A user's setup: a config file keeping originals (or the empty one), the state folder.
struct User {
    dir: PathBuf,
    config: PathBuf,
}

impl User {
    fn new(name: &str, config: Option<&str>) -> User {
        let dir = common::scratch(name);
        let config = match config {
            Some(text) => {
                let p = dir.join("trackless.toml");
                std::fs::write(&p, text).expect("config");
                p
            }
            None => PathBuf::from("/dev/null"),
        };
        User { dir, config }
    }

    fn keeping(name: &str) -> User {
        User::new(name, Some("[log]\nkeep_originals = \"tracked\"\n"))
    }

    fn cmd(&self) -> Command {
        let mut c = common::cli::bin();
        c.env("TRACKLESS_CONFIG", &self.config)
            .env("XDG_STATE_HOME", self.dir.join("state"));
        c
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state/trackless")
    }

    fn originals(&self) -> PathBuf {
        self.state().join("originals")
    }

    /// `trackless filter` on a corpus message; its output.
    fn filter(&self, name: &str) -> Output {
        let out = common::cli::feed(self.cmd().arg("filter"), &common::corpus_message(name));
        common::cli::assert_exit(&out, 0);
        out
    }

    fn run(&self, args: &[&str]) -> String {
        common::cli::ok(&self.cmd().args(args).output().expect("run"))
    }

    /// (from_domain, original_sha256) of every logged message, oldest first (the spool is
    /// imported by a report first).
    fn logged(&self) -> Vec<(String, Option<String>)> {
        self.run(&["report", "--format", "json"]);
        let conn = rusqlite::Connection::open(self.state().join("log.sqlite")).expect("log");
        let mut stmt = conn
            .prepare("SELECT from_domain, original_sha256 FROM messages ORDER BY id")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn kept(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.originals()) {
            Ok(d) => d
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }
}

#[test]
fn a_tracked_message_is_kept_once_byte_for_byte_a_clean_one_not() {
    let user = User::keeping("tracked");
    let raw = common::corpus_message(TRACKED);
    let out = user.filter(TRACKED);
    assert_ne!(out.stdout, raw, "the message was rewritten");
    user.filter(CLEAN);
    user.filter(TRACKED); // the same message again: the same file
    let hash = sha256(&raw);
    assert_eq!(user.kept(), [format!("{hash}.eml")]);
    let file = user.originals().join(format!("{hash}.eml"));
    assert_eq!(std::fs::read(&file).expect("kept"), raw, "byte for byte");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&user.originals()), 0o700);
    assert_eq!(
        user.logged(),
        [
            ("northwind.example".to_string(), Some(hash.clone())),
            ("oakridge-garden.example.org".to_string(), None),
            ("northwind.example".to_string(), Some(hash.clone())),
        ]
    );
    // `report evidence` gives it too.
    let json = user.run(&[
        "report",
        "evidence",
        "northwind.example",
        "--format",
        "json",
    ]);
    assert!(
        json.contains(&format!("\"original_sha256\": \"{hash}\"")),
        "{json}"
    );
    // check-config says what is in effect.
    let shown = common::cli::ok(&common::cli::check_config(&user.config));
    assert!(shown.contains("keep_originals = \"tracked\""), "{shown}");
}

#[test]
fn nothing_is_kept_by_default() {
    let user = User::new("default", None);
    user.filter(TRACKED);
    assert!(!user.originals().exists());
    assert_eq!(
        user.logged(),
        [("northwind.example".to_string(), None)],
        "no hash either"
    );
    // Nor with the setting off, nor when nothing is logged.
    let off = User::new("off", Some("[log]\nkeep_originals = \"off\"\n"));
    off.filter(TRACKED);
    assert!(!off.originals().exists());
    let unlogged = User::keeping("no-log");
    common::cli::assert_exit(
        &common::cli::feed(
            unlogged.cmd().args(["--no-log", "filter"]),
            &common::corpus_message(TRACKED),
        ),
        0,
    );
    assert!(!unlogged.originals().exists());
}

#[test]
fn a_bad_value_names_the_line_and_key() {
    let user = User::new("bad", Some("[log]\n\nkeep_originals = \"all\"\n"));
    let out = common::cli::check_config(&user.config);
    common::cli::assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3: log.keep_originals:"), "{err}");
    assert!(err.contains("expected `off` or `tracked`"), "{err}");
}

#[test]
fn log_prune_deletes_the_originals_of_the_messages_it_deletes() {
    let user = User::keeping("prune");
    user.filter(TRACKED);
    let hash = sha256(&common::corpus_message(TRACKED));
    // A file nothing refers to, written long ago (a record lost with a full queue), and one
    // that is not ours.
    let orphan = user.originals().join(format!("{}.eml", "0".repeat(64)));
    std::fs::write(&orphan, "old").expect("orphan");
    let long_ago = SystemTime::now() - Duration::from_secs(400 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .and_then(|f| f.set_modified(long_ago))
        .expect("age");
    std::fs::write(user.originals().join("notes.txt"), "mine").expect("notes");

    let said = user.run(&["log", "prune", "--older-than", "180d"]);
    assert!(said.starts_with("deleted 0 message(s)"), "{said}");
    assert!(said.contains("deleted 1 kept original(s)"), "{said}");
    assert_eq!(user.kept(), [format!("{hash}.eml"), "notes.txt".into()]);

    let said = user.run(&["log", "prune", "--older-than", "2099-01-01"]);
    assert!(said.starts_with("deleted 1 message(s)"), "{said}");
    assert!(said.contains("deleted 1 kept original(s)"), "{said}");
    assert_eq!(user.kept(), ["notes.txt"]);
}

/// The daemons' writer applies `[log] retention` to the kept originals too.
#[test]
fn the_daemon_writer_retention_deletes_old_originals_and_keeps_recent_ones() {
    let dir = common::scratch("writer");
    let log = dir.join("log.sqlite");
    let folder = Originals::new(dir.join("originals"));
    let keep = Keep {
        originals: Some(folder.clone()),
        ..Keep::default()
    };
    let now = trackless::log::time::now();
    let old_raw = common::corpus_message(TRACKED);
    let new_raw = common::corpus_message("mailgun-newsletter.eml");
    let policy = trackless::Policy::default();
    let record = |raw: &[u8], ts: i64| {
        let out = trackless::neutralise(raw, &policy);
        Record::new(raw, &out, Mode::Milter, None, &[], keep.clone(), ts)
    };
    let old = record(&old_raw, now - 10 * 86_400);
    let new = record(&new_raw, now);
    let (old_hash, new_hash) = (sha256(&old_raw), sha256(&new_raw));
    assert_eq!(old.original_sha256.as_deref(), Some(old_hash.as_str()));
    // The old one was stored ten days ago.
    std::fs::File::options()
        .write(true)
        .open(folder.path(&old_hash).expect("path"))
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(10 * 86_400)))
        .expect("age");
    let writer = LogWriter::spawn(WriterConfig {
        path: LogTarget::Sqlite(log.clone()),
        capacity: 16,
        retention: None,
        originals: None,
    });
    writer.record(old);
    writer.record(new);
    writer.close();
    // A daemon starting with a retention of a day applies it at once.
    let writer = LogWriter::spawn(WriterConfig {
        path: LogTarget::Sqlite(log.clone()),
        capacity: 16,
        retention: Some(Duration::from_secs(86_400)),
        originals: Some(folder.clone()),
    });
    writer.record(record(&new_raw, now));
    writer.close();
    assert!(!folder.path(&old_hash).expect("path").exists(), "deleted");
    assert!(folder.path(&new_hash).expect("path").exists(), "kept");
    let conn = rusqlite::Connection::open(&log).expect("log");
    let left: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE original_sha256 = ?1",
            [&new_hash],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(left, 2);
}

#[test]
fn the_dossier_copies_the_original_with_its_hash() {
    let user = User::keeping("dossier");
    let raw = common::corpus_message(TRACKED);
    let hash = sha256(&raw);
    user.filter(TRACKED);
    let out = user.dir.join("dossier");
    let said = user.run(&[
        "report",
        "dossier",
        "northwind.example",
        "--lang",
        "fr",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(said.contains("1 original message(s) in"), "{said}");
    let copy = out.join("originals/1.eml");
    assert_eq!(std::fs::read(&copy).expect("copy"), raw);
    assert_eq!(mode(&copy), 0o600);
    assert_eq!(mode(&out.join("originals")), 0o700);
    let page = std::fs::read_to_string(out.join("dossier.html")).expect("page");
    assert!(page.contains("SHA-256 de l’original"), "the French words");
    assert!(page.contains(&format!("<code>{hash}</code>")));
    assert!(page.contains("<code>originals/1.eml</code>"));
    assert!(page.contains("id=\"originals\""), "the appendix");
    let json = std::fs::read_to_string(out.join("evidence.json")).expect("json");
    assert!(json.contains(&format!("\"original_sha256\": \"{hash}\"")));
    assert!(json.contains("\"original_file\": \"originals/1.eml\""));

    // A kept file that no longer has its hash is not evidence: not copied (the copy a
    // previous dossier left goes), the hash still given.
    std::fs::write(user.originals().join(format!("{hash}.eml")), "damaged").expect("damage");
    let said = user.run(&[
        "report",
        "dossier",
        "northwind.example",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(said.contains("1 original(s) no longer kept"), "{said}");
    assert!(!out.join("originals").exists());
    let page = std::fs::read_to_string(out.join("dossier.html")).expect("page");
    assert!(page.contains("SHA-256 of the original"));
    assert!(page.contains(&format!("<code>{hash}</code>")));
    assert!(!page.contains("originals/1.eml"));
}

#[test]
fn a_folder_that_cannot_be_written_does_not_hold_up_the_mail() {
    let user = User::keeping("unwritable");
    std::fs::create_dir_all(user.state()).expect("state");
    // A file where the folder should be.
    std::fs::write(user.originals(), "in the way").expect("file");
    let raw = common::corpus_message(TRACKED);
    let out = user.filter(TRACKED);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("X-Trackless: "),
        "rewritten and delivered"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the original could not be kept in"), "{err}");
    assert_eq!(
        user.logged(),
        [("northwind.example".to_string(), Some(sha256(&raw)))],
        "logged, with the hash of what it could not keep"
    );
}
