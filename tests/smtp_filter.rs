//! The SMTP/LMTP content filter against a fake downstream MTA: pipelining, dot-stuffing both
//! ways, 8BITMIME/SMTPUTF8 and DSN parameters passed through, size limit, timeouts, and the
//! contract: 250 only after the downstream accepted; downstream down / 4xx / slow → 451;
//! downstream 5xx passed back; LMTP per-recipient replies.

mod common;

use common::corpus_crlf as corpus;
use common::fake_mta::{FakeMta, Final};
use common::smtp::{converse, exchange, forwarded, session, stuffed, transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use trackless::log::Keep;
use trackless::serve::forward::Target;
use trackless::serve::smtp::{serve, Proto, ServerConfig};
use trackless::serve::{Overload, Shared};
use trackless::Policy;

struct Filter {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

async fn start(proto: Proto, downstream: &str, max_size: usize, timeout: Duration) -> Filter {
    let std = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    std.set_nonblocking(true).expect("nb");
    let addr = std.local_addr().expect("addr");
    let listener = indymilter::EitherListener::Tcp(trackless::serve::listen::NoDelay(
        tokio::net::TcpListener::from_std(std).expect("tokio"),
    ));
    let shared = Arc::new(
        Shared::new(
            Policy::default(),
            2,
            Overload::Accept,
            None,
            Keep::default(),
            None,
        )
        .expect("threads"),
    );
    let cfg = Arc::new(ServerConfig {
        proto,
        hostname: "filter.test".into(),
        max_size,
        max_recipients: 100,
        command_timeout: timeout,
        data_timeout: timeout,
        downstream_timeout: Duration::from_secs(2),
        forward: downstream.parse::<Target>().expect("target"),
    });
    let (stop, shutdown) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, shared.clone(), cfg, 20, shutdown));
    Filter {
        addr,
        shared,
        _stop: stop,
    }
}

/// A filter speaking `proto` that forwards to `mta` over `scheme` (smtp or lmtp), with a
/// 10 MiB size limit and 10 s timeouts.
async fn start_to(proto: Proto, scheme: &str, mta: &FakeMta) -> Filter {
    start(
        proto,
        &format!("{scheme}://{}", mta.addr),
        10 << 20,
        Duration::from_secs(10),
    )
    .await
}

/// EHLO, a plain sender, one recipient (jane@example.net), `msg`, QUIT.
fn to_jane(msg: &[u8]) -> Vec<u8> {
    session(
        "EHLO",
        "MAIL FROM:<a@b.example>",
        &["RCPT TO:<jane@example.net>"],
        msg,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_transaction_is_rewritten_and_forwarded_with_dsn() {
    let mta = FakeMta::start(false).await;
    let f = start_to(Proto::Smtp, "smtp", &mta).await;
    let mut msg = corpus("mailgun-newsletter.eml");
    // A line starting with a dot must survive dot-stuffing both ways.
    msg.extend_from_slice(b".hidden line\r\n..two dots\r\n");
    let input = session(
        "EHLO",
        "MAIL FROM:<bounce@esp.example> SIZE=12345 BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef",
        &[
            "RCPT TO:<jane@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;jane@example.net",
            "RCPT TO:<bob@example.net>",
        ],
        &msg,
    );
    let replies = converse(f.addr, &input, 7).await;
    assert!(replies.len() >= 7, "{replies:?}");
    assert!(replies[0].starts_with("220 filter.test"), "{replies:?}");
    assert!(
        replies[1].starts_with("250 DSN"),
        "EHLO must end with the last capability: {replies:?}"
    );
    assert!(
        replies[2].starts_with("250")
            && replies[3].starts_with("250")
            && replies[4].starts_with("250")
    );
    assert!(replies[5].starts_with("354"));
    assert!(
        replies[6].starts_with("250 2.0.0 queued as FAKE"),
        "final reply is the downstream's: {replies:?}"
    );
    let got = mta.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(
        r.mail, "MAIL FROM:<bounce@esp.example> BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef",
        "SIZE dropped, the rest as sent"
    );
    assert_eq!(
        r.rcpts[0],
        "RCPT TO:<jane@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;jane@example.net"
    );
    assert_eq!(r.rcpts[1], "RCPT TO:<bob@example.net>");
    assert_eq!(
        r.data,
        forwarded(&msg),
        "downstream got something other than trackless filter's output"
    );
    assert!(r.data.ends_with(b".hidden line\r\n..two dots\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_8bit_utf8_message_passes_unchanged() {
    let mta = FakeMta::start(false).await;
    let f = start_to(Proto::Smtp, "smtp", &mta).await;
    let msg = "From: Jörg <jörg@bücher.example>\r\nTo: anna@example.net\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHallo Anna, schöne Grüße!\r\n".as_bytes().to_vec();
    let input = session(
        "EHLO",
        "MAIL FROM:<jörg@bücher.example> BODY=8BITMIME SMTPUTF8",
        &["RCPT TO:<anna@example.net>"],
        &msg,
    );
    let replies = converse(f.addr, &input, 6).await;
    assert!(replies[5].starts_with("250"), "{replies:?}");
    let got = mta.received();
    assert_eq!(
        got[0].mail,
        "MAIL FROM:<jörg@bücher.example> BODY=8BITMIME SMTPUTF8"
    );
    assert_eq!(got[0].data, msg);
    // Unchanged because it is clean, not because a panic was caught.
    let page = f.shared.render_metrics();
    for line in [
        "trackless_messages_unchanged_total 1",
        "trackless_panics_total 0",
        "trackless_errors_total 0",
    ] {
        assert!(page.lines().any(|l| l == line), "{line} not in\n{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_failures_map_to_the_safe_reply() {
    let mta = FakeMta::start(false).await;
    let f = start_to(Proto::Smtp, "smtp", &mta).await;
    let msg = corpus("sendgrid-newsletter.eml");
    for (fin, want) in [
        (Final::TempFail, "451"),
        (Final::PermFail, "554"),
        (Final::Slow(Duration::from_secs(4)), "451"),
        (Final::Accept, "250"),
    ] {
        mta.set_final(fin);
        let replies = converse(f.addr, &to_jane(&msg), 6).await;
        assert!(replies[5].starts_with(want), "{fin:?}: {replies:?}");
    }
    // A recipient the downstream refuses is refused here too; the other one still goes.
    let replies = converse(
        f.addr,
        &session(
            "EHLO",
            "MAIL FROM:<a@b.example>",
            &["RCPT TO:<reject@example.net>", "RCPT TO:<jane@example.net>"],
            &msg,
        ),
        7,
    )
    .await;
    assert!(replies[3].starts_with("550 5.1.1"), "{replies:?}");
    assert!(
        replies[4].starts_with("250") && replies[6].starts_with("250"),
        "{replies:?}"
    );
    // Downstream down: 451 at MAIL, nothing accepted.
    let dead = start(
        Proto::Smtp,
        "smtp://127.0.0.1:1",
        10 << 20,
        Duration::from_secs(10),
    )
    .await;
    let replies = converse(dead.addr, &to_jane(&msg), 6).await;
    assert!(replies[2].starts_with("451"), "{replies:?}");
    assert!(
        replies[3].starts_with("503"),
        "RCPT without a sender: {replies:?}"
    );
    assert!(!replies.iter().any(|r| r.starts_with("250 2.0.0 queued")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limit_and_command_timeout() {
    let mta = FakeMta::start(false).await;
    let f = start(
        Proto::Smtp,
        &format!("smtp://{}", mta.addr),
        5_000,
        Duration::from_secs(1),
    )
    .await;
    let msg = corpus("sendgrid-newsletter.eml");
    assert!(msg.len() > 5_000);
    let replies = converse(
        f.addr,
        &session(
            "EHLO",
            "MAIL FROM:<a@b.example> SIZE=999999",
            &["RCPT TO:<jane@example.net>"],
            &msg,
        ),
        3,
    )
    .await;
    assert!(replies[2].starts_with("552"), "{replies:?}");
    let replies = converse(f.addr, &to_jane(&msg), 6).await;
    assert!(replies[5].starts_with("552"), "{replies:?}");
    assert!(
        mta.received().is_empty(),
        "an oversized message went downstream"
    );
    // Idle client: 421 after the command timeout.
    let replies = converse(f.addr, b"EHLO idle.test\r\n", 2).await;
    assert!(replies[2].starts_with("421"), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_in_gives_one_reply_per_recipient_from_lmtp_downstream() {
    let mta = FakeMta::start(true).await;
    let f = start_to(Proto::Lmtp, "lmtp", &mta).await;
    let msg = corpus("brevo-newsletter.eml");
    let input = session(
        "LHLO",
        "MAIL FROM:<a@b.example>",
        &[
            "RCPT TO:<jane@example.net>",
            "RCPT TO:<quota@example.net>",
            "RCPT TO:<bob@example.net>",
        ],
        &msg,
    );
    let replies = converse(f.addr, &input, 10).await;
    // 220, LHLO, MAIL, 3×RCPT, 354, then three per-recipient replies, QUIT.
    assert!(replies[6].starts_with("354"), "{replies:?}");
    assert!(replies[7].starts_with("250"), "{replies:?}");
    assert!(
        replies[8].starts_with("451 4.2.2"),
        "over-quota recipient must be retried: {replies:?}"
    );
    assert!(replies[9].starts_with("250"), "{replies:?}");
    // EHLO is not LMTP.
    let replies = converse(f.addr, b"EHLO x\r\nQUIT\r\n", 2).await;
    assert!(replies[1].starts_with("500"), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_in_with_lmtp_downstream_never_loses_a_recipient() {
    let mta = FakeMta::start(true).await;
    let f = start_to(Proto::Smtp, "lmtp", &mta).await;
    let msg = corpus("brevo-newsletter.eml");
    let input = session(
        "EHLO",
        "MAIL FROM:<a@b.example>",
        &["RCPT TO:<jane@example.net>", "RCPT TO:<quota@example.net>"],
        &msg,
    );
    let replies = converse(f.addr, &input, 7).await;
    assert!(
        replies[6].starts_with("451"),
        "mixed LMTP results must be retried, not acknowledged: {replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_finishes_the_transaction_in_flight_then_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mta = FakeMta::start(false).await;
    let f = start_to(Proto::Smtp, "smtp", &mta).await;
    let mut s = tokio::net::TcpStream::connect(f.addr)
        .await
        .expect("connect");
    s.write_all(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<jane@example.net>\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains("2.1.5") {
        let n = s.read(&mut buf).await.expect("read");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Stop the filter while the transaction is open.
    drop(f);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let msg = stuffed(&corpus("personal-plain.eml"));
    s.write_all(b"DATA\r\n").await.expect("write");
    s.write_all(&msg).await.expect("write");
    let mut rest = String::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("timeout")
            .expect("read");
        if n == 0 {
            break;
        }
        rest.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        rest.contains("250 2.0.0 queued as FAKE"),
        "the transaction in flight was finished: {rest}"
    );
    assert!(
        rest.trim_end()
            .ends_with("421 4.3.2 shutting down, try again later"),
        "{rest}"
    );
    assert_eq!(mta.received().len(), 1);
}

/// A client that opens a transaction and then greets again (RFC 5321 4.1.4: EHLO/HELO implies
/// RSET) must be able to start a fresh transaction: the downstream's transaction is ended too,
/// or its next MAIL is refused as "nested".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_greeting_mid_transaction_resets_the_downstream_too() {
    let msg = corpus("mailgun-newsletter.eml");
    let want = forwarded(&msg);
    for (proto, lmtp, greetings) in [
        (Proto::Smtp, false, ["EHLO", "EHLO"]),
        (Proto::Smtp, false, ["EHLO", "HELO"]),
        (Proto::Lmtp, true, ["LHLO", "LHLO"]),
    ] {
        let mta = FakeMta::start(lmtp).await;
        let scheme = if lmtp { "lmtp" } else { "smtp" };
        let f = start_to(proto, scheme, &mta).await;
        let mut input = format!(
            "{} client.test\r\nMAIL FROM:<first@esp.example>\r\nRCPT TO:<jane@example.net>\r\n",
            greetings[0]
        )
        .into_bytes();
        input.extend_from_slice(&session(
            greetings[1],
            "MAIL FROM:<second@esp.example>",
            &["RCPT TO:<bob@example.net>"],
            &msg,
        ));
        // 220, greeting, MAIL, RCPT, greeting, MAIL, RCPT, 354, final, 221.
        let replies = converse(f.addr, &input, 9).await;
        let ctx = format!("{proto:?} {greetings:?}: {replies:?}");
        assert_eq!(replies.len(), 10, "{ctx}");
        assert!(replies[5].starts_with("250"), "second MAIL refused: {ctx}");
        assert!(replies[6].starts_with("250"), "{ctx}");
        assert!(replies[7].starts_with("354"), "{ctx}");
        assert!(
            replies[8].starts_with("250 2.0.0 queued as FAKE"),
            "the second transaction was not delivered: {ctx}"
        );
        let got = mta.received();
        assert_eq!(got.len(), 1, "{ctx}");
        assert_eq!(got[0].mail, "MAIL FROM:<second@esp.example>", "{ctx}");
        assert_eq!(got[0].rcpts, ["RCPT TO:<bob@example.net>"], "{ctx}");
        assert_eq!(got[0].data, want, "{ctx}");
    }
}

/// A downstream that refuses the DATA command keeps its transaction open; the filter passes the
/// refusal back and ends that transaction, so the next one on the same session goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_data_downstream_does_not_poison_the_next_transaction() {
    let mta = FakeMta::start(false).await;
    let f = start_to(Proto::Smtp, "smtp", &mta).await;
    let msg = corpus("sendgrid-newsletter.eml");
    mta.set_final(Final::RefuseData);
    let mut s = tokio::net::TcpStream::connect(f.addr)
        .await
        .expect("connect");
    let first = to_jane(&msg);
    // Without the QUIT: the session goes on.
    let first = &first[..first.len() - b"QUIT\r\n".len()];
    let replies = exchange(&mut s, first, 6).await;
    assert!(replies[5].starts_with("554 5.7.1"), "{replies:?}");
    mta.set_final(Final::Accept);
    let mut second = transaction(
        "MAIL FROM:<a@b.example>",
        &["RCPT TO:<jane@example.net>"],
        &msg,
    );
    second.extend_from_slice(b"QUIT\r\n");
    let replies = exchange(&mut s, &second, 5).await;
    assert!(replies[0].starts_with("250"), "{replies:?}");
    assert!(
        replies[3].starts_with("250 2.0.0 queued as FAKE"),
        "{replies:?}"
    );
    assert_eq!(mta.received().len(), 1);
}

/// A downstream connection kept between transactions that the downstream closed meanwhile (its
/// idle timeout: a 421 at the next command, or the socket simply gone) is replaced by a new one
/// for the next transaction instead of answering it 451.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_closed_while_idle_is_reconnected_for_the_next_transaction() {
    let msg = corpus("sendgrid-newsletter.eml");
    for close in ["421 4.4.2 fake Error: timeout exceeded\r\n", ""] {
        let mta = FakeMta::start(false).await;
        mta.set_idle_close(Some(close));
        let f = start_to(Proto::Smtp, "smtp", &mta).await;
        let mut s = tokio::net::TcpStream::connect(f.addr)
            .await
            .expect("connect");
        let first = to_jane(&msg);
        let first = &first[..first.len() - b"QUIT\r\n".len()];
        let replies = exchange(&mut s, first, 6).await;
        assert!(replies[5].starts_with("250 2.0.0 queued"), "{replies:?}");
        let mut second = transaction(
            "MAIL FROM:<a@b.example>",
            &["RCPT TO:<bob@example.net>"],
            &msg,
        );
        second.extend_from_slice(b"QUIT\r\n");
        let replies = exchange(&mut s, &second, 5).await;
        assert!(replies[0].starts_with("250"), "{close:?}: {replies:?}");
        assert!(
            replies[3].starts_with("250 2.0.0 queued as FAKE"),
            "{close:?}: {replies:?}"
        );
        let got = mta.received();
        assert_eq!(got.len(), 2, "{close:?}");
        assert_eq!(got[1].rcpts, ["RCPT TO:<bob@example.net>"], "{close:?}");
    }
}
