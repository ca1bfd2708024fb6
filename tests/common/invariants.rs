//! The properties every rewrite must keep, as one check shared by the integration tests, the
//! fuzz targets (`fuzz/`, which include this file by path) and the regression test that
//! replays the fuzzers' reproducers (`tests/fuzz_regressions.rs`):
//! - no panic was caught (`neutralise` turns a panic into an `internal-error` finding and
//!   passes the message through, so "it did not crash" must be asked this way);
//! - an unchanged outcome returns the input bytes;
//! - a changed message re-parses with the same number of MIME parts, keeps every byte outside
//!   the rewritable spans, and is a fixed point: a second run changes nothing.
//!
//! It depends on `trackless` (and its own MIME structure, for messages mail-parser reads
//! differently) and `mail_parser` only.

use trackless::{neutralise, Outcome, Policy, SkipReason};

/// Run `neutralise` on `raw` and check every property. `Err` says which one broke.
pub fn check(raw: &[u8], policy: &Policy) -> Result<(), String> {
    let once = neutralise(raw, policy);
    check_outcome(raw, &once, policy)
}

/// The same checks for an outcome already computed from `raw`.
pub fn check_outcome(raw: &[u8], once: &Outcome<'_>, policy: &Policy) -> Result<(), String> {
    no_internal_error(once)?;
    if !once.changed {
        if once.bytes.as_ref() != raw {
            return Err("unchanged outcome with different bytes".into());
        }
        if once.header.is_some() {
            return Err("unchanged outcome with an X-Trackless header".into());
        }
        return Ok(());
    }
    let before = part_count(raw).ok_or("changed a message that does not parse")?;
    let after = part_count(&once.bytes).ok_or("output does not re-parse")?;
    if before != after {
        return Err(format!("MIME part count {before} became {after}"));
    }
    only_rewrites_differ(raw, &once.bytes)?;
    let twice = neutralise(&once.bytes, policy);
    no_internal_error(&twice).map_err(|e| format!("second run: {e}"))?;
    if twice.changed || twice.bytes.as_ref() != once.bytes.as_ref() {
        return Err(format!(
            "second run changed it again: {:?}",
            twice
                .findings
                .iter()
                .filter(|f| f.action != trackless::Action::Untouched)
                .collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// `Err` when the outcome carries an `internal-error` finding (a caught panic).
pub fn no_internal_error(out: &Outcome<'_>) -> Result<(), String> {
    match out
        .findings
        .iter()
        .find(|f| f.reason == Some(SkipReason::InternalError))
    {
        Some(f) => Err(format!("internal error: {:?}", f.detail)),
        None => Ok(()),
    }
}

/// How many MIME parts `raw` has, counting the parts of nested messages.
pub fn part_count(raw: &[u8]) -> Option<usize> {
    fn count(m: &mail_parser::Message<'_>) -> usize {
        m.parts
            .iter()
            .map(|p| match &p.body {
                mail_parser::PartType::Message(inner) => 1 + count(inner),
                _ => 1,
            })
            .sum()
    }
    mail_parser::MessageParser::new()
        .parse(raw)
        .map(|m| count(&m))
}

/// Spans of `raw` that a rewrite may change, with what stands for them in a skeleton: text
/// leaf bodies (also inside 7bit nested messages) and the bodies of encoded nested messages
/// become a marker; the `Content-Transfer-Encoding` field of a text leaf is dropped (a
/// 7bit/8bit part whose rewrite would make a line too long for SMTP is re-encoded as
/// quoted-printable, which changes or adds that field).
fn rewritable_spans(msg: &mail_parser::Message<'_>) -> Vec<(usize, usize, &'static [u8])> {
    fn walk(
        msg: &mail_parser::Message<'_>,
        same_buffer: bool,
        out: &mut Vec<(usize, usize, &'static [u8])>,
    ) {
        for p in &msg.parts {
            match &p.body {
                mail_parser::PartType::Text(_) | mail_parser::PartType::Html(_) if same_buffer => {
                    for h in &p.headers {
                        if h.name == mail_parser::HeaderName::ContentTransferEncoding {
                            out.push((h.offset_field as usize, h.offset_end as usize, b""));
                        }
                    }
                    out.push((
                        p.offset_body as usize,
                        p.offset_end as usize,
                        b"<<REWRITABLE>>",
                    ))
                }
                mail_parser::PartType::Message(inner) => {
                    if p.encoding == mail_parser::Encoding::None {
                        walk(inner, same_buffer, out);
                    } else if same_buffer {
                        out.push((
                            p.offset_body as usize,
                            p.offset_end as usize,
                            b"<<REWRITABLE>>",
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    let mut spans = Vec::new();
    walk(msg, true, &mut spans);
    spans
}

/// The message with rewritable spans replaced (see `rewritable_spans`) and the top-level
/// X-Trackless fields dropped.
pub fn skeleton(raw: &[u8]) -> Option<Vec<u8>> {
    let msg = mail_parser::MessageParser::new().parse(raw)?;
    let body_start = (msg.parts.first()?.offset_body as usize).min(raw.len());
    Some(skeleton_of(raw, body_start, rewritable_spans(&msg)))
}

/// The same skeleton from the structure trackless itself reads (`mail/mime.rs`), which
/// differs from mail-parser's where RFC 2046 leaves room (a `--boundary` in the middle of a
/// line is a delimiter for mail-parser, not for us): the bytes outside the parts *we* rewrote
/// must be identical by that structure.
pub fn own_skeleton(raw: &[u8]) -> Option<Vec<u8>> {
    use trackless::internals::mime::{self, Kind, Part};
    fn walk(raw: &[u8], p: &Part, out: &mut Vec<(usize, usize, &'static [u8])>) {
        match &p.kind {
            Kind::Multipart(kids) => kids.iter().for_each(|k| walk(raw, k, out)),
            Kind::Message(Some(inner)) => walk(raw, inner, out),
            Kind::Message(None) => {}
            Kind::Leaf => {
                if p.ctype == "text" {
                    for (r, _) in &p.cte {
                        let start = raw[..r.start]
                            .iter()
                            .rposition(|&b| b == b'\n')
                            .map_or(0, |i| i + 1);
                        out.push((start, r.end, b""));
                    }
                }
                if p.ctype == "text" || p.ctype == "message" {
                    out.push((p.body.start, p.body.end, b"<<REWRITABLE>>"));
                }
            }
        }
    }
    let root = mime::parse(raw, 64).ok()?;
    let mut spans = Vec::new();
    walk(raw, &root, &mut spans);
    Some(skeleton_of(raw, root.body.start, spans))
}

/// The text the leaves hold, decoded (by the structure and decoders trackless reads), with
/// the bytes outside the rewritable spans: the whole-part path copies the quoted-printable
/// lines a rewrite left alone, the streamed one encodes its output anew, so the two may break
/// lines at other places. Line breaks compared as LF (the encoder writes them as the message
/// does).
pub fn as_read(raw: &[u8]) -> (Vec<Option<Vec<u8>>>, Option<Vec<u8>>) {
    use trackless::internals::mime::{self, Kind, Part};
    use trackless::internals::Cte;
    fn walk(raw: &[u8], p: &Part, out: &mut Vec<Option<Vec<u8>>>) {
        match &p.kind {
            Kind::Multipart(kids) => kids.iter().for_each(|k| walk(raw, k, out)),
            Kind::Message(Some(inner)) => walk(raw, inner, out),
            Kind::Message(None) => out.push(None),
            // An encoded nested message holds its parts encoded: not compared as bytes.
            Kind::Leaf if p.ctype == "message" => out.push(None),
            Kind::Leaf => {
                let cte = p.transfer_encoding().ok().map(Cte::from_header);
                let text = cte
                    .and_then(Result::ok)
                    .and_then(|c| c.decode(&raw[p.body.clone()]).ok())
                    .map(|d| {
                        let crlf = |i: usize| d[i] == b'\r' && d.get(i + 1) == Some(&b'\n');
                        (0..d.len()).filter(|&i| !crlf(i)).map(|i| d[i]).collect()
                    });
                out.push(text);
            }
        }
    }
    let mut texts = Vec::new();
    if let Ok(root) = mime::parse(raw, 64) {
        walk(raw, &root, &mut texts);
    }
    (texts, own_skeleton(raw))
}

fn skeleton_of(
    raw: &[u8],
    body_start: usize,
    mut spans: Vec<(usize, usize, &'static [u8])>,
) -> Vec<u8> {
    let body_start = body_start.min(raw.len());
    let mut at = 0;
    let mut ours: Option<usize> = None;
    for line in raw[..body_start].split_inclusive(|&b| b == b'\n') {
        let cont = matches!(line.first(), Some(b' ') | Some(b'\t'));
        if !cont {
            if let Some(a) = ours.take() {
                spans.push((a, at, b""));
            }
            if line.len() >= 12 && line[..12].eq_ignore_ascii_case(b"x-trackless:") {
                ours = Some(at);
            }
        }
        at += line.len();
    }
    if let Some(a) = ours {
        spans.push((a, at, b""));
    }
    spans.sort();
    let mut out = Vec::new();
    let mut pos = 0;
    for (a, b, marker) in spans {
        if a < pos || b > raw.len() || a > b {
            continue;
        }
        out.extend_from_slice(&raw[pos..a]);
        out.extend_from_slice(marker);
        pos = b;
    }
    out.extend_from_slice(&raw[pos..]);
    out
}

/// Everything outside the rewritable spans (headers, boundaries, attachments, preamble,
/// epilogue) must be byte-identical.
pub fn only_rewrites_differ(raw: &[u8], out: &[u8]) -> Result<(), String> {
    let a = skeleton(raw).ok_or("input does not parse")?;
    let b = skeleton(out).ok_or("output does not parse")?;
    if a == b {
        return Ok(());
    }
    // Where mail-parser reads the structure differently, ours is the one the rewrite followed.
    if own_skeleton(raw).is_some_and(|x| own_skeleton(out).is_some_and(|y| x == y)) {
        return Ok(());
    }
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    Err(format!(
        "bytes outside rewritten parts differ at {i}:\n  in:  {:?}\n  out: {:?}",
        String::from_utf8_lossy(&a[i.saturating_sub(40)..(i + 80).min(a.len())]),
        String::from_utf8_lossy(&b[i.saturating_sub(40)..(i + 80).min(b.len())]),
    ))
}
