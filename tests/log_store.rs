//! The tracking log: round trip, migrations, concurrent writers, the daemon writer, prune,
//! and a writer killed mid-transaction.

mod common;

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use trackless::log::Backend;
use trackless::log::{Keep, LogTarget, LogWriter, Mode, Record, Store, WriterConfig};
use trackless::{neutralise, Policy};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trackless-log-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join("log.sqlite")
}

fn corpus_records(now: i64) -> Vec<Record> {
    let files = common::corpus_files();
    let policy = Policy::default();
    files
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let raw = std::fs::read(p).expect("read");
            let out = neutralise(&raw, &policy);
            Record::new(
                &raw,
                &out,
                Mode::Filter,
                Some("<bounce@x.example>"),
                &["jane@example.net".into()],
                Keep::default(),
                now + i as i64,
            )
        })
        .collect()
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[test]
fn round_trip_keeps_counts_and_minimises_data() {
    let path = tmp("roundtrip");
    let records = corpus_records(1_790_000_000);
    {
        let mut store = Store::open(&path).expect("open");
        store.insert(&records).expect("insert");
    }
    let store = Store::open(&path).expect("reopen");
    let conn = store.conn();
    assert_eq!(count(conn, "messages"), records.len() as i64);
    let (pixels, fonts, opaque): (i64, i64, i64) = conn
        .query_row(
            "SELECT SUM(pixels), SUM(fonts), SUM(links_opaque) FROM messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("sums");
    assert_eq!(pixels as u32, records.iter().map(|r| r.pixels).sum::<u32>());
    assert_eq!(fonts as u32, records.iter().map(|r| r.fonts).sum::<u32>());
    assert_eq!(
        opaque as u32,
        records.iter().map(|r| r.links_opaque).sum::<u32>()
    );
    // Data minimisation: no recipients, no subjects, no headers unless asked.
    let with_personal: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE recipients IS NOT NULL OR subject IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("q");
    assert_eq!(with_personal, 0);
    assert_eq!(count(conn, "headers"), 0);
    // The remote-content inventory: one row per entry, hosts only (no URL, no token value).
    let entries: usize = records.iter().map(|r| r.remote.len()).sum();
    assert!(entries > 20, "the corpus loads remote content ({entries})");
    assert_eq!(count(conn, "remote"), entries as i64);
    let logged: (i64, i64) = conn
        .query_row("SELECT SUM(removed), SUM(count) FROM remote", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("sums");
    let removed = records
        .iter()
        .flat_map(|r| &r.remote)
        .filter(|x| x.removed)
        .count();
    let urls: usize = records
        .iter()
        .flat_map(|r| &r.remote)
        .map(|x| x.count)
        .sum();
    assert_eq!(logged, (removed as i64, urls as i64));
    assert!(
        removed > 0 && removed < entries,
        "some removed, some still loaded"
    );
    // ESP rows carry evidence; the Klaviyo-over-SendGrid message has both layers.
    let layers: Vec<(String, String)> = conn
        .prepare("SELECT e.name, e.layer FROM esp e JOIN messages m ON m.id = e.message WHERE m.from_domain = 'glowco.example' ORDER BY e.layer")
        .expect("prep")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("q")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        layers,
        vec![
            ("SendGrid".into(), "carrier".into()),
            ("Klaviyo".into(), "platform".into())
        ]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "log file mode {mode:o}");
    }
}

#[test]
fn opt_in_fields_are_stored_only_when_asked() {
    let raw =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/sendgrid-newsletter.eml"))
            .expect("read");
    let out = neutralise(&raw, &Policy::default());
    let keep = Keep {
        subject: true,
        recipients: true,
        headers: true,
        ..Default::default()
    };
    let r = Record::new(
        &raw,
        &out,
        Mode::Milter,
        None,
        &["jane@example.net".into()],
        keep,
        1_790_000_000,
    );
    assert!(r.subject.is_some());
    assert_eq!(r.recipients.as_deref(), Some("jane@example.net"));
    assert!(r.headers.as_deref().is_some_and(|h| h.contains("X-SG-EID")));
    let mut store = Store::memory().expect("mem");
    store.insert(&[r]).expect("insert");
    assert_eq!(count(store.conn(), "headers"), 1);
}

#[test]
fn migrates_from_empty_and_from_version_one() {
    // A file at schema version 1 with a row in it.
    let path = tmp("migrate");
    {
        let conn = Connection::open(&path).expect("open raw");
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);")
            .expect("v");
        conn.execute_batch(&trackless::log::schema::Dialect::Sqlite.migration(1))
            .expect("v1 schema");
        conn.execute(
            "INSERT INTO messages (ts, seen, mode, changed, tracked, pixels, fonts, links_total, links_unwrapped, links_cleaned, links_opaque, from_domain)
             VALUES (1790000000, 1790000000, 'filter', 1, 1, 2, 0, 0, 0, 0, 0, 'old.example')",
            [],
        )
        .expect("row");
    }
    let mut store = Store::open(&path).expect("migrate");
    assert_eq!(
        store.version().expect("version"),
        trackless::log::schema::VERSION as i64
    );
    assert_eq!(count(store.conn(), "messages"), 1);
    assert_eq!(count(store.conn(), "headers"), 0, "v2 table exists");
    assert_eq!(count(store.conn(), "remote"), 0, "v4 table exists");
    drop(store);
    // A file at version 3 (the schema before the inventory) takes a message with remote rows.
    let v3 = tmp("migrate-v3");
    {
        let conn = Connection::open(&v3).expect("open raw");
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (3);")
            .expect("v");
        for v in 1..=3 {
            conn.execute_batch(&trackless::log::schema::Dialect::Sqlite.migration(v))
                .expect("old schema");
        }
    }
    let mut store = Store::open(&v3).expect("migrate from 3");
    assert_eq!(
        store.version().expect("version"),
        trackless::log::schema::VERSION as i64
    );
    store
        .insert(&corpus_records(1_790_000_000))
        .expect("insert");
    assert!(count(store.conn(), "remote") > 20);
    drop(store);
    // A file at version 4 (before kept originals) with a row: the row reads back without a
    // hash, a new one stores its original's.
    let v4 = tmp("migrate-v4");
    {
        let conn = Connection::open(&v4).expect("open raw");
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (4);")
            .expect("v");
        for v in 1..=4 {
            conn.execute_batch(&trackless::log::schema::Dialect::Sqlite.migration(v))
                .expect("old schema");
        }
        conn.execute(
            "INSERT INTO messages (ts, seen, mode, from_domain) VALUES (1790000000, 1790000000, 'filter', 'old.example')",
            [],
        )
        .expect("row");
    }
    let mut store = Store::open(&v4).expect("migrate from 4");
    assert_eq!(store.version().expect("version"), 5);
    let mut r = corpus_records(1_790_000_000).remove(0);
    r.original_sha256 = Some("ab".repeat(32));
    store.insert(&[r]).expect("insert");
    let hashes: Vec<Option<String>> = store
        .conn()
        .prepare("SELECT original_sha256 FROM messages ORDER BY id")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(hashes, [None, Some("ab".repeat(32))]);
    drop(store);
    let store = Store::open(&path).expect("reopen");
    // Empty file → current.
    let mut fresh = Store::memory().expect("mem");
    assert_eq!(
        fresh.version().expect("v"),
        trackless::log::schema::VERSION as i64
    );
    // A newer file is refused, not damaged.
    store
        .conn()
        .execute("UPDATE schema_version SET version = 99", [])
        .expect("bump");
    drop(store);
    let err = Store::open(&path).err().expect("too new");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn concurrent_writers_lose_no_rows() {
    let path = tmp("concurrent");
    Store::open(&path).expect("create");
    let records = corpus_records(1_790_000_000);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            let records = records.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).expect("open");
                for r in &records {
                    store.insert(std::slice::from_ref(r)).expect("insert");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let store = Store::open(&path).expect("open");
    assert_eq!(count(store.conn(), "messages"), 4 * records.len() as i64);
}

/// The daemons' log writer on a SQLite file, with a queue of `capacity` records.
fn sqlite_writer(path: PathBuf, capacity: usize) -> LogWriter {
    LogWriter::spawn(WriterConfig {
        path: LogTarget::Sqlite(path),
        capacity,
        retention: None,
        originals: None,
    })
}

#[test]
fn daemon_writer_batches_and_counts_drops() {
    let path = tmp("writer");
    let records = corpus_records(1_790_000_000);
    let writer = sqlite_writer(path.clone(), 10_000);
    for _ in 0..20 {
        for r in &records {
            writer.record(r.clone());
        }
    }
    writer.close();
    let store = Store::open(&path).expect("open");
    assert_eq!(count(store.conn(), "messages"), 20 * records.len() as i64);

    // Unwritable log: mail flow (record()) never blocks or panics; failures are counted.
    let writer = sqlite_writer(
        PathBuf::from("/proc/trackless-cannot-write-here/log.sqlite"),
        4,
    );
    let start = std::time::Instant::now();
    for _ in 0..1000 {
        writer.record(records[0].clone());
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "record() must not block"
    );
    let dropped = writer
        .stats()
        .dropped_full
        .load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    let failed = writer
        .stats()
        .failed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped + failed > 0);
    writer.close();

    // Batch mode waits for room in the queue, but not for a log that cannot be written:
    // 2000 records into a 4-record queue finish, each counted.
    let writer = sqlite_writer(
        PathBuf::from("/proc/trackless-cannot-write-here/log.sqlite"),
        4,
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let one = records[0].clone();
    std::thread::spawn(move || {
        for _ in 0..2000 {
            writer.record_blocking(one.clone());
        }
        let s = writer.stats();
        let counted = s.failed.load(std::sync::atomic::Ordering::Relaxed);
        let _ = done_tx.send(counted);
        writer.close();
    });
    let counted = done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("record_blocking must not wait forever for an unavailable log");
    assert!(counted >= 1990, "{counted} of 2000 counted as failed");
}

/// A daemon's steady trickle (a record every few milliseconds, as mail arrives) is written
/// in a few transactions, not one per record; and a stop does not wait out the gathering.
#[test]
fn daemon_writer_gathers_a_trickle_into_few_transactions() {
    use std::sync::atomic::Ordering::Relaxed;
    let path = tmp("trickle");
    let records = corpus_records(1_790_000_000);
    let writer = sqlite_writer(path.clone(), 10_000);
    for r in records.iter().cycle().take(40) {
        writer.record(r.clone());
        std::thread::sleep(Duration::from_millis(2));
    }
    // Written without a stop: the gathering ends by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while writer.stats().written.load(Relaxed) < 40 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = writer.stats();
    let (written, transactions) = (
        stats.written.load(Relaxed),
        stats.transactions.load(Relaxed),
    );
    assert_eq!(written, 40);
    // 40 records over ~100 ms (more on a loaded machine): a handful of transactions.
    assert!(
        transactions <= 10,
        "{transactions} transactions for 40 records sent 2 ms apart"
    );
    // A stop right after a record writes it without waiting for the gathering to end.
    writer.record(records[0].clone());
    writer.close();
    let store = Store::open(&path).expect("open");
    assert_eq!(count(store.conn(), "messages"), 41);
}

#[test]
fn prune_deletes_old_messages_and_their_rows() {
    let mut store = Store::memory().expect("mem");
    let mut records = corpus_records(1_000);
    let n = records.len() as i64;
    for (i, r) in records.iter_mut().enumerate() {
        r.ts = if i % 2 == 0 { 1_000 } else { 5_000 };
    }
    store.insert(&records).expect("insert");
    let deleted = store.prune(2_000).expect("prune") as i64;
    assert_eq!(deleted, (n + 1) / 2);
    assert_eq!(count(store.conn(), "messages"), n - deleted);
    let orphans: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM trackers WHERE message NOT IN (SELECT id FROM messages)",
            [],
            |r| r.get(0),
        )
        .expect("q");
    assert_eq!(orphans, 0);
}

/// Child half of the crash test: insert batches forever (until killed).
#[test]
#[ignore = "run by killed_writer_leaves_a_consistent_database"]
fn crash_child() {
    let Some(path) = std::env::var_os("TRACKLESS_CRASH_DB") else {
        return;
    };
    let records = corpus_records(1_790_000_000);
    let mut store = Store::open(Path::new(&path)).expect("open");
    loop {
        store.insert(&records).expect("insert");
    }
}

#[test]
fn killed_writer_leaves_a_consistent_database() {
    let path = tmp("crash");
    let batch = corpus_records(0).len() as i64;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--ignored", "--exact", "crash_child", "--nocapture"])
            .env("TRACKLESS_CRASH_DB", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        // Let it write for a while (it starts slowly in a debug build under load), then kill it
        // at a different point each round.
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let written = Connection::open(&path)
                .ok()
                .and_then(|c| {
                    c.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))
                        .ok()
                })
                .unwrap_or(0);
            if written > batch * (round as i64 + 1) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(7 + 13 * round));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        let store = Store::open(&path).expect("reopen after crash");
        let ok: String = store
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(ok, "ok");
        let n = count(store.conn(), "messages");
        assert!(
            n > 0,
            "child wrote nothing before being killed (round {round})"
        );
        assert_eq!(
            n % batch,
            0,
            "a partial batch survived the crash: {n} rows, batch {batch}"
        );
    }
}
