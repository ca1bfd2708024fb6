//! The milter, spoken to as Postfix does (indymilter-test is the MTA side): negotiation,
//! body and header replacement equal to `trackless filter`, clean mail untouched, oversized
//! and malformed messages accepted unchanged, abort mid-message, many connections at once.

mod common;

use common::corpus_crlf;
use common::milter::rewritten;
use indymilter_test::{Actions, EomAction, ProtoOpts, Status, TestConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use trackless::log::Keep;
use trackless::serve::{milter, Overload, Shared};
use trackless::Limits;
use trackless::{neutralise, Policy};

const MTA_ACTIONS: Actions = Actions::all();

struct Milter {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    shared: Arc<Shared>,
}

impl Milter {
    async fn start(policy: Policy, workers: usize, overload: Overload) -> Milter {
        Milter::serve(
            Shared::new(policy, workers, overload, None, Keep::default(), None).expect("threads"),
            200,
        )
        .await
    }

    /// Serve `shared` on a fresh local port, at most `max_connections` at once.
    async fn serve(shared: Shared, max_connections: usize) -> Milter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(shared);
        let (stop, shutdown) = oneshot::channel::<()>();
        let task = tokio::spawn(milter::run_until(
            listener,
            shared.clone(),
            max_connections,
            shutdown,
        ));
        Milter {
            addr,
            stop: Some(stop),
            task,
            shared,
        }
    }

    /// A message accepted without changes looks the same whether there was nothing to do or a
    /// panic was caught: the counters tell them apart.
    fn assert_counted(&self, messages: u64, unchanged: u64) {
        let page = self.shared.render_metrics();
        for line in [
            format!("trackless_messages_total {messages}"),
            format!("trackless_messages_unchanged_total {unchanged}"),
            "trackless_panics_total 0".to_string(),
            "trackless_errors_total 0".to_string(),
        ] {
            assert!(page.lines().any(|l| l == line), "{line} not in\n{page}");
        }
    }

    async fn connect(&self) -> TestConnection {
        TestConnection::configure()
            .read_timeout(Duration::from_secs(20))
            .write_timeout(Duration::from_secs(20))
            .available_actions(MTA_ACTIONS)
            .available_opts(ProtoOpts::all())
            .open_tcp(self.addr)
            .await
            .expect("connect")
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.expect("join").expect("milter ran");
    }
}

/// Header fields as an MTA sends them: name and the value after the colon (leading space
/// kept), folded lines joined with LF.
fn fields(raw: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let head = trackless::internals::top_block(raw);
    let body = raw[head.len()..].to_vec();
    let mut out: Vec<(String, String)> = Vec::new();
    let text = String::from_utf8_lossy(head);
    for line in text.split_inclusive('\n') {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push('\n');
                last.1.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.to_string(), v.to_string()));
        }
    }
    (out, body)
}

async fn send(conn: &mut TestConnection, raw: &[u8]) -> (Vec<EomAction>, Status) {
    let (headers, body) = fields(raw);
    // No stage before end of message waits for an answer (the MTA agreed not to).
    assert_eq!(
        conn.mail(["<bounce@esp.example>"]).await.expect("mail"),
        Status::Noreply
    );
    assert_eq!(
        conn.rcpt(["<jane@example.net>"]).await.expect("rcpt"),
        Status::Noreply
    );
    for (n, v) in &headers {
        let st = conn.header(n.as_str(), v.as_str()).await.expect("header");
        assert_eq!(st, Status::Noreply);
    }
    assert_eq!(conn.eoh().await.expect("eoh"), Status::Noreply);
    for chunk in body.chunks(65_535) {
        let st = conn.body(chunk.to_vec()).await.expect("body");
        assert_eq!(st, Status::Noreply);
    }
    let (actions, status) = conn.eom().await.expect("eom");
    (actions.actions, status)
}

/// What the filter makes of the message, as the milter rebuilds it (CRLF).
fn expected(raw: &[u8]) -> (Vec<u8>, Option<String>) {
    let out = neutralise(raw, &Policy::default());
    let head = trackless::internals::top_block(&out.bytes);
    (out.bytes[head.len()..].to_vec(), out.header)
}

/// The body the milter sent in its ReplaceBody actions, joined.
fn replaced_body(actions: &[EomAction]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            EomAction::ReplaceBody { chunk } => Some(chunk.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiates_only_what_it_needs() {
    let m = Milter::start(Policy::default(), 2, Overload::Accept).await;
    let conn = m.connect().await;
    assert_eq!(
        conn.negotiated_actions(),
        Actions::ADD_HEADER | Actions::CHANGE_HEADER | Actions::REPLACE_BODY
    );
    let opts = conn.negotiated_opts();
    for o in [
        ProtoOpts::LEADING_SPACE,
        ProtoOpts::NO_CONNECT,
        ProtoOpts::NO_HELO,
        ProtoOpts::NOREPLY_MAIL,
        ProtoOpts::NOREPLY_RCPT,
        ProtoOpts::NOREPLY_HEADER,
        ProtoOpts::NOREPLY_EOH,
        ProtoOpts::NOREPLY_BODY,
    ] {
        assert!(opts.contains(o), "{o:?} not negotiated: {opts:?}");
    }
    conn.close().await.expect("close");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_like_the_filter_and_replaces_a_forged_header() {
    let m = Milter::start(Policy::default(), 2, Overload::Accept).await;
    let mut conn = m.connect().await;
    for name in [
        "mailgun-newsletter.eml",
        "klaviyo-over-sendgrid.eml",
        "ses-custom-domain-latin1.eml",
        "forward-rfc822-base64.eml",
    ] {
        let mut raw = b"X-Trackless: pixels=0; forged\r\n".to_vec();
        raw.extend_from_slice(&corpus_crlf(name));
        let (actions, status) = send(&mut conn, &raw).await;
        assert_eq!(status, Status::Accept, "{name}");
        let (body, header) = expected(&raw);
        let replaced = replaced_body(&actions);
        assert_eq!(replaced, body, "{name}: body differs from trackless filter");
        assert!(
            actions.contains(&EomAction::DeleteHeader {
                name: c"X-Trackless".into(),
                index: 1
            }),
            "{name}: {actions:?}"
        );
        let header = header.expect("header");
        let added = actions.iter().find_map(|a| match a {
            EomAction::AddHeader { name, value } if name.as_bytes() == b"X-Trackless" => {
                Some(value.to_string_lossy().into_owned())
            }
            _ => None,
        });
        assert_eq!(
            added.map(|v| v.replace("\n ", " ").trim().to_string()),
            Some(header),
            "{name}"
        );
    }
    conn.close().await.expect("close");
    m.stop().await;
}

/// The value of one counter on the metrics page.
fn counter(shared: &Shared, name: &str) -> u64 {
    let page = shared.render_metrics();
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{page}"))
}

/// A small message is rewritten on the connection's thread; one that goes over that short
/// budget is rewritten again on a worker with the full time limit (same result), and for a
/// while no message is tried there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_its_inline_budget_is_rewritten_on_a_worker() {
    let raw = corpus_crlf("mailgun-newsletter.eml");
    let (body, _) = expected(&raw);
    for budget in [Duration::from_secs(5), Duration::ZERO] {
        let mut shared = Shared::new(
            Policy::default(),
            2,
            Overload::Accept,
            None,
            Keep::default(),
            None,
        )
        .expect("threads");
        shared.inline.budget = budget;
        let m = Milter::serve(shared, 10).await;
        let mut conn = m.connect().await;
        for _ in 0..2 {
            let (actions, status) = send(&mut conn, &raw).await;
            assert_eq!(status, Status::Accept);
            assert!(
                replaced_body(&actions) == body,
                "budget {budget:?}: not rewritten like trackless filter"
            );
        }
        let (inline, moved) = if budget.is_zero() { (0, 1) } else { (2, 0) };
        assert_eq!(
            counter(&m.shared, "trackless_rewrites_inline_total"),
            inline,
            "budget {budget:?}"
        );
        assert_eq!(
            counter(&m.shared, "trackless_rewrites_moved_total"),
            moved,
            "budget {budget:?}"
        );
        m.assert_counted(2, 0);
        conn.close().await.expect("close");
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_mail_gets_no_action() {
    let m = Milter::start(Policy::default(), 2, Overload::Accept).await;
    let mut conn = m.connect().await;
    for name in [
        "personal-plain.eml",
        "clean-newsletter.eml",
        "smime-signed.eml",
    ] {
        let (actions, status) = send(&mut conn, &corpus_crlf(name)).await;
        assert_eq!(status, Status::Accept, "{name}");
        assert!(actions.is_empty(), "{name}: {actions:?}");
    }
    m.assert_counted(3, 3);
    conn.close().await.expect("close");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_are_accepted_unchanged() {
    let policy = Policy {
        limits: Limits {
            max_size: 4096,
            ..Limits::default()
        },
        ..Policy::default()
    };
    let m = Milter::start(policy, 2, Overload::Accept).await;
    let mut conn = m.connect().await;
    let (actions, status) = send(&mut conn, &corpus_crlf("mailgun-newsletter.eml")).await;
    assert_eq!(status, Status::Accept);
    assert!(
        actions.is_empty(),
        "oversized message was modified: {actions:?}"
    );
    // Malformed: broken MIME and binary junk in the body.
    let mut junk = b"Content-Type: multipart/mixed; boundary=\"x\"\r\nContent-Transfer-Encoding: base64\r\n\r\n--x\r\n".to_vec();
    junk.extend((0u8..=255).cycle().take(2000));
    let (actions, status) = send(&mut conn, &junk).await;
    assert_eq!(status, Status::Accept);
    assert!(actions.is_empty());
    // Header fields alone over the limit (and no body): not buffered past it either.
    let mut padded = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: padded\r\n".to_vec();
    for i in 0..100 {
        padded.extend(format!("X-Pad-{i}: {}\r\n", "p".repeat(60)).as_bytes());
    }
    padded.extend(b"\r\n");
    let (actions, status) = send(&mut conn, &padded).await;
    assert_eq!(status, Status::Accept);
    assert!(actions.is_empty(), "{actions:?}");
    // All counted as messages left alone (the oversized ones with their reason); the junk
    // did not crash the core.
    m.assert_counted(3, 3);
    let page = m.shared.render_metrics();
    assert!(
        page.lines()
            .any(|l| l == "trackless_passthrough_total{reason=\"too-large\"} 2"),
        "{page}"
    );
    conn.close().await.expect("close");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_mid_message_then_next_message_works() {
    let m = Milter::start(Policy::default(), 2, Overload::Accept).await;
    let mut conn = m.connect().await;
    let raw = corpus_crlf("mailgun-newsletter.eml");
    let (headers, body) = fields(&raw);
    conn.mail(["<a@b.example>"]).await.expect("mail");
    conn.rcpt(["<jane@example.net>"]).await.expect("rcpt");
    for (n, v) in headers.iter().take(5) {
        conn.header(n.as_str(), v.as_str()).await.expect("header");
    }
    conn.eoh().await.expect("eoh");
    conn.body(body[..100].to_vec()).await.expect("body");
    conn.abort().await.expect("abort");
    // The next message on the same connection is complete and correct.
    let (actions, status) = send(&mut conn, &raw).await;
    assert_eq!(status, Status::Accept);
    let (expected_body, _) = expected(&raw);
    let replaced = replaced_body(&actions);
    assert_eq!(replaced, expected_body);
    conn.close().await.expect("close");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once() {
    let m = Milter::start(Policy::default(), 4, Overload::Accept).await;
    let names = [
        "mailgun-newsletter.eml",
        "sendgrid-newsletter.eml",
        "personal-plain.eml",
        "mandrill-shipping.eml",
        "brevo-newsletter.eml",
    ];
    let mut tasks = Vec::new();
    for i in 0..60 {
        let raw = corpus_crlf(names[i % names.len()]);
        let mut conn = m.connect().await;
        tasks.push(tokio::spawn(async move {
            let (actions, status) = send(&mut conn, &raw).await;
            conn.close().await.expect("close");
            let (body, header) = expected(&raw);
            let replaced = replaced_body(&actions);
            let ok = replaced == body || (header.is_none() && replaced.is_empty());
            if !ok {
                eprintln!(
                    "message {i}: replaced {} bytes, expected {} (header {header:?})",
                    replaced.len(),
                    body.len()
                );
            }
            (status, header.is_some(), ok)
        }));
    }
    let mut rewritten = 0;
    for t in tasks {
        let (status, changed, ok) = t.await.expect("task");
        assert_eq!(status, Status::Accept);
        assert!(
            ok,
            "a concurrent message was rewritten differently from trackless filter"
        );
        rewritten += u64::from(changed);
    }
    // personal-plain is the clean one: 12 of the 60 messages are left alone.
    assert_eq!(rewritten, 48);
    m.assert_counted(60, 12);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_workers_follow_the_overload_rule() {
    for overload in [Overload::Tempfail, Overload::Accept] {
        let mut shared = Shared::new(Policy::default(), 1, overload, None, Keep::default(), None)
            .expect("threads");
        shared.queue_wait = Duration::from_millis(200);
        let m = Milter::serve(shared, 10).await;
        let shared = m.shared.clone();
        let raw = corpus_crlf("mailgun-newsletter.eml");
        // Every worker busy.
        let held = shared.workers().acquire_owned().await.expect("permit");
        let mut conn = m.connect().await;
        let (actions, status) = send(&mut conn, &raw).await;
        assert!(
            actions.is_empty(),
            "{overload:?}: message modified while saturated"
        );
        match overload {
            Overload::Tempfail => assert!(matches!(status, Status::Tempfail { .. }), "{status:?}"),
            Overload::Accept => assert_eq!(status, Status::Accept),
        }
        // Free again: the next message is rewritten.
        drop(held);
        let (actions, status) = send(&mut conn, &raw).await;
        assert_eq!(status, Status::Accept);
        assert!(rewritten(&actions));
        conn.close().await.expect("close");
        m.stop().await;
    }
}

/// A single-part 7bit message whose rewrite makes a line too long for SMTP is re-encoded as
/// quoted-printable: the milter must change the top-level Content-Transfer-Encoding field with
/// the body (or add it where there was none), or the MTA would deliver a quoted-printable body
/// labelled 7bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencoded_single_part_message_gets_its_encoding_field() {
    let policy = Policy {
        opaque_links: trackless::OpaqueLinks::Mark,
        ..Policy::default()
    };
    let m = Milter::start(policy.clone(), 2, Overload::Accept).await;
    let mut row = String::from("<table><tr>");
    while row.len() < 950 {
        row.push_str("<td><a href=\"https://u1316.ct.sendgrid.net/ls/click?upn=u001.abc-2Bdef-3D\">Shop</a></td>");
    }
    row.push_str("</tr></table>");
    for cte_field in ["Content-Transfer-Encoding: 7bit\r\n", ""] {
        let raw = format!(
            "From: Shop <news@shop.example>\r\nTo: jane@example.net\r\nSubject: Sale\r\n\
             Message-ID: <long-line@shop.example>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/html; charset=utf-8\r\n{cte_field}\r\n\
             <html><body>\r\n{row}\r\n</body></html>\r\n"
        )
        .into_bytes();
        let want = neutralise(&raw, &policy);
        assert!(want.changed);
        let mut conn = m.connect().await;
        let (actions, status) = send(&mut conn, &raw).await;
        assert_eq!(status, Status::Accept);
        let cte: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                EomAction::ChangeHeader { name, index, value }
                    if name.to_bytes() == b"Content-Transfer-Encoding" =>
                {
                    Some(("change", *index, value.to_string_lossy().into_owned()))
                }
                EomAction::AddHeader { name, value }
                    if name.to_bytes() == b"Content-Transfer-Encoding" =>
                {
                    Some(("add", 0, value.to_string_lossy().into_owned()))
                }
                _ => None,
            })
            .collect();
        let expected_action = if cte_field.is_empty() {
            ("add", 0, " quoted-printable".to_string())
        } else {
            ("change", 1, " quoted-printable".to_string())
        };
        assert_eq!(cte, vec![expected_action], "{actions:?}");
        let body = replaced_body(&actions);
        let head = trackless::internals::top_block(&want.bytes);
        assert_eq!(body, want.bytes[head.len()..].to_vec());
        conn.close().await.expect("close");
    }
    m.stop().await;
}

/// A message whose first line is blank has no header fields: the filter and the milter both
/// pass it on as it came (`not-mail`), rather than reading the body's first lines as its
/// header (the milter used to reject the filter's rewrite of it as a header change it could
/// not replay; the message fuzzer found the difference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_header_fields_passes_as_it_came() {
    let m = Milter::start(Policy::default(), 2, Overload::Accept).await;
    let mut conn = m.connect().await;
    let mut raw = b"\r\n".to_vec();
    raw.extend_from_slice(&corpus_crlf("mailgun-newsletter.eml"));
    let out = neutralise(&raw, &Policy::default());
    assert!(!out.changed);
    assert!(
        out.skips()
            .any(|f| f.reason.map(|r| r.as_str()) == Some("not-mail")),
        "{:?}",
        out.findings
    );
    let (actions, status) = send(&mut conn, &raw).await;
    assert_eq!(status, Status::Accept);
    assert!(actions.is_empty(), "{actions:?}");
    // The same message with its header block is rewritten by both.
    let raw = corpus_crlf("mailgun-newsletter.eml");
    let (actions, _) = send(&mut conn, &raw).await;
    assert_eq!(replaced_body(&actions), expected(&raw).0);
    conn.close().await.expect("close");
    m.stop().await;
}
