//! `trackless milter`: the before-queue integration (Postfix `smtpd_milters`), on indymilter.
//! The callbacks follow the protocol's stages: collect the envelope, headers (exact, with
//! their leading space) and body; at end of message run the core on a worker and, only when
//! something changed, replace the body and the `X-Trackless` header. Every failure accepts the
//! message unchanged.

use super::{Envelope, Overload, Rewrite, Shared};
use crate::log::Mode;
use crate::mail::header::{self, fold, HEADER};
use crate::mail::outcome::SkipReason;
use bytes::Bytes;
use indymilter::{
    Actions, Callbacks, Config, ContextActions, EomContext, NegotiateContext, ProtoOpts, Status,
};
use std::ffi::CString;
use std::sync::Arc;

/// Per-connection state (one message at a time).
#[derive(Debug, Default)]
pub struct Session {
    leading_space: bool,
    noreply_mail: bool,
    noreply_rcpt: bool,
    noreply_header: bool,
    noreply_eoh: bool,
    noreply_body: bool,
    /// The message as the MTA sends it: header fields, then (after end of headers) the body
    /// chunks appended in place, so that end of message hands it to the rewrite uncopied.
    headers: Vec<u8>,
    /// Where the body starts in `headers` (its length at end of headers).
    head_len: usize,
    oversize: bool,
    /// `X-Trackless` headers the message arrived with (to delete them by index).
    x_trackless: i32,
    envelope: Envelope,
}

impl Session {
    fn reset_message(&mut self) {
        self.headers = Vec::new();
        self.head_len = 0;
        self.oversize = false;
        self.x_trackless = 0;
        self.envelope = Envelope::default();
    }
}

/// The answer to a stage the MTA agreed to send without waiting for one.
fn go_on(noreply: bool) -> Status {
    if noreply {
        Status::Noreply
    } else {
        Status::Continue
    }
}

fn text(c: &CString) -> String {
    String::from_utf8_lossy(c.as_bytes()).into_owned()
}

/// Build the callbacks for a milter sharing `shared`.
pub fn callbacks(shared: Arc<Shared>) -> Callbacks<Session> {
    let s_eom = shared.clone();
    let s_header = shared.clone();
    let s_body = shared;
    Callbacks::new()
        .on_negotiate(|cx, actions, opts| Box::pin(negotiate(cx, actions, opts)))
        .on_mail(|cx, args| {
            Box::pin(async move {
                let s = cx.data.get_or_insert_with(Session::default);
                s.reset_message();
                s.envelope.sender = args.first().map(text);
                go_on(s.noreply_mail)
            })
        })
        .on_rcpt(|cx, args| {
            Box::pin(async move {
                let Some(s) = cx.data.as_mut() else {
                    return Status::Continue;
                };
                if let Some(r) = args.first() {
                    s.envelope
                        .recipients
                        .push(text(r).trim_matches(['<', '>']).to_string());
                }
                go_on(s.noreply_rcpt)
            })
        })
        .on_header(move |cx, name, value| {
            let max = s_header.policy().limits.max_size;
            Box::pin(async move {
                let Some(s) = cx.data.as_mut() else {
                    return Status::Continue;
                };
                let name = name.as_bytes();
                if name.eq_ignore_ascii_case(HEADER.as_bytes()) {
                    s.x_trackless += 1;
                }
                // Header fields count towards the size limit too: past it nothing more is
                // buffered (what is kept still names the message in the log), and end of
                // message accepts it unchanged.
                if s.oversize || s.headers.len() + name.len() + value.as_bytes().len() > max {
                    s.oversize = true;
                    return go_on(s.noreply_header);
                }
                s.headers.extend_from_slice(name);
                s.headers.push(b':');
                if !s.leading_space {
                    s.headers.push(b' ');
                }
                // Folded values arrive with bare LF line breaks; the message we rebuild is CRLF.
                for (i, line) in value.as_bytes().split(|&b| b == b'\n').enumerate() {
                    if i > 0 {
                        s.headers.extend_from_slice(b"\r\n");
                    }
                    s.headers
                        .extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
                }
                s.headers.extend_from_slice(b"\r\n");
                go_on(s.noreply_header)
            })
        })
        .on_eoh(|cx| {
            Box::pin(async move {
                let Some(s) = cx.data.as_mut() else {
                    return Status::Continue;
                };
                s.headers.extend_from_slice(b"\r\n");
                s.head_len = s.headers.len();
                go_on(s.noreply_eoh)
            })
        })
        .on_body(move |cx, chunk| {
            let shared = s_body.clone();
            Box::pin(async move { body(cx, chunk, &shared) })
        })
        .on_eom(move |cx| {
            let shared = s_eom.clone();
            Box::pin(async move { eom(cx, &shared).await })
        })
        .on_abort(|cx| {
            Box::pin(async move {
                if let Some(s) = cx.data.as_mut() {
                    s.reset_message();
                }
                Status::Continue
            })
        })
}

async fn negotiate(
    cx: &mut NegotiateContext<Session>,
    actions: Actions,
    opts: ProtoOpts,
) -> Status {
    cx.requested_actions =
        (Actions::ADD_HEADER | Actions::CHANGE_HEADER | Actions::REPLACE_BODY) & actions;
    // Skip stages we do not use; ask for exact header values; no replies before end of
    // message (we never refuse a sender, recipient or header, so the MTA need not wait for a
    // round trip at each stage).
    let wanted = ProtoOpts::NO_CONNECT
        | ProtoOpts::NO_HELO
        | ProtoOpts::NO_DATA
        | ProtoOpts::NO_UNKNOWN
        | ProtoOpts::LEADING_SPACE
        | ProtoOpts::NOREPLY_MAIL
        | ProtoOpts::NOREPLY_RCPT
        | ProtoOpts::NOREPLY_HEADER
        | ProtoOpts::NOREPLY_EOH
        | ProtoOpts::NOREPLY_BODY;
    cx.requested_opts = wanted & opts;
    let granted = cx.requested_opts;
    cx.data = Some(Session {
        leading_space: granted.contains(ProtoOpts::LEADING_SPACE),
        noreply_mail: granted.contains(ProtoOpts::NOREPLY_MAIL),
        noreply_rcpt: granted.contains(ProtoOpts::NOREPLY_RCPT),
        noreply_header: granted.contains(ProtoOpts::NOREPLY_HEADER),
        noreply_eoh: granted.contains(ProtoOpts::NOREPLY_EOH),
        noreply_body: granted.contains(ProtoOpts::NOREPLY_BODY),
        ..Session::default()
    });
    Status::Continue
}

fn body(cx: &mut indymilter::Context<Session>, chunk: Bytes, shared: &Shared) -> Status {
    let Some(s) = cx.data.as_mut() else {
        return Status::Continue;
    };
    let noreply = go_on(s.noreply_body);
    if s.oversize {
        return noreply;
    }
    if s.head_len == 0 {
        // A body without end of headers first (the MTA skipped EOH): the fields end here.
        s.head_len = s.headers.len();
    }
    let max = shared.policy().limits.max_size;
    if s.headers.len() + chunk.len() > max {
        // Too large to rewrite: stop buffering (the header fields stay, to name the message
        // in the log); end of message accepts it unchanged.
        s.oversize = true;
        s.headers.truncate(s.head_len);
        s.headers.shrink_to_fit();
        return noreply;
    }
    s.headers.extend_from_slice(&chunk);
    noreply
}

async fn eom(cx: &mut EomContext<Session>, shared: &Shared) -> Status {
    let Some(mut s) = cx.data.take() else {
        return Status::Accept;
    };
    s.envelope.queue_id = cx
        .macros
        .get(c"i")
        .map(|v| String::from_utf8_lossy(v.to_bytes()).into_owned());
    let status = if s.oversize {
        tracing::info!(
            queue_id = %s.envelope.queue_id.as_deref().unwrap_or("-"),
            "message over the size limit: accepted unchanged"
        );
        // Counted and logged from its headers, like every message.
        shared.passed_unread(&s.headers, &s.envelope, Mode::Milter, SkipReason::TooLarge);
        Status::Accept
    } else {
        let raw = Arc::new(std::mem::take(&mut s.headers));
        match shared.rewrite(raw.clone(), &s.envelope, Mode::Milter).await {
            Rewrite::Changed { bytes, header } => apply(cx, &s, &raw, &bytes, &header).await,
            Rewrite::Unchanged | Rewrite::Failed(_) => Status::Accept,
            Rewrite::Overloaded => match shared.overload {
                Overload::Accept => Status::Accept,
                Overload::Tempfail => Status::Tempfail,
            },
        }
    };
    s.reset_message();
    cx.data = Some(s);
    status
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

/// Send the changes: new body, the transfer-encoding field when the rewrite changed it, old
/// `X-Trackless` headers deleted, ours appended (so the result is what `trackless filter`
/// writes, apart from the MTA's own headers).
async fn apply(
    cx: &mut EomContext<Session>,
    s: &Session,
    raw: &[u8],
    bytes: &[u8],
    header: &str,
) -> Status {
    let Ok(cte) = header_change(raw, bytes, s.leading_space) else {
        tracing::error!(
            queue_id = %s.envelope.queue_id.as_deref().unwrap_or("-"),
            "the rewrite changed header fields a milter cannot replay: accepted unchanged"
        );
        return Status::Accept;
    };
    let (_, new_body) = super::split_message(bytes);
    if let Err(e) = cx.actions.replace_body(new_body).await {
        tracing::error!(error = ?e, "replace_body failed: message accepted as the MTA has it");
        return Status::Accept;
    }
    const CTE: &str = "Content-Transfer-Encoding";
    let changed = match cte {
        CteChange::None => Ok(()),
        CteChange::Replace(v) => cx.actions.change_header(CTE, 1, Some(v)).await,
        CteChange::Add(v) => cx.actions.add_header(CTE, v).await,
    };
    if let Err(e) = changed {
        tracing::error!(error = ?e, "could not change the Content-Transfer-Encoding header");
    }
    for index in (1..=s.x_trackless).rev() {
        if let Err(e) = cx
            .actions
            .change_header(HEADER, index, None::<CString>)
            .await
        {
            tracing::error!(error = ?e, "could not delete a forged X-Trackless header");
        }
    }
    // The value folded as the filter folds it; milter header values fold with "\n".
    let folded = fold(HEADER, header, b"\n");
    let mut value = String::from_utf8_lossy(&folded[HEADER.len() + 1..]).into_owned();
    if !s.leading_space {
        value = value.trim_start_matches(' ').to_string();
    }
    if let Err(e) = cx.actions.add_header(HEADER, value).await {
        tracing::error!(error = ?e, "could not add the X-Trackless header");
    }
    Status::Accept
}

/// Milter settings.
pub fn config(max_connections: usize) -> Config {
    Config {
        max_connections,
        actions: Actions::ADD_HEADER | Actions::CHANGE_HEADER | Actions::REPLACE_BODY,
        ..Config::default()
    }
}

/// Run the milter until `shutdown` completes (messages in flight are finished).
pub async fn run_until(
    listener: impl indymilter::Listener,
    shared: Arc<Shared>,
    max_connections: usize,
    shutdown: impl std::future::Future,
) -> std::io::Result<()> {
    indymilter::run(
        listener,
        callbacks(shared),
        config(max_connections),
        shutdown,
    )
    .await
}
