//! `trackless smtp` / `trackless lmtp`: the after-queue content filter (Postfix FILTER_README)
//! and the LMTP proxy in front of Dovecot. Commands are parsed with smtp-proto; the
//! envelope is relayed to the downstream server as it arrives (so every RCPT gets the
//! downstream's own answer), the message is rewritten after DATA and handed on, and the final
//! reply is the downstream's. The contract that keeps mail safe: `250` only after the
//! downstream accepted the message; unreachable, slow or temporarily failing downstream →
//! `451` so the MTA retries; a permanent downstream error is passed back.

use super::forward::{Downstream, Reply, Target};
use super::{Envelope, Overload, Rewrite, Shared};
use crate::log::Mode;
use smtp_proto::request::receiver::DataReceiver;
use smtp_proto::Request;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;

/// Protocol spoken to the upstream MTA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Smtp,
    Lmtp,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub proto: Proto,
    pub hostname: String,
    /// Largest message accepted (advertised as SIZE); above the rewrite limit messages are
    /// handed on unchanged, above this they are refused.
    pub max_size: usize,
    pub max_recipients: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub downstream_timeout: Duration,
    pub forward: Target,
}

/// Longest command line accepted.
const MAX_LINE: usize = 4096;

struct Transaction {
    sender: Option<(String, String)>,
    /// Recipients the downstream accepted: (address, raw parameters).
    accepted: Vec<(String, String)>,
}

impl Transaction {
    fn new() -> Transaction {
        Transaction {
            sender: None,
            accepted: Vec::new(),
        }
    }
}

/// The parameters of a MAIL/RCPT line after the `<address>`, as written.
fn raw_params(line: &str) -> String {
    match line.find('>') {
        Some(i) => line[i + 1..].trim().to_string(),
        None => String::new(),
    }
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, reply: &str) -> std::io::Result<()> {
    w.write_all(reply.as_bytes()).await?;
    w.flush().await
}

/// Serve one upstream connection. When `stop` turns true the session finishes the transaction
/// in progress, then says 421 and closes (the MTA reconnects to the restarted filter).
pub async fn session<S>(
    stream: S,
    shared: Arc<Shared>,
    cfg: Arc<ServerConfig>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let name = match cfg.proto {
        Proto::Smtp => "ESMTP",
        Proto::Lmtp => "LMTP",
    };
    send(
        &mut wr,
        &format!("220 {} {name} trackless\r\n", cfg.hostname),
    )
    .await?;
    // Our id for this connection's log lines (the MTA's queue id does not reach us over SMTP).
    static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let session_id = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut messages = 0u64;
    let mut greeted = false;
    let mut tx = Transaction::new();
    let mut down: Option<Downstream> = None;
    let mut line = Vec::with_capacity(512);
    let mut stopping = *stop.borrow();
    loop {
        line.clear();
        if stopping && tx.sender.is_none() {
            let _ = send(&mut wr, "421 4.3.2 shutting down, try again later\r\n").await;
            break;
        }
        // Wait for a command; a stop request between transactions ends the session at once.
        let read = loop {
            let limit = (MAX_LINE + 2).saturating_sub(line.len()) as u64;
            let mut limited = (&mut rd).take(limit);
            tokio::select! {
                r = tokio::time::timeout(cfg.command_timeout, limited.read_until(b'\n', &mut line)) => break r,
                changed = stop.changed(), if !stopping => {
                    stopping = changed.is_err() || *stop.borrow();
                    if stopping && tx.sender.is_none() && line.is_empty() {
                        let _ = send(&mut wr, "421 4.3.2 shutting down, try again later\r\n").await;
                        return Ok(());
                    }
                }
            }
        };
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let _ = send(&mut wr, "421 4.4.2 command timeout, closing\r\n").await;
                break;
            }
        };
        if n == 0 {
            break; // client went away
        }
        if !line.ends_with(b"\n") {
            send(&mut wr, "500 5.5.2 line too long\r\n").await?;
            // Skip the rest of the over-long line.
            let mut skip = Vec::new();
            let _ =
                tokio::time::timeout(cfg.command_timeout, rd.read_until(b'\n', &mut skip)).await;
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let request = Request::parse(&mut line.iter()).map(|r| r.into_owned());
        match request {
            Ok(Request::Ehlo { host }) | Ok(Request::Helo { host }) if cfg.proto == Proto::Smtp => {
                let _ = host;
                // A new greeting implies RSET (RFC 5321 4.1.4): end the transaction here and
                // downstream, or the next MAIL would be "nested" there.
                if tx.sender.is_some() {
                    reset_downstream(&mut down).await;
                }
                tx = Transaction::new();
                greeted = true;
                let reply = if text.trim_start().to_ascii_uppercase().starts_with("EHLO") {
                    format!(
                        "250-{}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n",
                        cfg.hostname, cfg.max_size
                    )
                } else {
                    format!("250 {}\r\n", cfg.hostname)
                };
                send(&mut wr, &reply).await?;
            }
            Ok(Request::Lhlo { .. }) if cfg.proto == Proto::Lmtp => {
                if tx.sender.is_some() {
                    reset_downstream(&mut down).await;
                }
                tx = Transaction::new();
                greeted = true;
                send(
                    &mut wr,
                    &format!(
                        "250-{}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n",
                        cfg.hostname, cfg.max_size
                    ),
                )
                .await?;
            }
            Ok(Request::Ehlo { .. }) | Ok(Request::Helo { .. }) | Ok(Request::Lhlo { .. }) => {
                send(&mut wr, "500 5.5.1 wrong greeting for this protocol\r\n").await?;
            }
            Ok(Request::Mail { from }) => {
                if !greeted {
                    send(&mut wr, "503 5.5.1 say hello first\r\n").await?;
                } else if tx.sender.is_some() {
                    send(&mut wr, "503 5.5.1 nested MAIL command\r\n").await?;
                } else if from.size > cfg.max_size {
                    send(&mut wr, "552 5.3.4 message too big\r\n").await?;
                } else {
                    let params = raw_params(&text);
                    // A connection kept from an earlier transaction may have been closed by
                    // the downstream meanwhile (its idle timeout: a 421, or the socket gone):
                    // then one new connection is tried before answering.
                    let mut reply = Err(Reply::tempfail("not available"));
                    for _ in 0..2 {
                        let reused = down.is_some();
                        if down.is_none() {
                            match Downstream::connect(
                                &cfg.forward,
                                &cfg.hostname,
                                cfg.downstream_timeout,
                            )
                            .await
                            {
                                Ok(d) => down = Some(d),
                                Err(r) => {
                                    reply = Err(r);
                                    break;
                                }
                            }
                        }
                        reply = match down.as_mut() {
                            Some(d) => d.mail(&from.address, &params).await,
                            None => Err(Reply::tempfail("not available")),
                        };
                        let gone = match &reply {
                            Err(_) => true,
                            Ok(r) => r.code == 421,
                        };
                        if !gone {
                            break;
                        }
                        down = None;
                        if !reused {
                            break;
                        }
                    }
                    let reply = reply.unwrap_or_else(|r| {
                        down = None;
                        r
                    });
                    if reply.is_positive() {
                        tx.sender = Some((from.address.clone(), params));
                    }
                    send(&mut wr, &reply.wire()).await?;
                }
            }
            Ok(Request::Rcpt { to }) => {
                if tx.sender.is_none() {
                    send(&mut wr, "503 5.5.1 need MAIL first\r\n").await?;
                } else if tx.accepted.len() >= cfg.max_recipients {
                    send(&mut wr, "452 4.5.3 too many recipients\r\n").await?;
                } else {
                    let params = raw_params(&text);
                    let reply = match down.as_mut() {
                        Some(d) => d.rcpt(&to.address, &params).await,
                        None => Err(Reply::tempfail("not available")),
                    };
                    let reply = reply.unwrap_or_else(|r| {
                        down = None;
                        r
                    });
                    if reply.is_positive() {
                        tx.accepted.push((to.address.clone(), params));
                    }
                    send(&mut wr, &reply.wire()).await?;
                }
            }
            Ok(Request::Data) => {
                if tx.sender.is_none() {
                    send(&mut wr, "503 5.5.1 need MAIL first\r\n").await?;
                    continue;
                }
                if tx.accepted.is_empty() {
                    send(&mut wr, "554 5.5.1 no valid recipients\r\n").await?;
                    continue;
                }
                send(&mut wr, "354 go ahead, end with <CRLF>.<CRLF>\r\n").await?;
                let message = match receive_data(&mut rd, &cfg).await? {
                    Some(m) => m,
                    None => {
                        // Over the size limit: refuse it (the MTA bounces it), reset downstream.
                        let replies =
                            replies_for(&cfg, &tx, Reply::new(552, "5.3.4 message too big"));
                        for r in replies {
                            send(&mut wr, &r.wire()).await?;
                        }
                        reset_downstream(&mut down).await;
                        tx = Transaction::new();
                        continue;
                    }
                };
                messages += 1;
                let id = format!("{session_id}.{messages}");
                let replies = deliver(&shared, &cfg, &mut down, &tx, message, id).await;
                for r in replies {
                    send(&mut wr, &r.wire()).await?;
                }
                tx = Transaction::new();
            }
            Ok(Request::Rset) => {
                tx = Transaction::new();
                reset_downstream(&mut down).await;
                send(&mut wr, "250 2.0.0 ok\r\n").await?;
            }
            Ok(Request::Noop { .. }) => send(&mut wr, "250 2.0.0 ok\r\n").await?,
            Ok(Request::Quit) => {
                send(&mut wr, &format!("221 2.0.0 {} closing\r\n", cfg.hostname)).await?;
                break;
            }
            Ok(Request::Vrfy { .. }) => {
                send(&mut wr, "252 2.1.5 cannot verify, send anyway\r\n").await?
            }
            Ok(Request::Help { .. }) => {
                send(&mut wr, "214 2.0.0 trackless content filter\r\n").await?
            }
            Ok(_) => send(&mut wr, "502 5.5.1 command not implemented\r\n").await?,
            Err(smtp_proto::Error::UnknownCommand) => {
                send(&mut wr, "500 5.5.1 unknown command\r\n").await?
            }
            Err(smtp_proto::Error::InvalidSenderAddress) => {
                send(&mut wr, "501 5.1.7 bad sender address\r\n").await?
            }
            Err(smtp_proto::Error::InvalidRecipientAddress) => {
                send(&mut wr, "501 5.1.3 bad recipient address\r\n").await?
            }
            Err(smtp_proto::Error::UnsupportedParameter { param }) => {
                send(
                    &mut wr,
                    &format!("555 5.5.4 unsupported parameter {param}\r\n"),
                )
                .await?
            }
            Err(_) => send(&mut wr, "501 5.5.4 syntax error\r\n").await?,
        }
    }
    if let Some(d) = down.take() {
        d.quit().await;
    }
    Ok(())
}

/// End the downstream's transaction (RSET). A downstream that does not answer it is dropped;
/// the next MAIL connects afresh.
async fn reset_downstream(down: &mut Option<Downstream>) {
    if let Some(d) = down.as_mut() {
        if d.rset().await.is_err() {
            *down = None;
        }
    }
}

/// Read the DATA section (dot-unstuffed). `None` when it exceeds the size limit (the rest is
/// read and discarded so the session stays in sync).
async fn receive_data<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    cfg: &ServerConfig,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut receiver = DataReceiver::new();
    let mut message = Vec::with_capacity(64 << 10);
    let mut too_big = false;
    loop {
        let chunk = match tokio::time::timeout(cfg.data_timeout, rd.fill_buf()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "data timeout",
                ))
            }
        };
        if chunk.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in DATA",
            ));
        }
        let mut iter = chunk.iter();
        let done = receiver.ingest(&mut iter, &mut message);
        let used = chunk.len() - iter.as_slice().len();
        rd.consume(used);
        if message.len() > cfg.max_size {
            too_big = true;
            message.clear();
        }
        if done {
            break;
        }
    }
    Ok((!too_big).then_some(message))
}

/// One reply per accepted recipient in LMTP, one in SMTP.
fn replies_for(cfg: &ServerConfig, tx: &Transaction, r: Reply) -> Vec<Reply> {
    match cfg.proto {
        Proto::Smtp => vec![r],
        Proto::Lmtp => vec![r; tx.accepted.len()],
    }
}

/// Rewrite the message (the original on any problem) and hand it to the downstream server.
async fn deliver(
    shared: &Arc<Shared>,
    cfg: &ServerConfig,
    down: &mut Option<Downstream>,
    tx: &Transaction,
    message: Vec<u8>,
    session: String,
) -> Vec<Reply> {
    let envelope = Envelope {
        sender: tx.sender.as_ref().map(|(a, _)| a.clone()),
        recipients: tx.accepted.iter().map(|(a, _)| a.clone()).collect(),
        queue_id: None,
        session: Some(session),
    };
    let mode = match cfg.proto {
        Proto::Smtp => Mode::Smtp,
        Proto::Lmtp => Mode::Lmtp,
    };
    let original = Arc::new(message);
    let to_send: Vec<u8> = match shared.rewrite(original.clone(), &envelope, mode).await {
        Rewrite::Changed { bytes, .. } => bytes,
        Rewrite::Unchanged | Rewrite::Failed(_) => original.to_vec(),
        Rewrite::Overloaded => match shared.overload {
            Overload::Accept => original.to_vec(),
            Overload::Tempfail => {
                reset_downstream(down).await;
                return replies_for(cfg, tx, Reply::new(451, "4.3.2 busy, try again later"));
            }
        },
    };
    let Some(d) = down.as_mut() else {
        return replies_for(cfg, tx, Reply::tempfail("not available"));
    };
    let downstream_lmtp = d.lmtp;
    let replies = match d.data(&to_send, tx.accepted.len()).await {
        Ok(r) => r,
        Err(e) => {
            *down = None;
            return replies_for(cfg, tx, e);
        }
    };
    // Temporary downstream failures become 451 (never a 2xx that was not earned).
    let norm = |r: &Reply| {
        if r.is_positive() || r.code >= 500 {
            r.clone()
        } else {
            Reply::new(451, r.text.clone())
        }
    };
    match (cfg.proto, downstream_lmtp) {
        (Proto::Lmtp, true) => replies.iter().map(norm).collect(),
        (Proto::Lmtp, false) => vec![norm(&replies[0]); tx.accepted.len()],
        (Proto::Smtp, false) => vec![norm(&replies[0])],
        (Proto::Smtp, true) => {
            // Several LMTP answers, one SMTP reply: all accepted → 250; all refused for
            // good → that refusal; a mix → 451 so nothing is lost (the MTA retries every
            // recipient; those already delivered may get a second copy).
            if replies.iter().all(Reply::is_positive) || replies.iter().all(|r| r.code >= 500) {
                vec![replies[0].clone()]
            } else {
                tracing::warn!(
                    "downstream LMTP accepted some recipients and refused others: answering 451"
                );
                vec![Reply::new(
                    451,
                    "4.3.0 partial delivery downstream; try again later",
                )]
            }
        }
    }
}

/// Accept connections until `shutdown`; at most `max_connections` at once.
pub async fn serve(
    listener: super::listen::Listener,
    shared: Arc<Shared>,
    cfg: Arc<ServerConfig>,
    max_connections: usize,
    shutdown: impl std::future::Future,
) -> std::io::Result<()> {
    use indymilter::Listener as _;
    let mut listener = listener;
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            s = listener.accept() => s,
            _ = &mut shutdown => break,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (shared, cfg, stop) = (shared.clone(), cfg.clone(), stop_rx.clone());
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                tasks.spawn(async move {
                    let _permit = permit;
                    if let Err(e) = session(stream, shared, cfg, stop).await {
                        tracing::debug!(error = %e, "session ended");
                    }
                });
            }
            Err(_) => {
                tasks.spawn(async move {
                    let mut s = stream;
                    let _ = send(
                        &mut s,
                        "421 4.3.2 too many connections, try again later\r\n",
                    )
                    .await;
                });
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    // Finish the transactions in flight; idle sessions are closed with 421.
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}
