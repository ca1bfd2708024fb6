//! `trackless report dossier` on a log filled by each mode. The same three tracked messages (two
//! from northwind.example — SendGrid, the second without a Message-ID and dated a day later —
//! and one from glowco.example — Klaviyo over SendGrid) go through `filter`, `pipe`, `batch`
//! over a Maildir and over an mbox, the `milter` daemon over its unix socket, and the `smtp`
//! and `lmtp` content filters in front of a fake downstream server, each with
//! `--keep-headers` and its own log. The dossier of each sender from each log must succeed,
//! count the same messages and hold the same evidence as the one from the `filter` log:
//! evidence.json, the header appendix (headers/N.txt) and the page itself, once the values
//! that legitimately differ by mode are set aside (see [`comparable`]). Every mode also keeps
//! the originals (`[log] keep_originals`): each dossier's originals/N.eml must be the message
//! exactly as that mode received it.
//!
//! IMAP is not here: its in-memory server exists only inside the crate's unit tests. The
//! end-to-end script tests/e2e/imap.sh makes a dossier from the log of a real sync instead.

mod common;

use common::cli::{feed, ok, trackless};
use common::fake_mta::FakeMta;
use common::mailbox::{build_mbox, mkmaildir};
use common::milter::{stop, Daemon};
use indymilter_test::{Actions, ProtoOpts, Status, TestConnection};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use trackless::batch::mbox::Flavor;

/// The senders of the messages, each with its messages (indices into [`messages`]) in the
/// order of its dossier.
const SENDERS: [(&str, &[usize]); 2] = [("northwind.example", &[0, 2]), ("glowco.example", &[1])];

/// Every mode's configuration: the original of each tracked message kept beside the log, so
/// that the dossiers copy them (originals/N.eml) and give their SHA-256.
const CONFIG: &str = "[log]\nkeep_originals = \"tracked\"\n";

/// The messages every mode gets, as a mail server receives them (CRLF): two corpus
/// newsletters and a second northwind.example newsletter without a Message-ID, dated a day
/// later (so that every log orders the dossier's messages the same way, by date).
fn messages() -> Vec<Vec<u8>> {
    let northwind = common::corpus_crlf("sendgrid-newsletter.eml");
    let glowco = common::corpus_crlf("klaviyo-over-sendgrid.eml");
    let text = String::from_utf8(northwind.clone()).expect("utf-8 corpus message");
    let without_id = text
        .replace(
            "Message-ID: <RC0i6RoK8TDqkaIYGzJ1Bw@geopod-ismtpd-14>\r\n",
            "",
        )
        .replace(
            "Date: Tue, 10 Mar 2026 14:02:09 +0000\r\n",
            "Date: Wed, 11 Mar 2026 09:30:00 +0000\r\n",
        );
    assert!(
        !without_id.contains("Message-ID:") && without_id.contains("Date: Wed, 11 Mar 2026"),
        "the corpus message changed: update this test's variant of it"
    );
    vec![northwind, glowco, without_id.into_bytes()]
}

/// `trackless --config CONFIG --keep-headers --log LOG ARGS`, CONFIG beside the log.
fn logging(log: &Path, args: &[&str]) -> std::process::Command {
    let mut c = trackless();
    c.arg("--config")
        .arg(log.with_file_name("trackless.toml"))
        .arg("--keep-headers")
        .arg("--log")
        .arg(log)
        .args(args);
    c
}

/// A fresh directory for one mode's log and its configuration, and the log's path in it.
fn log_in(mode: &str) -> (PathBuf, PathBuf) {
    let dir = common::scratch(&format!("dossier-modes-{mode}"));
    std::fs::write(dir.join("trackless.toml"), CONFIG).expect("write config");
    let log = dir.join("log.sqlite");
    (dir, log)
}

/// `trackless filter` per message (one process each, as procmail or Sieve runs it).
fn filter_log() -> PathBuf {
    let (_, log) = log_in("filter");
    for m in messages() {
        let out = feed(&mut logging(&log, &["filter"]), &m);
        common::cli::assert_exit(&out, 0);
    }
    log
}

/// `trackless pipe` per message, handing it to a sendmail that swallows it.
fn pipe_log() -> PathBuf {
    let (dir, log) = log_in("pipe");
    let sendmail = dir.join("sendmail");
    std::fs::write(&sendmail, "#!/bin/sh\ncat >/dev/null\n").expect("write sendmail");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sendmail = sendmail.to_str().expect("utf-8 path");
    for m in messages() {
        let out = feed(
            &mut logging(
                &log,
                &[
                    "pipe",
                    "-f",
                    "bounces@em4821.northwind.example",
                    "--sendmail",
                    sendmail,
                    "--",
                    "jane.doe@example.net",
                ],
            ),
            &m,
        );
        common::cli::assert_exit(&out, 0);
    }
    log
}

/// The messages as mailboxes on disk hold them (LF).
fn on_disk() -> Vec<Vec<u8>> {
    messages().iter().map(|m| common::lf(m)).collect()
}

/// `trackless batch` over a Maildir holding the messages (LF, as Maildirs hold them on disk).
fn maildir_log() -> PathBuf {
    let (dir, log) = log_in("maildir");
    let md = dir.join("Maildir");
    mkmaildir(&md);
    for (i, m) in on_disk().iter().enumerate() {
        std::fs::write(md.join("cur").join(format!("{i:04}.M1P1.test:2,S")), m)
            .expect("write message");
    }
    let out = logging(&log, &["batch"]).arg(&md).output().expect("batch");
    ok(&out);
    log
}

/// `trackless batch` over an mbox (mboxrd, LF) holding the messages.
fn mbox_log() -> PathBuf {
    let (dir, log) = log_in("mbox");
    let mbox = dir.join("inbox.mbox");
    std::fs::write(&mbox, build_mbox(&on_disk(), Flavor::Mboxrd)).expect("write mbox");
    let out = logging(&log, &["batch"])
        .arg(&mbox)
        .output()
        .expect("batch");
    ok(&out);
    log
}

/// Start `trackless --keep-headers --log LOG ARGS` as a daemon (stderr kept for its exit).
fn daemon(log: &Path, args: &[&str]) -> Daemon {
    let child = logging(log, args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trackless");
    Daemon::new(child)
}

/// One milter transaction as Postfix makes it: envelope, each header field (a folded value
/// with its line breaks as bare LF), the body, end of message; the milter must accept.
async fn milter_send(conn: &mut TestConnection, raw: &[u8]) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("header and body");
    conn.mail(["<bounces@em4821.northwind.example>"])
        .await
        .expect("mail");
    conn.rcpt(["<jane.doe@example.net>"]).await.expect("rcpt");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("continuation after a field");
            last.1.push('\n');
            last.1.push_str(line);
        } else {
            let (n, v) = line.split_once(':').expect("header field");
            fields.push((n.to_string(), v.to_string()));
        }
    }
    for (n, v) in &fields {
        conn.header(n.as_str(), v.as_str()).await.expect("header");
    }
    conn.eoh().await.expect("eoh");
    conn.body(body.as_bytes().to_vec()).await.expect("body");
    let (_, status) = conn.eom().await.expect("eom");
    assert_eq!(status, Status::Accept);
}

/// Connect to the milter on `sock` (waiting for it to listen) as Postfix does: every action and
/// protocol option offered, header values passed exactly as they are after the colon (with
/// their leading space, which the milter asks for).
async fn connect(sock: &Path) -> TestConnection {
    for _ in 0..400 {
        if sock.exists() {
            if let Ok(conn) = TestConnection::configure()
                .available_actions(Actions::all())
                .available_opts(ProtoOpts::all())
                .exact_leading_space(true)
                .read_timeout(Duration::from_secs(20))
                .open_unix(sock)
                .await
            {
                assert!(
                    conn.negotiated_opts().contains(ProtoOpts::LEADING_SPACE),
                    "the milter no longer asks for header values with their leading space"
                );
                return conn;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the milter does not accept connections on {}",
        sock.display()
    );
}

/// The milter daemon on a unix socket, driven as an MTA would, then stopped (SIGTERM: the
/// log's writer finishes).
async fn milter_log() -> PathBuf {
    let (dir, log) = log_in("milter");
    let sock = dir.join("milter.sock");
    let listen = format!("unix:{}", sock.display());
    let d = daemon(&log, &["milter", "--listen", &listen]);
    let mut conn = connect(&sock).await;
    for m in messages() {
        milter_send(&mut conn, &m).await;
    }
    conn.close().await.expect("close");
    stop(d).await;
    log
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Wait until something accepts connections on `port`.
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

/// The SMTP or LMTP content filter in front of a fake downstream server, the messages sent in
/// one session, then stopped.
async fn content_filter_log(proto: &str) -> PathBuf {
    let lmtp = proto == "lmtp";
    let (_, log) = log_in(proto);
    let mta = FakeMta::start(lmtp).await;
    let port = free_port();
    let listen = format!("inet:127.0.0.1:{port}");
    let forward = format!("{proto}://{}", mta.addr);
    let d = daemon(&log, &[proto, "--listen", &listen, "--forward", &forward]);
    wait_for_port(port).await;
    let msgs = messages();
    let mut input = format!("{} client.test\r\n", if lmtp { "LHLO" } else { "EHLO" }).into_bytes();
    for m in &msgs {
        input.extend_from_slice(&common::smtp::transaction(
            "MAIL FROM:<bounces@em4821.northwind.example>",
            &["RCPT TO:<jane.doe@example.net>"],
            m,
        ));
    }
    input.extend_from_slice(b"QUIT\r\n");
    // The greeting, EHLO/LHLO, then MAIL, RCPT, DATA and the final reply per message, QUIT.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let replies = common::smtp::converse(addr, &input, 2 + 4 * msgs.len()).await;
    let queued = replies
        .iter()
        .filter(|r| r.starts_with("250 2.0.0 queued as FAKE"))
        .count();
    assert_eq!(queued, msgs.len(), "{proto}: {replies:?}");
    assert_eq!(mta.received().len(), msgs.len(), "{proto}");
    stop(d).await;
    log
}

/// What one dossier holds: the summary line, evidence.json, the page, the header blocks and
/// the original messages (file name and content).
struct Made {
    summary: String,
    evidence: Value,
    page: String,
    headers: Vec<(String, String)>,
    originals: Vec<(String, Vec<u8>)>,
}

/// The files of `dir` (name, bytes), by name; none if it does not exist.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            out.push((name, std::fs::read(&p).expect("read")));
        }
    }
    out.sort();
    out
}

/// `trackless --log LOG report dossier WHO --lang en --out DIR`, which must succeed.
fn dossier(log: &Path, who: &str, out: &Path) -> Made {
    let o: Output = trackless()
        .arg("--log")
        .arg(log)
        .args(["report", "dossier", who, "--lang", "en", "--out"])
        .arg(out)
        .output()
        .expect("report dossier");
    let said = ok(&o);
    // "dossier for WHO: N message(s), M with trackers; wrote PATHS": the paths differ.
    let summary = said
        .split_once("; wrote ")
        .unwrap_or_else(|| panic!("{}: unexpected summary {said:?}", log.display()))
        .0
        .to_string();
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let evidence = serde_json::from_str(&read(&out.join("evidence.json"))).expect("evidence.json");
    let headers = files(&out.join("headers"))
        .into_iter()
        .map(|(n, b)| (n, String::from_utf8(b).expect("utf-8 header block")))
        .collect();
    Made {
        summary,
        evidence,
        page: read(&out.join("dossier.html")),
        headers,
        originals: files(&out.join("originals")),
    }
}

/// The dossiers of every sender from the `filter` log, made once: what every other mode's
/// must equal.
fn reference() -> &'static [(String, Made)] {
    static REF: OnceLock<Vec<(String, Made)>> = OnceLock::new();
    REF.get_or_init(|| {
        let log = filter_log();
        let out = log.parent().expect("dir").join("dossiers");
        SENDERS
            .iter()
            .map(|(who, mine)| {
                let made = dossier(&log, who, &out.join(who));
                kept_as_received("filter", who, &made, &messages(), mine);
                (who.to_string(), made)
            })
            .collect()
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The dossier of `who` holds, as originals/N.eml, each of its messages exactly as the mode
/// received it (`received`, its messages at `mine`), with that file's SHA-256 in evidence.json.
fn kept_as_received(mode: &str, who: &str, made: &Made, received: &[Vec<u8>], mine: &[usize]) {
    let names: Vec<&str> = made.originals.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<String> = (1..=mine.len()).map(|n| format!("{n}.eml")).collect();
    assert_eq!(names, want, "{mode}: {who}: an original per message");
    let entries = made.evidence["messages"].as_array().expect("messages");
    for (((name, bytes), &i), m) in made.originals.iter().zip(mine).zip(entries) {
        assert!(
            bytes == &received[i],
            "{mode}: {who}: originals/{name} is not the message as received:\n{}",
            line_difference(
                &String::from_utf8_lossy(&received[i]),
                &String::from_utf8_lossy(bytes),
                ["received", "kept"]
            )
        );
        assert_eq!(
            m["original_sha256"].as_str(),
            Some(sha256_hex(bytes).as_str()),
            "{mode}: {who}: {name}"
        );
        assert_eq!(
            m["original_file"].as_str(),
            Some(format!("originals/{name}").as_str()),
            "{mode}: {who}"
        );
    }
}

/// `evidence` without what legitimately differs by the mode that filled the log (found by
/// comparing the dossiers of every mode here; anything else that differs is a bug):
/// - `messages[].original_sha256`: the SHA-256 of the original as the mode received it, which
///   differs with its line endings (LF from a mailbox on disk). Checked instead against the
///   message the mode was given, by [`kept_as_received`].
/// - The line endings of `messages[].headers`, the header block kept by `--keep-headers` (and
///   so of headers/N.txt and of the page's header appendix): the block is kept as the message
///   arrived, CRLF from SMTP, LMTP and the milter (and from `filter` and `pipe` here, fed the
///   CRLF corpus files), LF from a Maildir or an mbox on disk. Compared with every CRLF made
///   LF.
///
/// Never different here, but could be: `generated_from` names the kind of log (SQLite or
/// PostgreSQL; every log of this test is SQLite). The mode itself (`filter`, `milter`, …) is
/// in the log, not in the dossier. Everything else — the messages and their order, dates,
/// Message-IDs (a message without one has none in every mode: the key `batch` logs for it, to
/// know it on a second run, is no Message-ID's SHA-256 and is not shown as one), the trackers
/// with their tokens, the remote hosts with their operators, the ESPs with their facts and
/// evidence lines, the header blocks — is the same whichever mode saw the mail.
fn comparable(evidence: &Value) -> Value {
    let mut v = evidence.clone();
    for m in v["messages"].as_array_mut().expect("messages") {
        let m = m.as_object_mut().expect("message");
        m.remove("original_sha256");
        if let Some(Value::String(h)) = m.get_mut("headers") {
            *h = lf(h);
        }
    }
    v
}

/// `text` with every CRLF made LF.
fn lf(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The page without what [`comparable`] sets aside: the originals' SHA-256 and the line endings
/// of the header blocks.
fn comparable_page(page: &str, evidence: &Value) -> String {
    let mut page = lf(page);
    for m in evidence["messages"].as_array().expect("messages") {
        if let Some(h) = m["original_sha256"].as_str() {
            page = page.replace(h, "[SHA-256 of the original]");
        }
    }
    page
}

/// The JSON paths where `a` and `b` differ, with both values (for a readable failure).
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                differences(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), p, q, out);
            }
        }
        (Value::String(x), Value::String(y))
            if x != y && (x.contains('\n') || y.contains('\n')) =>
        {
            out.push(format!("{path}: {}", first_line_difference(x, y)))
        }
        _ if a != b => out.push(format!("{path}: filter {a} / this mode {b}")),
        _ => {}
    }
}

/// The dossier of every sender from `log` (filled by `mode`) says what the `filter` log's
/// says. `received`: the messages as the mode got them.
fn same_as_filter(mode: &str, log: &Path, received: &[Vec<u8>]) {
    let out = log.parent().expect("dir").join("dossiers");
    for ((who, mine), (ref_who, want)) in SENDERS.iter().zip(reference()) {
        assert_eq!(who, ref_who);
        let count = mine.len();
        let got = dossier(log, who, &out.join(who));
        kept_as_received(mode, who, &got, received, mine);
        assert_eq!(
            got.summary,
            format!("dossier for {who}: {count} message(s), {count} with trackers"),
            "{mode}"
        );
        assert_eq!(got.summary, want.summary, "{mode}: {who}");
        let (a, b) = (comparable(&want.evidence), comparable(&got.evidence));
        let mut diff = Vec::new();
        differences("", &a, &b, &mut diff);
        assert!(
            diff.is_empty(),
            "{mode}: {who}: evidence.json differs from the filter log's:\n{}",
            diff.join("\n")
        );
        assert_eq!(
            got.headers.len(),
            count,
            "{mode}: {who}: a header block per message"
        );
        for ((wname, wtext), (gname, gtext)) in want.headers.iter().zip(&got.headers) {
            assert_eq!(gname, wname, "{mode}: {who}");
            let (wtext, gtext) = (lf(wtext), lf(gtext));
            assert!(
                gtext == wtext,
                "{mode}: {who}: headers/{gname} differs from the filter log's:\n{}",
                first_line_difference(&wtext, &gtext)
            );
        }
        let (wp, gp) = (
            comparable_page(&want.page, &want.evidence),
            comparable_page(&got.page, &got.evidence),
        );
        assert!(
            wp == gp,
            "{mode}: {who}: dossier.html differs from the filter log's:\n{}",
            first_line_difference(&wp, &gp)
        );
    }
}

/// The first line where `a` (the `filter` log's) and `b` (this mode's) differ.
fn first_line_difference(a: &str, b: &str) -> String {
    line_difference(a, b, ["filter", "this mode"])
}

/// The first line where `a` and `b` differ, each shown after its label.
fn line_difference(a: &str, b: &str, [la, lb]: [&str; 2]) -> String {
    let (mut x, mut y) = (a.split_inclusive('\n'), b.split_inclusive('\n'));
    for n in 1.. {
        match (x.next(), y.next()) {
            (None, None) => return "(no line differs)".into(),
            (p, q) if p != q => return format!("line {n}:\n  {la:>9}: {p:?}\n  {lb:>9}: {q:?}"),
            _ => {}
        }
    }
    unreachable!()
}

/// The reference itself: every sender's messages, their Message-IDs and header blocks, the
/// ESPs and the pixels' hosts, as the corpus has them.
#[test]
fn the_filter_log_gives_the_reference_dossiers() {
    let r = reference();
    let (nw, glow) = (&r[0].1, &r[1].1);
    assert_eq!(
        nw.summary,
        "dossier for northwind.example: 2 message(s), 2 with trackers"
    );
    let m = nw.evidence["messages"].as_array().expect("messages");
    assert_eq!(
        m[0]["message_id"],
        "<RC0i6RoK8TDqkaIYGzJ1Bw@geopod-ismtpd-14>"
    );
    assert!(m[0]["message_id_sha256"].is_string());
    assert!(m[1]["message_id"].is_null() && m[1]["message_id_sha256"].is_null());
    assert_eq!(nw.evidence["esps"][0]["name"], "SendGrid");
    assert_eq!(nw.headers.len(), 2);
    assert!(nw.headers[1]
        .1
        .contains("Date: Wed, 11 Mar 2026 09:30:00 +0000"));
    let esps: Vec<&str> = glow.evidence["esps"]
        .as_array()
        .expect("esps")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(esps, ["Klaviyo", "SendGrid"]);
    for d in [nw, glow] {
        for m in d.evidence["messages"].as_array().expect("messages") {
            assert!(!m["trackers"].as_array().expect("trackers").is_empty());
            assert!(!m["remote"].as_array().expect("remote").is_empty());
            assert!(!m["esp_evidence"].as_array().expect("evidence").is_empty());
        }
    }
}

#[test]
fn pipe() {
    same_as_filter("pipe", &pipe_log(), &messages());
}

#[test]
fn batch_over_a_maildir() {
    same_as_filter("batch (Maildir)", &maildir_log(), &on_disk());
}

#[test]
fn batch_over_an_mbox() {
    same_as_filter("batch (mbox)", &mbox_log(), &on_disk());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milter() {
    let log = milter_log().await;
    tokio::task::spawn_blocking(move || same_as_filter("milter", &log, &messages()))
        .await
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_content_filter() {
    let log = content_filter_log("smtp").await;
    tokio::task::spawn_blocking(move || same_as_filter("smtp", &log, &messages()))
        .await
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_content_filter() {
    let log = content_filter_log("lmtp").await;
    tokio::task::spawn_blocking(move || same_as_filter("lmtp", &log, &messages()))
        .await
        .expect("join");
}
