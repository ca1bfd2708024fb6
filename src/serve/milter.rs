//! `trackless milter`: the before-queue integration (Postfix `smtpd_milters`). One task per
//! MTA connection speaks the protocol (`wire`): it collects the envelope, the header fields
//! (exact, with their leading space) and the body; at end of message it runs the core and, only
//! when something changed, replaces the body and the `X-Trackless` header, all its replies
//! written at once. Every failure accepts the message unchanged; a broken or unknown packet
//! ends the connection (the MTA then applies its `milter_default_action`).

mod wire;

use super::{Envelope, Overload, Rewrite, Shared};
use crate::log::Mode;
use crate::mail::header::{self, fold, HEADER};
use crate::mail::outcome::SkipReason;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};
/// The reply codes the session writes (public for the checks that read its replies).
pub use wire::reply;
use wire::{action, cmd, opt, Conn, Replies};

/// How long a connection may stay silent (libmilter's default).
const IDLE: Duration = Duration::from_secs(7210);
/// When the daemon stops, how long a message under way may wait for the MTA's next packet.
const GRACE: Duration = Duration::from_secs(30);

/// What we ask the MTA for: the changes we make, no stage we do not use, exact header values,
/// and no reply awaited before end of message (we never refuse a sender, recipient or header,
/// so the MTA need not wait for a round trip at each stage).
const ACTIONS: u32 = action::ADD_HEADER | action::CHANGE_HEADER | action::REPLACE_BODY;
const OPTS: u32 = opt::NO_CONNECT
    | opt::NO_HELO
    | opt::NO_DATA
    | opt::NO_UNKNOWN
    | opt::LEADING_SPACE
    | opt::NOREPLY_MAIL
    | opt::NOREPLY_RCPT
    | opt::NOREPLY_HEADER
    | opt::NOREPLY_EOH
    | opt::NOREPLY_BODY;

/// Per-connection state (one message at a time).
#[derive(Debug, Default)]
struct Session {
    /// The options the MTA granted.
    opts: u32,
    /// The message as the MTA sends it: header fields, then (after end of headers) the body
    /// chunks appended in place, so that end of message hands it to the rewrite uncopied.
    headers: Vec<u8>,
    /// Where the body starts in `headers` (its length at end of headers).
    head_len: usize,
    oversize: bool,
    /// The size limit, read from the policy once per message (at MAIL).
    max_size: usize,
    /// A message is under way (MAIL seen, end of message or abort not yet).
    in_message: bool,
    /// `X-Trackless` headers the message arrived with (to delete them by index).
    x_trackless: u32,
    /// The MTA's queue id (macro `i`), from whichever stage sent it last.
    queue_id: Option<String>,
    envelope: Envelope,
}

impl Session {
    fn reset_message(&mut self) {
        self.headers = Vec::new();
        self.head_len = 0;
        self.oversize = false;
        self.in_message = false;
        self.x_trackless = 0;
        self.envelope = Envelope::default();
    }

    fn leading_space(&self) -> bool {
        self.opts & opt::LEADING_SPACE != 0
    }

    /// Answer a stage unless the MTA agreed not to wait for it.
    fn go_on(&self, noreply: u32, out: &mut Replies) {
        if self.opts & noreply == 0 {
            out.status(reply::CONTINUE);
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Serve one MTA connection until it quits, breaks the protocol, stays silent too long, or
/// the daemon stops (then between messages: a message under way is finished first). Public
/// for the fuzz target and its replay in `cargo test`, which play a broken MTA over an
/// in-memory stream.
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut conn = Conn::new(io);
    let mut s = Session::default();
    let mut grace = stop.clone();
    loop {
        let idle = !s.in_message;
        let next = tokio::select! {
            r = tokio::time::timeout(IDLE, conn.read()) => r,
            _ = stop.wait_for(|&v| v), if idle => return Ok(()),
            // Stopping with a message under way: the MTA has that long to send its next packet.
            _ = async {
                let _ = grace.wait_for(|&v| v).await;
                tokio::time::sleep(GRACE).await;
            }, if !idle => return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "stopping: the MTA sent nothing more of its message",
            )),
        };
        let Some((code, at)) = next.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?? else {
            return Ok(());
        };
        let (payload, out) = conn.payload(at);
        match code {
            cmd::OPTNEG => {
                let Some((version, actions, opts)) = wire::negotiation(payload) else {
                    return Err(invalid("short negotiation packet"));
                };
                if version < wire::VERSION {
                    return Err(invalid(&format!("milter protocol version {version}")));
                }
                s = Session {
                    opts: OPTS & opts,
                    ..Session::default()
                };
                out.negotiate(ACTIONS & actions, s.opts);
            }
            cmd::MACRO => {
                // The stage they are for, then names and values. Only the queue id is kept.
                let mut it = wire::strings(payload.get(1..).unwrap_or_default());
                while let (Some(name), Some(value)) = (it.next(), it.next()) {
                    if matches!(name, b"i" | b"{i}") {
                        s.queue_id = Some(text(value));
                    }
                }
            }
            cmd::CONNECT | cmd::HELO | cmd::DATA | cmd::UNKNOWN => out.status(reply::CONTINUE),
            cmd::MAIL => {
                s.reset_message();
                s.in_message = true;
                s.max_size = shared.policy().limits.max_size;
                s.envelope.sender = wire::strings(payload).next().map(text);
                s.go_on(opt::NOREPLY_MAIL, out);
            }
            cmd::RCPT => {
                if let Some(r) = wire::strings(payload).next() {
                    s.envelope
                        .recipients
                        .push(text(r).trim_matches(['<', '>']).to_string());
                }
                s.go_on(opt::NOREPLY_RCPT, out);
            }
            cmd::HEADER => {
                let mut it = wire::strings(payload);
                let name = it.next().unwrap_or_default();
                let value = it.next().unwrap_or_default();
                header_field(&mut s, name, value);
                s.go_on(opt::NOREPLY_HEADER, out);
            }
            cmd::EOH => {
                s.headers.extend_from_slice(b"\r\n");
                s.head_len = s.headers.len();
                s.go_on(opt::NOREPLY_EOH, out);
            }
            cmd::BODY => {
                body(&mut s, payload);
                s.go_on(opt::NOREPLY_BODY, out);
            }
            cmd::BODY_END => {
                // Sendmail may send the last chunk with it.
                if !payload.is_empty() {
                    body(&mut s, payload);
                }
                eom(&mut s, &shared, conn.replies()).await;
                s.reset_message();
                s.queue_id = None;
            }
            cmd::ABORT => {
                s.reset_message();
                s.queue_id = None;
            }
            cmd::QUIT_NC => {
                // The MTA reuses the connection for another SMTP client.
                s.reset_message();
                s.queue_id = None;
            }
            cmd::QUIT => return Ok(()),
            other => return Err(invalid(&format!("unknown milter command {other:#04x}"))),
        }
        conn.flush().await?;
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A header field as the MTA sends it: its name and its value (folds with bare LF).
fn header_field(s: &mut Session, name: &[u8], value: &[u8]) {
    if !s.in_message {
        return;
    }
    if name.eq_ignore_ascii_case(HEADER.as_bytes()) {
        s.x_trackless += 1;
    }
    // Header fields count towards the size limit too: past it nothing more is buffered (what
    // is kept still names the message in the log), and end of message accepts it unchanged.
    if s.oversize || s.headers.len() + name.len() + value.len() > s.max_size {
        s.oversize = true;
        return;
    }
    s.headers.extend_from_slice(name);
    s.headers.push(b':');
    if !s.leading_space() {
        s.headers.push(b' ');
    }
    // Folded values arrive with bare LF line breaks; the message we rebuild is CRLF.
    for (i, line) in value.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            s.headers.extend_from_slice(b"\r\n");
        }
        s.headers
            .extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    s.headers.extend_from_slice(b"\r\n");
}

fn body(s: &mut Session, chunk: &[u8]) {
    if s.oversize || !s.in_message {
        return;
    }
    if s.head_len == 0 {
        // A body without end of headers first (the MTA skipped EOH): the fields end here.
        s.head_len = s.headers.len();
    }
    if s.headers.len() + chunk.len() > s.max_size {
        // Too large to rewrite: stop buffering (the header fields stay, to name the message
        // in the log); end of message accepts it unchanged.
        s.oversize = true;
        s.headers.truncate(s.head_len);
        s.headers.shrink_to_fit();
        return;
    }
    s.headers.extend_from_slice(chunk);
}

/// End of message: rewrite, and answer with the changes and the verdict.
async fn eom(s: &mut Session, shared: &Shared, out: &mut Replies) {
    s.envelope.queue_id = s.queue_id.clone();
    if !s.in_message {
        // End of message without MAIL (a confused MTA): nothing to rewrite.
        out.status(reply::ACCEPT);
        return;
    }
    let status = if s.oversize {
        tracing::info!(
            queue_id = %s.envelope.queue_id.as_deref().unwrap_or("-"),
            "message over the size limit: accepted unchanged"
        );
        // Counted and logged from its headers, like every message.
        shared.passed_unread(&s.headers, &s.envelope, Mode::Milter, SkipReason::TooLarge);
        reply::ACCEPT
    } else {
        let raw = Arc::new(std::mem::take(&mut s.headers));
        match shared.rewrite(raw.clone(), &s.envelope, Mode::Milter).await {
            Rewrite::Changed { bytes, header } => {
                apply(s, &raw, &bytes, &header, out);
                reply::ACCEPT
            }
            Rewrite::Unchanged | Rewrite::Failed(_) => reply::ACCEPT,
            Rewrite::Overloaded => match shared.overload {
                Overload::Accept => reply::ACCEPT,
                Overload::Tempfail => reply::TEMPFAIL,
            },
        }
    };
    out.status(status);
}

/// The top-level header fields of `msg` other than `X-Trackless`: (name, value after the
/// colon without the final line ending).
fn fields_of(msg: &[u8]) -> Vec<(&[u8], &[u8])> {
    let (head, _) = super::split_message(msg);
    let head = head
        .strip_suffix(b"\r\n")
        .or_else(|| head.strip_suffix(b"\n"))
        .unwrap_or(head);
    header::fields(head)
        .into_iter()
        .map(|(a, b)| {
            let field = &head[a..b];
            let name = header::field_name(field);
            let value = field.get(name.len() + 1..).unwrap_or(b"");
            let value = value
                .strip_suffix(b"\r\n")
                .or_else(|| value.strip_suffix(b"\n"))
                .unwrap_or(value);
            (name, value)
        })
        .filter(|(name, _)| !name.eq_ignore_ascii_case(HEADER.as_bytes()))
        .collect()
}

/// A change to the top-level `Content-Transfer-Encoding` field, the one header besides ours a
/// rewrite may make (a single-part 7bit message re-encoded as quoted-printable).
enum CteChange {
    None,
    Replace(String),
    Add(String),
}

/// What the rewrite did to the top-level header fields, as a milter can say it; `Err` when it
/// did something else (then nothing is applied: a body without its matching header would be
/// worse than the trackers).
fn header_change(raw: &[u8], bytes: &[u8], leading_space: bool) -> Result<CteChange, ()> {
    let before = fields_of(raw);
    let after = fields_of(bytes);
    if before == after {
        return Ok(CteChange::None);
    }
    fn is_cte(field: &&(&[u8], &[u8])) -> bool {
        field.0.eq_ignore_ascii_case(b"content-transfer-encoding")
    }
    type Fields<'a> = Vec<&'a (&'a [u8], &'a [u8])>;
    let (old, before): (Fields, Fields) = before.iter().partition(is_cte);
    let (new, after): (Fields, Fields) = after.iter().partition(is_cte);
    if before != after {
        return Err(());
    }
    let [(_, value)] = new.as_slice() else {
        return Err(());
    };
    // Milter header values fold with bare LF.
    let mut value = String::from_utf8_lossy(value).replace("\r\n", "\n");
    if !leading_space {
        value = value.trim_start_matches(' ').to_string();
    }
    match old.len() {
        0 => Ok(CteChange::Add(value)),
        1 => Ok(CteChange::Replace(value)),
        _ => Err(()),
    }
}

/// The changes: new body, the transfer-encoding field when the rewrite changed it, old
/// `X-Trackless` headers deleted, ours appended (so the result is what `trackless filter`
/// writes, apart from the MTA's own headers).
fn apply(s: &Session, raw: &[u8], bytes: &[u8], header: &str, out: &mut Replies) {
    let Ok(cte) = header_change(raw, bytes, s.leading_space()) else {
        tracing::error!(
            queue_id = %s.envelope.queue_id.as_deref().unwrap_or("-"),
            "the rewrite changed header fields a milter cannot replay: accepted unchanged"
        );
        return;
    };
    let (_, new_body) = super::split_message(bytes);
    out.replace_body(new_body);
    const CTE: &[u8] = b"Content-Transfer-Encoding";
    match cte {
        CteChange::None => {}
        CteChange::Replace(v) => out.change_header(1, CTE, v.as_bytes()),
        CteChange::Add(v) => out.add_header(CTE, v.as_bytes()),
    }
    for index in (1..=s.x_trackless).rev() {
        out.change_header(index, HEADER.as_bytes(), b"");
    }
    // The value folded as the filter folds it; milter header values fold with "\n".
    let folded = fold(HEADER, header, b"\n");
    let mut value = folded.get(HEADER.len() + 1..).unwrap_or_default();
    if !s.leading_space() {
        while let Some(rest) = value.strip_prefix(b" ") {
            value = rest;
        }
    }
    out.add_header(HEADER.as_bytes(), value);
}

/// Run the milter until `shutdown` completes: at most `max_connections` MTA connections at
/// once (the next waits to be accepted); on shutdown no new one, and each open one ends once
/// its message under way is answered.
pub async fn run_until(
    mut listener: impl indymilter::Listener,
    shared: Arc<Shared>,
    max_connections: usize,
    shutdown: impl std::future::Future,
) -> io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut sessions = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        while let Some(ended) = sessions.try_join_next() {
            if let Err(e) = ended {
                tracing::error!(error = %e, "bug: a milter connection's task failed");
            }
        }
        match accepted {
            Ok(io) => {
                let shared = shared.clone();
                let stopping = stopping.clone();
                sessions.spawn(async move {
                    if let Err(e) = session(io, shared, stopping).await {
                        tracing::warn!(error = %e, "milter connection ended");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let _ = stop.send(true);
    while sessions.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Keep;
    use crate::Policy;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const MESSAGE: &[&[u8]] = &[
        b"From\0 News <news@shop.example>\0",
        b"Subject\0 Sale\0",
        b"MIME-Version\0 1.0\0",
        b"Content-Type\0 text/html; charset=utf-8\0",
    ];
    const BODY: &[u8] = b"<html><body><p>Hello</p>\r\n<img src=\"https://u1316.ct.sendgrid.net/wf/open?upn=abc\" width=\"1\" height=\"1\">\r\n</body></html>\r\n";

    fn packet(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(code);
        v.extend_from_slice(payload);
        v
    }

    /// The milter's side of a duplex stream, counting the writes it makes.
    struct Counted {
        io: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.io).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// Replies read from the MTA's side until (and with) the final verdict.
    async fn verdict(mta: &mut DuplexStream) -> Vec<(u8, Vec<u8>)> {
        let mut got = Vec::new();
        loop {
            let len = mta.read_u32().await.expect("reply length") as usize;
            let code = mta.read_u8().await.expect("reply code");
            let mut payload = vec![0; len - 1];
            mta.read_exact(&mut payload).await.expect("reply");
            got.push((code, payload));
            if matches!(
                code,
                reply::ACCEPT | reply::TEMPFAIL | reply::CONTINUE | reply::OPTNEG
            ) {
                return got;
            }
        }
    }

    fn message(queue_id: &[u8]) -> Vec<u8> {
        let mut m = packet(
            cmd::MACRO,
            &[&[cmd::MAIL][..], b"i\0", queue_id, b"\0"].concat(),
        );
        m.extend(packet(cmd::MAIL, b"<bounce@esp.example>\0"));
        m.extend(packet(cmd::RCPT, b"<jane@example.net>\0"));
        for f in MESSAGE {
            m.extend(packet(cmd::HEADER, f));
        }
        m.extend(packet(cmd::EOH, b""));
        m.extend(packet(cmd::BODY, BODY));
        m.extend(packet(cmd::BODY_END, b""));
        m
    }

    fn start() -> (
        DuplexStream,
        Arc<AtomicUsize>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let (mta, milter) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(
            Shared::new(
                Policy::default(),
                1,
                Overload::Accept,
                None,
                Keep::default(),
                None,
            )
            .expect("threads"),
        );
        let (stop, stopping) = watch::channel(false);
        let io = Counted {
            io: milter,
            writes: writes.clone(),
        };
        let task = tokio::spawn(session(io, shared, stopping));
        (mta, writes, stop, task)
    }

    async fn negotiate(mta: &mut DuplexStream) -> (u32, u32) {
        let mut p = 6u32.to_be_bytes().to_vec();
        p.extend_from_slice(&0x1ffu32.to_be_bytes());
        p.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
        mta.write_all(&packet(cmd::OPTNEG, &p))
            .await
            .expect("write");
        let r = verdict(mta).await;
        assert_eq!(r.len(), 1);
        let (code, p) = &r[0];
        assert_eq!(*code, reply::OPTNEG);
        let (version, actions, opts) = wire::negotiation(p).expect("three numbers");
        assert_eq!(version, 6);
        (actions, opts)
    }

    /// Everything the milter says at end of message (new body, headers, verdict) goes out in
    /// one write, after none at all for the stages before it.
    #[tokio::test]
    async fn end_of_message_is_answered_in_one_write() {
        let (mut mta, writes, _stop, _task) = start();
        let (actions, opts) = negotiate(&mut mta).await;
        assert_eq!(actions, ACTIONS);
        assert_eq!(opts, OPTS);
        let before = writes.load(Ordering::Relaxed);
        mta.write_all(&message(b"4Xyz1")).await.expect("write");
        let r = verdict(&mut mta).await;
        let codes: Vec<u8> = r.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            codes,
            vec![reply::REPLACE_BODY, reply::ADD_HEADER, reply::ACCEPT],
            "{r:?}"
        );
        let body = &r[0].1;
        assert!(!body.windows(8).any(|w| w == b"/wf/open"), "pixel kept");
        assert!(
            r[1].1.starts_with(b"X-Trackless\0 pixels=1"),
            "{:?}",
            String::from_utf8_lossy(&r[1].1)
        );
        assert_eq!(writes.load(Ordering::Relaxed) - before, 1);
    }

    /// The MTA may reuse a connection for the next SMTP client (QUIT_NC) or abort a message:
    /// nothing of the one before leaks into the next.
    #[tokio::test]
    async fn abort_and_quit_nc_start_afresh() {
        let (mut mta, _, _stop, task) = start();
        negotiate(&mut mta).await;
        let full = message(b"4Xyz2");
        // Half a message, then abort.
        let cut = full.len() - packet(cmd::BODY_END, b"").len() - packet(cmd::BODY, BODY).len();
        mta.write_all(&full[..cut]).await.expect("write");
        mta.write_all(&packet(cmd::ABORT, b""))
            .await
            .expect("write");
        mta.write_all(&packet(cmd::QUIT_NC, b""))
            .await
            .expect("write");
        mta.write_all(&full).await.expect("write");
        let r = verdict(&mut mta).await;
        let body = &r[0].1;
        assert_eq!(r[0].0, reply::REPLACE_BODY);
        assert!(
            body.starts_with(b"<html><body><p>Hello</p>"),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(body.windows(5).filter(|w| w == b"Hello").count(), 1);
        mta.write_all(&packet(cmd::QUIT, b"")).await.expect("write");
        task.await.expect("join").expect("session ended cleanly");
    }

    /// A packet the protocol does not have, or one too long, ends the connection (the MTA
    /// then applies its default action).
    #[tokio::test]
    async fn an_unknown_or_oversized_packet_ends_the_connection() {
        for bad in [
            packet(b'z', b""),
            ((wire::MAX_PACKET + 1) as u32).to_be_bytes().to_vec(),
        ] {
            let (mut mta, _, _stop, task) = start();
            negotiate(&mut mta).await;
            mta.write_all(&bad).await.expect("write");
            let ended = task.await.expect("join");
            assert!(ended.is_err(), "{bad:?}");
        }
    }

    /// On stop, a connection between messages closes at once; one with a message under way
    /// finishes it first.
    #[tokio::test]
    async fn stopping_finishes_the_message_under_way() {
        let (mut mta, _, stop, task) = start();
        negotiate(&mut mta).await;
        let full = message(b"4Xyz3");
        let (first, rest) = full.split_at(40);
        mta.write_all(first).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(true).expect("stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished(), "closed with a message under way");
        mta.write_all(rest).await.expect("write");
        let r = verdict(&mut mta).await;
        assert_eq!(r.last().map(|(c, _)| *c), Some(reply::ACCEPT));
        task.await
            .expect("join")
            .expect("closed cleanly after the message");
    }
}
