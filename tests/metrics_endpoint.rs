//! A milter configured entirely from its config file, with the metrics endpoint on: messages
//! through the milter protocol show up in a scrape of GET /metrics, and SIGHUP re-reads the
//! config file's [policy].

use indymilter_test::{Actions, EomAction, ProtoOpts, Status, TestConnection};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MESSAGE: &str = "From: a@shop.example\r\nTo: b@example.net\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n<html><body><img src=\"https://img.unknown.example/o.gif\" width=\"1\" height=\"1\"><p>Hello</p></body></html>\r\n";

async fn send(conn: &mut TestConnection) -> Vec<EomAction> {
    conn.mail(["<a@shop.example>"]).await.expect("mail");
    conn.rcpt(["<b@example.net>"]).await.expect("rcpt");
    let (head, body) = MESSAGE.split_once("\r\n\r\n").expect("split");
    for line in head.split("\r\n") {
        let (n, v) = line.split_once(':').expect("header");
        conn.header(n, v).await.expect("header");
    }
    conn.eoh().await.expect("eoh");
    conn.body(body.as_bytes().to_vec()).await.expect("body");
    let (actions, status) = conn.eom().await.expect("eom");
    assert_eq!(status, Status::Accept);
    actions.actions
}

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

    let child = Command::new(env!("CARGO_BIN_EXE_trackless"))
        .arg("--config")
        .arg(&cfg)
        .arg("milter")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id().to_string();
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut conn = TestConnection::configure()
        .available_actions(Actions::all())
        .available_opts(ProtoOpts::all())
        .read_timeout(Duration::from_secs(10))
        .open_unix(&sock)
        .await
        .expect("connect");

    // Heuristics off in the file: the 1×1 image on an unknown host stays.
    assert!(send(&mut conn).await.is_empty());

    // Turn them on in the file and reload: the same connection now gets the pixel removed.
    std::fs::write(&cfg, config(&sock, port, &log, true)).expect("config");
    let st = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let actions = send(&mut conn).await;
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, EomAction::ReplaceBody { .. })),
        "config not re-read: {actions:?}"
    );
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
    let other = tokio::task::spawn_blocking(move || scrape(port, "/"))
        .await
        .expect("join");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    let st = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("configuration reloaded"), "{stderr}");
    // The listener is gone with the daemon.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    std::fs::remove_dir_all(&dir).ok();
}
