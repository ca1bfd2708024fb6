//! The daemons as the packaged units run them (the `trackless` binary, its flags, signals):
//! the SMTP and LMTP content filters and the milter write exactly one tracking-log row per
//! message, and a caught panic (builds with the test-hooks feature, as `cargo test` makes them, panic on the `TRACKLESS_TEST_PANIC` marker) is
//! counted in `trackless_panics_total`, logged at error level with the queue or session id,
//! and the original message goes on unchanged.

mod common;

use common::corpus_crlf as corpus;
use common::fake_mta::{FakeMta, Received};
use common::milter::{stop, Daemon};
use common::smtp::{self, forwarded};
use indymilter_test::{EomAction, MacroStage, Status, TestConnection};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes that make a debug build's core panic when the daemon runs with this marker.
const MARKER: &str = "X-Test-Panic-Marker-9f2c";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A real-shaped message that makes the core panic: a corpus newsletter with the marker in an
/// extra header.
fn panicking(name: &str) -> Vec<u8> {
    let mut raw = format!("X-Campaign: {MARKER}\r\n").into_bytes();
    raw.extend_from_slice(&corpus(name));
    raw
}

/// Start `trackless ARGS` with the panic hook armed, stderr captured.
fn spawn(args: &[String]) -> Daemon {
    spawn_armed(args, "TRACKLESS_TEST_PANIC")
}

/// Start `trackless ARGS` with the debug hook `hook` (the core's, or the worker's outside the
/// core's guard) armed on MARKER.
fn spawn_armed(args: &[String], hook: &str) -> Daemon {
    let child = common::cli::trackless()
        .env(hook, MARKER)
        .env("TRACKLESS_LOG", "info")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trackless");
    Daemon::new(child)
}

/// Wait until something accepts connections on `port` (the daemon is up).
async fn wait_for_port(port: u16) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listening on port {port}");
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn value(page: &str, sample: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// Each of `samples` (name, value) is on the metrics `page`; `ctx` starts a failure message.
#[track_caller]
fn assert_samples(page: &str, samples: &[(&str, f64)], ctx: &str) {
    for &(sample, expected) in samples {
        assert_eq!(
            value(page, sample),
            Some(expected),
            "{ctx}{sample} in\n{page}"
        );
    }
}

/// The metrics page at `port`, once something listens there.
async fn metrics_page(port: u16) -> String {
    wait_for_port(port).await;
    tokio::task::spawn_blocking(move || scrape(port))
        .await
        .expect("join")
}

/// The lines of a daemon's stderr that report a message passed on after an internal error.
fn internal_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("passthrough reason=internal-error"))
        .collect()
}

/// A row of the tracking log: (mode, envelope sender, skipped).
type Row = (String, Option<String>, Option<String>);

/// The row says the message was left alone after an internal error.
fn skipped_for_internal_error(row: &Row) -> bool {
    row.2
        .as_deref()
        .is_some_and(|s| s.contains("internal-error"))
}

/// Rows of the tracking log, in the order written.
fn logged(log: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(log).expect("open log");
    let mut stmt = conn
        .prepare("SELECT mode, envelope_sender, skipped FROM messages ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

/// One transaction (without greeting or QUIT) from `sender` to `rcpts` (bare addresses).
fn transaction(sender: &str, rcpts: &[&str], msg: &[u8]) -> Vec<u8> {
    let rcpts: Vec<String> = rcpts.iter().map(|r| format!("RCPT TO:<{r}>")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    smtp::transaction(&format!("MAIL FROM:<{sender}>"), &rcpts, msg)
}

/// A session: `hello` from client.test, `transactions` pipelined, QUIT.
fn session(hello: &str, transactions: &[&[u8]]) -> Vec<u8> {
    let mut input = format!("{hello} client.test\r\n").into_bytes();
    for t in transactions {
        input.extend_from_slice(t);
    }
    input.extend_from_slice(b"QUIT\r\n");
    input
}

/// How many messages (SMTP) or recipients (LMTP) the fake downstream queued, by the replies.
fn queued(replies: &[String]) -> usize {
    replies
        .iter()
        .filter(|r| r.starts_with("250 2.0.0 queued as FAKE"))
        .count()
}

/// Send a whole pipelined session and read every reply line until the server closes.
async fn converse(port: u16, input: &[u8]) -> Vec<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(input).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf))
        .await
        .expect("session timed out")
        .expect("read");
    String::from_utf8_lossy(&buf)
        .lines()
        .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
        .map(str::to_string)
        .collect()
}

struct ContentFilter {
    child: Daemon,
    port: u16,
    metrics: u16,
    log: PathBuf,
    mta: FakeMta,
}

async fn start_filter(proto: &str, name: &str) -> ContentFilter {
    let lmtp = proto == "lmtp";
    let mta = FakeMta::start(lmtp).await;
    let dir = common::scratch(name);
    let log = dir.join("log.sqlite");
    let (port, metrics) = (free_port(), free_port());
    let scheme = if lmtp { "lmtp" } else { "smtp" };
    let child = spawn(&[
        "--log".into(),
        log.display().to_string(),
        proto.into(),
        "--listen".into(),
        format!("inet:127.0.0.1:{port}"),
        "--forward".into(),
        format!("{scheme}://{}", mta.addr),
        "--metrics".into(),
        format!("127.0.0.1:{metrics}"),
        "--workers".into(),
        "2".into(),
    ]);
    wait_for_port(port).await;
    wait_for_port(metrics).await;
    ContentFilter {
        child,
        port,
        metrics,
        log,
        mta,
    }
}

/// Every message the SMTP or LMTP filter forwards is one row in the tracking log — not one per
/// recipient, none for a transaction that never reached DATA — whether it was rewritten or
/// left alone, whatever its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_filters_log_one_row_per_message() {
    for (proto, hello) in [("smtp", "EHLO"), ("lmtp", "LHLO")] {
        let f = start_filter(proto, &format!("rows-{proto}")).await;
        let tracked = corpus("sendgrid-newsletter.eml");
        let clean = corpus("personal-plain.eml");
        let third = corpus("mailgun-newsletter.eml");
        // Session 1: two messages, the second to two recipients, and a transaction that is
        // given up (RSET) before DATA.
        let input = session(
            hello,
            &[
                &transaction("one@esp.example", &["jane@example.net"], &tracked),
                &transaction(
                    "two@esp.example",
                    &["jane@example.net", "bob@example.net"],
                    &clean,
                ),
                b"MAIL FROM:<dropped@esp.example>\r\nRCPT TO:<jane@example.net>\r\nRSET\r\n",
            ],
        );
        let replies = converse(f.port, &input).await;
        // SMTP: one final reply per message; LMTP: one per recipient.
        let want = if proto == "lmtp" { 3 } else { 2 };
        assert_eq!(queued(&replies), want, "{proto}: {replies:?}");
        // Session 2: one more message.
        let input = session(
            hello,
            &[&transaction(
                "three@esp.example",
                &["bob@example.net"],
                &third,
            )],
        );
        let replies = converse(f.port, &input).await;
        assert!(queued(&replies) > 0, "{proto}: {replies:?}");
        let got: Vec<Received> = f.mta.received();
        assert_eq!(got.len(), 3, "{proto}");
        assert_eq!(got[0].data, forwarded(&tracked), "{proto}");
        assert_eq!(got[1].data, clean, "{proto}");

        let stderr = stop(f.child).await;
        let rows = logged(&f.log);
        let senders: Vec<Option<String>> = rows.iter().map(|r| r.1.clone()).collect();
        assert_eq!(
            senders,
            [
                Some("one@esp.example".to_string()),
                Some("two@esp.example".to_string()),
                Some("three@esp.example".to_string())
            ],
            "{proto}: one row per message: {rows:?}\n{stderr}"
        );
        assert!(rows.iter().all(|r| r.0 == proto), "{proto}: {rows:?}");
    }
}

/// The SMTP and LMTP filters on a message that makes the core panic: the original goes
/// downstream unchanged and accepted, `trackless_panics_total` and the internal-error
/// pass-through count it, stderr has an error line with the session id and the Message-ID,
/// and the log row says why the message was left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_filters_report_a_caught_panic() {
    for (proto, hello) in [("smtp", "EHLO"), ("lmtp", "LHLO")] {
        let f = start_filter(proto, &format!("panic-{proto}")).await;
        let bad = panicking("mailgun-newsletter.eml");
        let good = corpus("sendgrid-newsletter.eml");
        let input = session(
            hello,
            &[
                &transaction("good@esp.example", &["jane@example.net"], &good),
                &transaction("bad@esp.example", &["jane@example.net"], &bad),
            ],
        );
        let replies = converse(f.port, &input).await;
        assert_eq!(queued(&replies), 2, "{proto}: {replies:?}");
        let got = f.mta.received();
        assert_eq!(got.len(), 2, "{proto}");
        assert_eq!(got[0].data, forwarded(&good), "{proto}");
        assert_eq!(
            got[1].data, bad,
            "{proto}: the original must go on unchanged"
        );

        let page = scrape(f.metrics);
        assert_samples(
            &page,
            &[
                ("trackless_messages_total", 2.0),
                ("trackless_panics_total", 1.0),
                (
                    "trackless_passthrough_total{reason=\"internal-error\"}",
                    1.0,
                ),
                ("trackless_messages_rewritten_total", 1.0),
            ],
            &format!("{proto}: "),
        );

        let stderr = stop(f.child).await;
        let line = *internal_errors(&stderr)
            .first()
            .unwrap_or_else(|| panic!("{proto}: no internal-error line in\n{stderr}"));
        assert!(
            line.contains("ERROR"),
            "{proto}: not at error level: {line}"
        );
        // The second message of its session (connection numbers count the readiness probe).
        let session = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("session="))
            .unwrap_or_else(|| panic!("{proto}: no session id: {line}"));
        assert!(session.ends_with(".2"), "{proto}: {line}");
        assert!(
            line.contains("message_id=\"<20260312070003.47cc59983398d2ad@mg.news.example>\""),
            "{proto}: {line}"
        );
        let rows = logged(&f.log);
        assert_eq!(rows.len(), 2, "{proto}: {rows:?}");
        assert_eq!(rows[0].2, None, "{proto}: {rows:?}");
        assert!(skipped_for_internal_error(&rows[1]), "{proto}: {rows:?}");
    }
}

/// One milter transaction with the queue id Postfix sends at end of message.
async fn milter_send(conn: &mut TestConnection, queue_id: &str, raw: &[u8]) -> Vec<EomAction> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("split");
    conn.mail(["<news@esp.example>"]).await.expect("mail");
    conn.rcpt(["<jane@example.net>"]).await.expect("rcpt");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("continuation after a field");
            last.1.push('\n');
            last.1.push_str(line);
        } else {
            let (n, v) = line.split_once(':').expect("header");
            fields.push((n.to_string(), v.to_string()));
        }
    }
    for (n, v) in &fields {
        conn.header(n.as_str(), v.as_str()).await.expect("header");
    }
    conn.eoh().await.expect("eoh");
    conn.body(body.as_bytes().to_vec()).await.expect("body");
    conn.macros(MacroStage::Eom, [("i", queue_id)])
        .await
        .expect("macros");
    let (actions, status) = conn.eom().await.expect("eom");
    assert_eq!(status, Status::Accept);
    actions.actions
}

/// A `trackless milter` daemon listening on a socket in its directory, and a connection to it.
struct MilterDaemon {
    daemon: Daemon,
    conn: TestConnection,
    log: PathBuf,
    metrics: u16,
}

/// Start `trackless GLOBAL --log DIR/log.sqlite milter EXTRA --listen unix:DIR/milter.sock
/// --metrics …` with the debug hook `hook` armed, and connect to it.
async fn start_milter(dir: &Path, global: &[String], extra: &[&str], hook: &str) -> MilterDaemon {
    let sock = dir.join("milter.sock");
    let log = dir.join("log.sqlite");
    let metrics = free_port();
    let mut args = global.to_vec();
    args.extend(["--log".into(), log.display().to_string(), "milter".into()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([
        "--listen".into(),
        format!("unix:{}", sock.display()),
        "--metrics".into(),
        format!("127.0.0.1:{metrics}"),
    ]);
    let daemon = spawn_armed(&args, hook);
    let conn = common::milter::connect(&sock).await;
    MilterDaemon {
        daemon,
        conn,
        log,
        metrics,
    }
}

/// The milter on a message that makes the core panic: accepted without changes, counted,
/// logged at error level with the MTA's queue id; one log row per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milter_reports_a_caught_panic_and_logs_one_row_per_message() {
    let MilterDaemon {
        daemon: child,
        mut conn,
        log,
        metrics,
    } = start_milter(&common::scratch("milter"), &[], &[], "TRACKLESS_TEST_PANIC").await;
    let good = corpus("sendgrid-newsletter.eml");
    let actions = milter_send(&mut conn, "4QGOOD1", &good).await;
    assert!(common::milter::rewritten(&actions), "{actions:?}");
    let actions = milter_send(&mut conn, "4QBAD22", &panicking("mailgun-newsletter.eml")).await;
    assert!(
        actions.is_empty(),
        "a message that panicked was changed: {actions:?}"
    );
    let actions = milter_send(&mut conn, "4QCLEAN3", &corpus("personal-plain.eml")).await;
    assert!(actions.is_empty(), "{actions:?}");
    conn.close().await.expect("close");

    let page = metrics_page(metrics).await;
    assert_samples(
        &page,
        &[
            ("trackless_messages_total", 3.0),
            ("trackless_panics_total", 1.0),
            (
                "trackless_passthrough_total{reason=\"internal-error\"}",
                1.0,
            ),
        ],
        "",
    );

    let stderr = stop(child).await;
    let lines = internal_errors(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(lines[0].contains("queue_id=4QBAD22"), "{}", lines[0]);
    let rows = logged(&log);
    assert_eq!(rows.len(), 3, "one row per message: {rows:?}");
    assert!(rows.iter().all(|r| r.0 == "milter"), "{rows:?}");
    assert!(skipped_for_internal_error(&rows[1]), "{rows:?}");
}

/// A panic outside the core's guard (in the daemon's rewrite worker): the message still goes
/// on unchanged, the worker pool keeps working, and the panic is counted, logged at error
/// level with the queue id and recorded in the tracking log like every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milter_survives_a_worker_panic_and_logs_the_message() {
    let MilterDaemon {
        daemon: child,
        mut conn,
        log,
        metrics,
    } = start_milter(
        &common::scratch("milter-worker"),
        &[],
        &["--workers", "1"],
        "TRACKLESS_TEST_WORKER_PANIC",
    )
    .await;
    let actions = milter_send(&mut conn, "4QWORK1", &panicking("mailgun-newsletter.eml")).await;
    assert!(actions.is_empty(), "{actions:?}");
    // The one worker is free again.
    let actions = milter_send(&mut conn, "4QGOOD2", &corpus("sendgrid-newsletter.eml")).await;
    assert!(common::milter::rewritten(&actions), "{actions:?}");
    conn.close().await.expect("close");

    let page = metrics_page(metrics).await;
    assert_samples(
        &page,
        &[
            ("trackless_messages_total", 2.0),
            ("trackless_panics_total", 1.0),
        ],
        "",
    );
    let stderr = stop(child).await;
    let lines = internal_errors(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("queue_id=4QWORK1"), "{}", lines[0]);
    let rows = logged(&log);
    assert_eq!(rows.len(), 2, "one row per message: {rows:?}");
    assert!(skipped_for_internal_error(&rows[0]), "{rows:?}");
}

/// A message over the milter's size limit is accepted without being read whole — and still
/// counted and logged, one row like every other message, saying why it was left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milter_logs_a_message_over_the_size_limit() {
    let dir = common::scratch("milter-size");
    let cfg = dir.join("trackless.toml");
    std::fs::write(&cfg, "[limits]\nmax_size = 4096\n").expect("config");
    let MilterDaemon {
        daemon,
        mut conn,
        log,
        metrics,
    } = start_milter(
        &dir,
        &["--config".into(), cfg.display().to_string()],
        &[],
        "TRACKLESS_TEST_PANIC",
    )
    .await;
    let big = corpus("mailgun-newsletter.eml");
    assert!(big.len() > 4096);
    let actions = milter_send(&mut conn, "4QBIG1", &big).await;
    assert!(actions.is_empty(), "{actions:?}");
    let small = corpus("personal-plain.eml");
    assert!(small.len() < 4096);
    let actions = milter_send(&mut conn, "4QSMALL2", &small).await;
    assert!(actions.is_empty(), "{actions:?}");
    conn.close().await.expect("close");

    let page = metrics_page(metrics).await;
    assert_samples(
        &page,
        &[
            ("trackless_messages_total", 2.0),
            ("trackless_messages_unchanged_total", 2.0),
            ("trackless_passthrough_total{reason=\"too-large\"}", 1.0),
        ],
        "",
    );
    let stderr = stop(daemon).await;
    let rows = logged(&log);
    assert_eq!(rows.len(), 2, "{rows:?}\n{stderr}");
    assert_eq!(rows[0].2.as_deref(), Some("too-large"), "{rows:?}");
    assert_eq!(rows[1].2, None, "{rows:?}");
}
