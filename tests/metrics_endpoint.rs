//! A milter configured entirely from its config file, with the metrics endpoint on: messages
//! through the milter protocol show up in a scrape of GET /metrics, and SIGHUP re-reads the
//! config file's [policy].

mod common;

use common::milter::{rewritten, send, Daemon, Stderr};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MESSAGE: &str = "From: a@shop.example\r\nTo: b@example.net\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n<html><body><img src=\"https://img.unknown.example/o.gif\" width=\"1\" height=\"1\"><p>Hello</p></body></html>\r\n";

fn scrape(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn value(page: &str, sample: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

fn config(sock: &std::path::Path, port: u16, log: &std::path::Path, heuristics: bool) -> String {
    format!(
        "[policy]\npixel_heuristics = {heuristics}\n[log]\npath = \"{}\"\n[milter]\nlisten = \"unix:{}\"\nmetrics = \"127.0.0.1:{port}\"\nworkers = 2\n",
        log.display(),
        sock.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_counts_messages_and_sighup_rereads_the_config() {
    let dir = std::env::temp_dir().join(format!("trackless-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let sock = dir.join("milter.sock");
    let log = dir.join("log.sqlite");
    let cfg = dir.join("trackless.toml");
    std::fs::write(&cfg, config(&sock, port, &log, false)).expect("config");

    let mut daemon = Daemon::new(
        Command::new(env!("CARGO_BIN_EXE_trackless"))
            .arg("--config")
            .arg(&cfg)
            .arg("milter")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let stderr = Stderr::capture(daemon.child());
    let pid = daemon.id().to_string();
    let mut conn = common::milter::connect(&sock).await;

    // Heuristics off in the file: the 1×1 image on an unknown host stays.
    assert!(send(&mut conn, "a@shop.example", MESSAGE).await.is_empty());

    // Turn them on in the file and reload: the same connection now gets the pixel removed.
    std::fs::write(&cfg, config(&sock, port, &log, true)).expect("config");
    let st = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    stderr.wait_for("configuration reloaded", 1).await;
    let actions = send(&mut conn, "a@shop.example", MESSAGE).await;
    assert!(rewritten(&actions), "config not re-read: {actions:?}");
    conn.close().await.expect("close");

    // The log writer is asynchronous: wait until both records are written.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = tokio::task::spawn_blocking(move || scrape(port, "/metrics"))
            .await
            .expect("join");
        if value(&page, "trackless_log_written_total") == Some(2.0) || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("Content-Type: text/plain; version=0.0.4"),
        "{page}"
    );
    for (sample, expected) in [
        ("trackless_messages_total", 2.0),
        ("trackless_messages_rewritten_total", 1.0),
        ("trackless_messages_unchanged_total", 1.0),
        ("trackless_pixels_removed_total", 1.0),
        ("trackless_errors_total", 0.0),
        ("trackless_panics_total", 0.0),
        ("trackless_log_written_total", 2.0),
        ("trackless_log_dropped_total", 0.0),
        ("trackless_messages_by_esp_total{esp=\"none\"}", 2.0),
        ("trackless_message_duration_seconds_count", 2.0),
        (
            "trackless_message_duration_seconds_bucket{le=\"+Inf\"}",
            2.0,
        ),
    ] {
        assert_eq!(value(&page, sample), Some(expected), "{sample} in\n{page}");
    }
    // The two records went in one transaction or two (the writer gathers for 0.2 s).
    let transactions = value(&page, "trackless_log_transactions_total");
    assert!(
        transactions.is_some_and(|t| (1.0..=2.0).contains(&t)),
        "trackless_log_transactions_total {transactions:?} in\n{page}"
    );
    let other = tokio::task::spawn_blocking(move || scrape(port, "/"))
        .await
        .expect("join");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let mut child = daemon.take();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    let stderr = stderr.finish();
    assert!(status.success(), "{stderr}");
    // The listener is gone with the daemon.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    // One tracking-log row per message, in the file, once the daemon has stopped.
    let rows: i64 = rusqlite::Connection::open(&log)
        .expect("open log")
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE mode = 'milter'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(rows, 2, "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
