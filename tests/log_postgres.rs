//! The PostgreSQL tracking log against a real server. These need one: run them with
//! `bash tests/e2e/postgres.sh` (it starts a throwaway PostgreSQL from Debian's packages and
//! sets TRACKLESS_TEST_PG_URL, TRACKLESS_TEST_PG_STOP and TRACKLESS_TEST_PG_START); CI does.

mod common;

use common::cli::{check_config, trackless};
use common::milter::{rewritten, send, stop, Daemon};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use trackless::log::postgres::PgStore;
use trackless::log::report::{By, Filter};
use trackless::log::Backend;
use trackless::log::{Db, Keep, LogTarget, Mode, Record, Store};
use trackless::{neutralise, Policy};

fn base_url() -> String {
    std::env::var("TRACKLESS_TEST_PG_URL")
        .expect("TRACKLESS_TEST_PG_URL (run these through tests/e2e/postgres.sh)")
}

/// A fresh database for one test; its URL.
fn fresh_db(name: &str) -> String {
    let base = base_url();
    let db = format!("t_{name}_{}", std::process::id());
    let mut client = postgres::Client::connect(&base, postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .expect("drop database");
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("url with a database");
    format!("{prefix}/{db}")
}

/// The corpus as log records, spread over several weeks, everything kept.
fn records(mode: Mode) -> Vec<Record> {
    let policy = Policy::default();
    let keep = Keep {
        subject: true,
        recipients: true,
        headers: true,
        ..Default::default()
    };
    common::corpus_messages()
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let out = neutralise(raw, &policy);
            Record::new(
                raw,
                &out,
                mode,
                Some("bounce@esp.example"),
                &["jane@example.net".to_string()],
                keep.clone(),
                1_795_132_800 + 2 * 86_400 * i as i64,
            )
        })
        .collect()
}

#[test]
#[ignore = "needs PostgreSQL: bash tests/e2e/postgres.sh"]
fn round_trip_and_reports_match_sqlite() {
    let url = fresh_db("parity");
    let dir = common::scratch("parity");
    // Tracked messages with the SHA-256 of a kept original (schema v5), as `[log]
    // keep_originals = "tracked"` logs them.
    let recs: Vec<Record> = records(Mode::Filter)
        .into_iter()
        .map(|mut r| {
            if r.tracked() {
                let unique = format!("{} {:?}", r.ts, r.message_id_hash);
                r.original_sha256 = Some(trackless::log::originals::sha256_hex(unique.as_bytes()));
            }
            r
        })
        .collect();
    let mut sqlite = Db::open(&LogTarget::Sqlite(dir.join("log.sqlite"))).expect("sqlite");
    let mut pg = Db::open(&LogTarget::parse(&url)).expect("postgres");
    // Two transactions, as the writer would make them.
    let (a, b) = recs.split_at(recs.len() / 2);
    for part in [a, b] {
        sqlite.insert(part).expect("sqlite insert");
        pg.insert(part).expect("pg insert");
    }
    // The remote-content inventory reached PostgreSQL row for row.
    {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let row = client
            .query_one(
                "SELECT COUNT(*), SUM(removed)::BIGINT, SUM(count)::BIGINT FROM remote",
                &[],
            )
            .expect("remote rows");
        let entries = recs.iter().map(|r| r.remote.len()).sum::<usize>() as i64;
        let removed = recs
            .iter()
            .flat_map(|r| &r.remote)
            .filter(|x| x.removed)
            .count() as i64;
        let urls = recs
            .iter()
            .flat_map(|r| &r.remote)
            .map(|x| x.count)
            .sum::<usize>() as i64;
        assert!(entries > 20);
        assert_eq!(
            (
                row.get::<_, i64>(0),
                row.get::<_, i64>(1),
                row.get::<_, i64>(2)
            ),
            (entries, removed, urls)
        );
    }

    // So did the hashes of the kept originals.
    let kept = recs.iter().filter(|r| r.original_sha256.is_some()).count();
    assert!(kept > 20);
    assert_eq!(sqlite.original_hashes().expect("hashes").len(), kept);
    assert_eq!(
        sqlite.original_hashes().expect("hashes"),
        pg.original_hashes().expect("hashes")
    );

    // Split the messages in two by when they were sent (their Date header, mostly).
    let mut seen: Vec<i64> = recs.iter().map(Record::seen).collect();
    seen.sort_unstable();
    let mid = seen[seen.len() / 2];
    let filters = [
        Filter::default(),
        Filter {
            since: Some(mid),
            ..Filter::default()
        },
        Filter {
            until: Some(mid),
            ..Filter::default()
        },
    ];
    let mut groups = 0;
    for f in &filters {
        for by in [By::Domain, By::Sender, By::Esp] {
            let s = sqlite.summarise(by, f).expect("sqlite report");
            let p = pg.summarise(by, f).expect("pg report");
            assert!(!s.is_empty());
            assert_eq!(s, p, "{by:?} {f:?}");
            groups += s.len();
        }
        assert_eq!(
            sqlite.trackers_per_week(f).expect("weeks"),
            pg.trackers_per_week(f).expect("weeks")
        );
        let ops = trackless::Operators::embedded();
        let s = sqlite.by_operator(f, ops).expect("sqlite by operator");
        assert!(!s.is_empty());
        assert_eq!(s, pg.by_operator(f, ops).expect("pg by operator"), "{f:?}");
    }
    assert!(groups > 20, "the corpus gives many groups ({groups})");

    // Evidence, for every sender domain with tracked mail: identical, headers included.
    let domains = sqlite
        .summarise(By::Domain, &Filter::default())
        .expect("report");
    let mut compared = 0;
    for row in domains.iter().filter(|r| r.tracked > 0) {
        let f = Filter {
            sender: Some(row.key.clone()),
            ..Filter::default()
        };
        let s = serde_json::to_value(sqlite.evidence(&f, 50).expect("evidence")).expect("json");
        let p = serde_json::to_value(pg.evidence(&f, 50).expect("evidence")).expect("json");
        assert_eq!(s, p, "evidence for {}", row.key);
        assert!(s.to_string().contains("\"headers\":\""), "headers kept");
        assert!(
            s.to_string().contains("\"original_sha256\":\""),
            "original kept"
        );
        compared += 1;
    }
    assert!(compared > 5);

    // Retention deletes the same messages (and their trackers, by cascade).
    assert_eq!(
        sqlite.prune(mid).expect("prune"),
        pg.prune(mid).expect("prune")
    );
    assert_eq!(
        sqlite.summarise(By::Esp, &Filter::default()).expect("r"),
        pg.summarise(By::Esp, &Filter::default()).expect("r")
    );
    // Half the messages by when they were processed: the hashes left are the same.
    let mut processed: Vec<i64> = recs.iter().map(|r| r.ts).collect();
    processed.sort_unstable();
    let half = processed[processed.len() / 2];
    assert_eq!(
        sqlite.prune(half).expect("prune"),
        pg.prune(half).expect("prune")
    );
    let left = sqlite.original_hashes().expect("hashes");
    assert!(
        !left.is_empty() && left.len() < kept,
        "{} of {kept}",
        left.len()
    );
    assert_eq!(left, pg.original_hashes().expect("hashes"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let orphans: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM trackers t LEFT JOIN messages m ON m.id = t.message WHERE m.id IS NULL",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(orphans, 0);
}

#[test]
#[ignore = "needs PostgreSQL: bash tests/e2e/postgres.sh"]
fn batch_runs_are_not_counted_twice() {
    let url = fresh_db("batch");
    let recs = records(Mode::Batch);
    let mut pg = Db::open(&LogTarget::parse(&url)).expect("postgres");
    pg.insert(&recs).expect("insert");
    pg.insert(&recs).expect("insert again");
    let mut sqlite = Store::memory().expect("sqlite");
    sqlite.insert(&recs).expect("insert");
    sqlite.insert(&recs).expect("insert again");
    let p = pg.summarise(By::Esp, &Filter::default()).expect("report");
    let s = sqlite
        .summarise(By::Esp, &Filter::default())
        .expect("report");
    assert_eq!(p, s);
    let total: u64 = p.iter().map(|r| r.messages).sum();
    assert_eq!(total, recs.len() as u64);
}

#[test]
#[ignore = "needs PostgreSQL: bash tests/e2e/postgres.sh"]
fn filters_starting_together_create_the_schema_once() {
    let url = fresh_db("race");
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|mut s| s.version()))
        })
        .collect();
    for h in handles {
        let v = h.join().expect("thread").expect("open").expect("version");
        // Every migration applied once, whoever ran it.
        assert_eq!(v, trackless::log::schema::VERSION as i64);
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let rows: i64 = client
        .query_one("SELECT COUNT(*) FROM schema_version", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, 1);
}

#[test]
#[ignore = "needs PostgreSQL: bash tests/e2e/postgres.sh"]
fn tls_is_encrypted_and_verified() {
    let url = fresh_db("tls");
    let ca = std::env::var("TRACKLESS_TEST_PG_CA").expect("TRACKLESS_TEST_PG_CA");
    let tls_url = format!("{url}?sslmode=require&sslrootcert={ca}");
    let mut store = PgStore::open(&tls_url).expect("TLS with our CA");
    assert!(store.tls_in_use().expect("pg_stat_ssl"), "not encrypted");
    let recs = records(Mode::Milter);
    store.insert(&recs).expect("insert over TLS");
    let rows = store
        .summarise(By::Esp, &Filter::default())
        .expect("report");
    assert_eq!(
        rows.iter().map(|r| r.messages).sum::<u64>(),
        recs.len() as u64
    );
    // The same server without sslmode: plain.
    let mut plain = PgStore::open(&url).expect("plain");
    assert!(!plain.tls_in_use().expect("pg_stat_ssl"));
    // The system's CAs do not vouch for this server: refused, not silently trusted.
    let err = PgStore::open(&format!("{url}?sslmode=require"))
        .err()
        .expect("unknown CA refused")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The certificate is for 127.0.0.1: another name for the same server is refused.
    let other_name = tls_url.replacen("@127.0.0.1:", "@localhost:", 1);
    let err = PgStore::open(&other_name)
        .err()
        .expect("wrong name refused")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(&password(&url)), "{err}");
}

#[test]
#[ignore = "needs PostgreSQL: bash tests/e2e/postgres.sh"]
fn cli_filter_and_report_work_the_same_on_both() {
    let url = fresh_db("cli");
    let dir = common::scratch("cli");
    let sqlite = dir.join("log.sqlite");
    let logs = [url.clone(), sqlite.display().to_string()];
    for raw in common::corpus_messages().iter().take(20) {
        for log in &logs {
            let mut child = trackless()
                .args(["--log", log, "filter"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), raw).expect("write");
            let out = child.wait_with_output().expect("wait");
            assert!(out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("tracking log"), "{err}");
        }
    }
    for args in [
        vec!["report", "--format", "csv"],
        vec!["report", "--by", "esp", "--format", "json"],
        vec!["report", "--by", "sender"],
    ] {
        let outs: Vec<String> = logs
            .iter()
            .map(|log| {
                let out = trackless()
                    .args(["--log", log])
                    .args(&args)
                    .output()
                    .expect("report");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).expect("utf8")
            })
            .collect();
        assert!(outs[0].lines().count() > 3, "{}", outs[0]);
        assert_eq!(outs[0], outs[1], "{args:?}");
    }
    // check-config connects and says so; a wrong password is an error naming the key.
    let cfg = dir.join("trackless.toml");
    std::fs::write(&cfg, format!("[log]\npath = \"{url}\"\n")).expect("config");
    let out = check_config(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PostgreSQL reachable"), "{stdout}");
    assert!(
        !stdout.contains(&password(&url)),
        "password printed: {stdout}"
    );
    let wrong = url.replacen(&password(&url), "wrong-password", 1);
    std::fs::write(&cfg, format!("# log\n[log]\npath = \"{wrong}\"\n")).expect("config");
    let out = check_config(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:3: log.path:", cfg.display())),
        "{err}"
    );
    assert!(!err.contains("wrong-password"), "{err}");
}

fn password(url: &str) -> String {
    let auth = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split_once('@'))
        .map(|(a, _)| a);
    auth.and_then(|a| a.split_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("password in the URL")
}

const MESSAGE: &str = "From: news@shop.example\r\nTo: b@example.net\r\nSubject: hi\r\nMessage-ID: <N@shop.example>\r\nContent-Type: text/html\r\n\r\n<html><body><img src=\"https://img.unknown.example/o.gif\" width=\"1\" height=\"1\"><p>Hello</p></body></html>\r\n";

/// MESSAGE with its own Message-ID.
fn numbered(n: usize) -> String {
    MESSAGE.replace("<N@", &format!("<{n}@"))
}

fn logged(url: &str) -> i64 {
    postgres::Client::connect(url, postgres::NoTls)
        .and_then(|mut c| c.query_one("SELECT COUNT(*) FROM messages", &[]))
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

fn server(var: &str) {
    let script = std::env::var(var).unwrap_or_else(|_| panic!("{var}"));
    let st = Command::new("bash")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .status()
        .expect("bash");
    assert!(st.success(), "{var} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: bash tests/e2e/postgres.sh"]
async fn milter_keeps_delivering_while_postgres_is_down() {
    // The postgres client runs its own runtime: keep it off this one's threads.
    let url = tokio::task::spawn_blocking(|| fresh_db("outage"))
        .await
        .expect("join");
    let count = |url: &str| {
        let url = url.to_string();
        tokio::task::spawn_blocking(move || logged(&url))
    };
    let dir = common::scratch("outage");
    let sock = dir.join("milter.sock");
    let cfg = dir.join("trackless.toml");
    std::fs::write(
        &cfg,
        format!(
            "[log]\npath = \"{url}\"\nqueue = 100\n[milter]\nlisten = \"unix:{}\"\n",
            sock.display()
        ),
    )
    .expect("config");
    let daemon = Daemon::new(
        common::cli::bin()
            .arg("--config")
            .arg(&cfg)
            .arg("milter")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let mut conn = common::milter::connect(&sock).await;

    for n in 0..5 {
        assert!(rewritten(
            &send(&mut conn, "news@shop.example", &numbered(n)).await
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&url).await.expect("join") < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&url).await.expect("join"), 5);

    // The server goes away: mail keeps flowing, rewritten, without waiting on the log.
    tokio::task::spawn_blocking(|| server("TRACKLESS_TEST_PG_STOP"))
        .await
        .expect("stop");
    let start = Instant::now();
    for n in 5..65 {
        assert!(
            rewritten(&send(&mut conn, "news@shop.example", &numbered(n)).await),
            "message {n}"
        );
    }
    let during = start.elapsed();
    assert!(
        during < Duration::from_secs(20),
        "60 messages took {during:?} with the log down"
    );

    // Back: the records waiting in the queue (up to queue = 100) are written.
    tokio::task::spawn_blocking(|| server("TRACKLESS_TEST_PG_START"))
        .await
        .expect("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&url).await.expect("join") < 65 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        count(&url).await.expect("join"),
        65,
        "queued records written after the outage"
    );
    assert!(rewritten(
        &send(&mut conn, "news@shop.example", &numbered(65)).await
    ));
    conn.close().await.expect("close");

    let stderr = stop(daemon).await;
    assert_eq!(count(&url).await.expect("join"), 66, "flushed on SIGTERM");
    // Said once (per minute), not once per message.
    let complaints = stderr
        .lines()
        .filter(|l| {
            l.contains("tracking log unavailable") || l.contains("tracking log write failed")
        })
        .count();
    assert!(
        (1..=2).contains(&complaints),
        "{complaints} complaints:\n{stderr}"
    );
    assert!(stderr.contains("tracking log available again"), "{stderr}");
    assert!(
        !stderr.contains(&password(&url)),
        "password in the log:\n{stderr}"
    );
}
