//! Parse once, walk the MIME tree, rewrite the text leaves, splice them back into the original
//! bytes. Nothing outside a rewritten leaf body (and the `X-Trackless` header) changes.

use crate::core::policy::Policy;
use crate::esp;
use crate::html;
use crate::links;
use crate::mail::encode::{self, Cte};
use crate::mail::header;
use crate::mail::link::{LinkJudge, LinkResult};
use crate::mail::mime::{self, MimeError, Part};
use crate::mail::outcome::{
    merge_remote, Action, Counts, Finding, Kind, Outcome, Remote, SkipReason, REMOTE_MAX,
};
use crate::mail::trace::Headers;
use crate::plain;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// Rewrite `raw` so that no tracker fires. Pure: no I/O, no network, never panics (a bug is
/// caught and the original is returned with an `internal-error` finding).
pub fn neutralise<'a>(raw: &'a [u8], policy: &Policy) -> Outcome<'a> {
    neutralise_within(raw, policy, policy.limits.max_time)
}

/// [`neutralise`] with `max_time` instead of the policy's time limit (a daemon tries small
/// messages with a short budget first).
pub fn neutralise_within<'a>(raw: &'a [u8], policy: &Policy, max_time: Duration) -> Outcome<'a> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| run(raw, policy, max_time))) {
        Ok(outcome) => outcome,
        Err(_) => pass_through(
            raw,
            vec![Finding::skip(
                SkipReason::InternalError,
                "",
                Some("panic while rewriting; original kept".to_string()),
            )],
        ),
    }
}

fn pass_through(raw: &[u8], findings: Vec<Finding>) -> Outcome<'_> {
    Outcome {
        bytes: Cow::Borrowed(raw),
        counts: Counts::from_findings(&findings),
        findings,
        header: None,
        changed: false,
        esp: Vec::new(),
        remote: Vec::new(),
    }
}

/// Feature `test-hooks` only (on in `cargo test`, never in a build for use): a message
/// containing the bytes of `$VAR` panics here, so that tests can check how every adapter
/// reports a panic (`TRACKLESS_TEST_PANIC` in the core, caught by `neutralise`;
/// `TRACKLESS_TEST_WORKER_PANIC` in a daemon's worker, outside that guard).
#[cfg(feature = "test-hooks")]
#[allow(clippy::panic)]
pub(crate) fn test_panic_hook(var: &str, raw: &[u8]) {
    if let Some(marker) = std::env::var_os(var) {
        let marker = marker.as_encoded_bytes();
        if !marker.is_empty() && memchr::memmem::find(raw, marker).is_some() {
            panic!("{var} marker found");
        }
    }
}

fn run<'a>(raw: &'a [u8], policy: &Policy, max_time: Duration) -> Outcome<'a> {
    #[cfg(feature = "test-hooks")]
    test_panic_hook("TRACKLESS_TEST_PANIC", raw);
    // The top-level header block, split once for the allow-list and the attribution.
    let headers = Headers::parse(header::top_block(raw));
    let (mut outcome, spliced) = rewrite(raw, policy, &headers, max_time);
    // Attribution reads the top-level headers (and the trackers found), whatever happened to
    // the body.
    let vendors: Vec<(String, String)> = outcome
        .findings
        .iter()
        .filter(|f| {
            matches!(f.kind, Kind::Pixel | Kind::Link) && f.action != Action::Untouched && !f.nested
        })
        .filter_map(|f| Some((f.vendor.clone()?, f.url.clone()?)))
        .collect();
    outcome.esp = esp::attribute(&headers, &vendors, &policy.rules.esp, &policy.trust);
    if let Some((mut bytes, head_end)) = spliced {
        let value = super::stamp::summary(
            &outcome.counts,
            &outcome.findings,
            &esp::summary(&outcome.esp),
        );
        header::restamp(&mut bytes, head_end, &value, encode::line_ending(raw));
        outcome.bytes = Cow::Owned(bytes);
        outcome.header = Some(value);
        outcome.changed = true;
    }
    outcome
}

/// Walk and rewrite the body. Returns the outcome without the `X-Trackless` stamp and, when
/// something changed, the spliced bytes with the offset where the header block ends.
fn rewrite<'a>(
    raw: &'a [u8],
    policy: &Policy,
    headers: &Headers,
    max_time: Duration,
) -> (Outcome<'a>, Option<(Vec<u8>, usize)>) {
    if raw.len() > policy.limits.max_size {
        let detail = format!("{} bytes > limit {}", raw.len(), policy.limits.max_size);
        return (
            pass_through(raw, vec![Finding::skip(SkipReason::TooLarge, "", detail)]),
            None,
        );
    }
    if let Some(entry) = super::allow::check(headers, &policy.allow, &policy.trust) {
        return (
            pass_through(raw, vec![Finding::skip(SkipReason::AllowListed, "", entry)]),
            None,
        );
    }
    let deadline = Instant::now() + max_time;
    let not_mail = || pass_through(raw, vec![Finding::skip(SkipReason::NotMail, "", None)]);
    if !mime::has_header_field(header::top_block(raw)) {
        return (not_mail(), None);
    }
    let root = match mime::parse(raw, policy.limits.max_depth) {
        Ok(root) => root,
        Err(e) => return (pass_through(raw, vec![mime_error(e)]), None),
    };
    let mut walker = Walker {
        policy,
        deadline,
        nl: encode::line_ending(raw),
        findings: Vec::new(),
        nested: 0,
        delimiters: declared_delimiters(raw),
        link_memo: RefCell::new(HashMap::with_capacity_and_hasher(64, Default::default())),
        remote: Vec::new(),
    };
    let mut edits = Vec::new();
    if let Err(reason) = walker.part(&root, raw, "", 0, &mut edits) {
        return (
            pass_through(raw, vec![Finding::skip(reason, "", None)]),
            None,
        );
    }
    let mut outcome = pass_through(raw, walker.findings);
    merge_remote(&mut walker.remote);
    outcome.remote = walker.remote;
    if edits.is_empty() {
        return (outcome, None);
    }
    let head_end = header::block_end(raw, root.body.start);
    // A single-part message whose part was re-encoded has an edit in its header block: the
    // block ends that much further on in the output.
    let head_end_out = edits
        .iter()
        .filter(|e| e.start <= head_end && e.end <= head_end)
        .fold(head_end, |at, e| at + e.bytes.len() - (e.end - e.start));
    let spliced = splice(raw, &mut edits);
    (outcome, Some((spliced, head_end_out)))
}

/// A structure too deep or too large to walk: the message passes through.
fn mime_error(e: MimeError) -> Finding {
    match e {
        MimeError::TooDeep => Finding::skip(SkipReason::MimeDepth, "", None),
        MimeError::TooManyParts => Finding::skip(
            SkipReason::MemoryLimit,
            "",
            Some(format!("more than {} MIME parts", mime::MAX_PARTS)),
        ),
    }
}

/// A replacement of `buf[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    bytes: Vec<u8>,
}

fn splice(buf: &[u8], edits: &mut [Edit]) -> Vec<u8> {
    edits.sort_by_key(|e| e.start);
    // A large rewritten part becomes the output itself, the rest of the message put around it:
    // the message, that part and a copy of both are then never held at once.
    let largest = (0..edits.len()).max_by_key(|&i| edits[i].bytes.len());
    if let Some(i) = largest.filter(|&i| edits[i].bytes.len() >= IN_PLACE) {
        let (head, rest) = edits.split_at_mut(i);
        if let Some((mid, tail)) = rest.split_first_mut() {
            let before = splice_range(buf, 0, mid.start, head, 0);
            let after = splice_range(buf, mid.end, buf.len(), tail, 0);
            let mut out = std::mem::take(&mut mid.bytes);
            // Room for the `X-Trackless` field added afterwards in place.
            out.reserve(before.len() + after.len() + 1024);
            out.splice(0..0, before);
            out.extend_from_slice(&after);
            return out;
        }
    }
    splice_range(buf, 0, buf.len(), edits, 1024)
}

/// A rewritten part at least this large is spliced in place (see [`splice`]).
const IN_PLACE: usize = 1 << 20;

/// `buf[from..to]` with `edits` (sorted, inside that range) applied, and `spare` bytes of
/// room at the end.
fn splice_range(buf: &[u8], from: usize, to: usize, edits: &mut [Edit], spare: usize) -> Vec<u8> {
    let added: usize = edits.iter().map(|e| e.bytes.len()).sum();
    let removed: usize = edits.iter().map(|e| e.end.saturating_sub(e.start)).sum();
    let mut out = Vec::with_capacity(((to - from) + added).saturating_sub(removed) + spare);
    let mut pos = from;
    for e in edits.iter_mut() {
        if e.start < pos || e.end > to {
            continue; // overlapping edits cannot come from disjoint leaves; be safe anyway
        }
        out.extend_from_slice(&buf[pos..e.start]);
        // Freed once copied: a large message is not held in the edits and the output at once.
        out.extend_from_slice(&std::mem::take(&mut e.bytes));
        pos = e.end;
    }
    out.extend_from_slice(&buf[pos..to]);
    out
}

fn child_path(parent: &str, n: usize) -> String {
    if parent.is_empty() {
        n.to_string()
    } else {
        format!("{parent}.{n}")
    }
}

struct Walker<'p> {
    policy: &'p Policy,
    deadline: Instant,
    nl: &'static [u8],
    findings: Vec<Finding>,
    /// How many message/rfc822 levels deep the walk is.
    nested: usize,
    /// `--boundary` of every boundary the message's text declares anywhere (a lenient reader
    /// may see a multipart where our walk sees text in a leaf), and of every multipart
    /// enclosing the part being walked in a decoded nested message.
    delimiters: Vec<Vec<u8>>,
    /// Links already judged in this message.
    link_memo: RefCell<HashMap<String, Option<LinkResult>, foldhash::fast::RandomState>>,
    /// The remote resources of the HTML parts read so far.
    remote: Vec<Remote>,
}

/// At most this many boundaries declared in a message's text are looked for in its parts.
const MAX_DECLARED: usize = 16;

/// The `--boundary` delimiters of the `boundary=` parameters written anywhere in `raw` (in a
/// part's header or in what our walk takes for a part's text), each once, at most
/// [`MAX_DECLARED`].
fn declared_delimiters(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    boundary_words(raw, |at| {
        if out.len() == MAX_DECLARED {
            return;
        }
        if let Some(value) = parameter_value(&raw[at + b"boundary".len()..]) {
            let d = [b"--", value].concat();
            if !out.contains(&d) {
                out.push(d);
            }
        }
    });
    out
}

/// The value of a parameter from what follows its name (`= value` or `="value"`), if not empty.
fn parameter_value(after_name: &[u8]) -> Option<&[u8]> {
    fn unblank(s: &[u8]) -> &[u8] {
        &s[s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count()..]
    }
    let rest = unblank(unblank(after_name).strip_prefix(b"=")?);
    let value = if let Some(quoted) = rest.strip_prefix(b"\"") {
        &quoted[..memchr::memchr3(b'"', b'\r', b'\n', quoted).unwrap_or(quoted.len())]
    } else {
        let end = rest
            .iter()
            .position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(rest.len());
        &rest[..end]
    };
    (!value.is_empty()).then_some(value)
}

/// Calls `found` with the start of every `boundary`, in any case, in `hay`. The text is read
/// 64 bytes at a time for a `b` with a `y` seven bytes on (a loop the compiler vectorises: a
/// byte-at-a-time search stops at every `b` of the text).
fn boundary_words(hay: &[u8], mut found: impl FnMut(usize)) {
    const W: usize = 64;
    let is_word = |at: usize| {
        hay.get(at..at + 8)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"boundary"))
    };
    let mut i = 0;
    while i + W + 7 <= hay.len() {
        let (Ok(firsts), Ok(lasts)) = (
            <&[u8; W]>::try_from(&hay[i..i + W]),
            <&[u8; W]>::try_from(&hay[i + 7..i + 7 + W]),
        ) else {
            break;
        };
        let mut maybe = 0u8;
        for k in 0..W {
            maybe |= u8::from((firsts[k] | 0x20) == b'b') & u8::from((lasts[k] | 0x20) == b'y');
        }
        if maybe != 0 {
            (i..i + W).filter(|&at| is_word(at)).for_each(&mut found);
        }
        i += W;
    }
    (i..hay.len()).filter(|&at| is_word(at)).for_each(found);
}

/// Links remembered per message at most (a hostile message may hold any number of distinct
/// ones; past this they are judged each time).
const LINK_MEMO_MAX: usize = 4096;

impl Walker<'_> {
    fn skip(&mut self, reason: SkipReason, path: &str, detail: Option<String>) {
        self.findings.push(Finding::skip(reason, path, detail));
    }

    /// Whether `bytes` hold, anywhere, the `--boundary` of a multipart the message declares
    /// (or of one enclosing the part in a decoded nested message). Our walk takes a delimiter
    /// only at the start of a line (RFC 2046) and only of the multiparts it found; lenient
    /// readers take one anywhere and may find other multiparts: a part holding one, or a
    /// rewrite writing one (a re-encoding may move it to a line's start), is left alone so
    /// that every reader sees the structure it saw before.
    fn holds_delimiter(&self, bytes: &[u8]) -> bool {
        self.delimiters
            .iter()
            .any(|d| memchr::memmem::find(bytes, d).is_some())
    }

    fn ambiguous(&mut self, path: &str, rewritten: bool) {
        let detail = if rewritten {
            "the rewrite would write the boundary of a multipart the message declares"
        } else {
            "the part holds the boundary of a multipart the message declares"
        };
        self.skip(SkipReason::AmbiguousMime, path, Some(detail.into()));
    }

    /// Walk `part`, whose offsets point into `buf`. Message-wide limits come back as `Err`;
    /// part-level problems become `skip` findings.
    fn part(
        &mut self,
        part: &Part,
        buf: &[u8],
        path: &str,
        depth: usize,
        edits: &mut Vec<Edit>,
    ) -> Result<(), SkipReason> {
        if Instant::now() > self.deadline {
            return Err(SkipReason::TimeLimit);
        }
        let (ctype, subtype) = (part.ctype.as_str(), part.subtype.as_str());
        let leaf_path = if path.is_empty() { "1" } else { path };
        match &part.kind {
            mime::Kind::Multipart(children) => {
                if subtype == "signed" {
                    self.skip(
                        SkipReason::Signed,
                        leaf_path,
                        Some("multipart/signed".into()),
                    );
                    return Ok(());
                }
                if subtype == "encrypted" {
                    self.skip(
                        SkipReason::Encrypted,
                        leaf_path,
                        Some("multipart/encrypted".into()),
                    );
                    return Ok(());
                }
                let boundary = part.param("boundary").unwrap_or_default();
                let delimiter = [b"--", boundary.as_bytes()].concat();
                // Usually declared in the text already (then not looked for twice).
                let pushed = !self.delimiters.contains(&delimiter);
                if pushed {
                    self.delimiters.push(delimiter);
                }
                let walked = children.iter().enumerate().try_for_each(|(i, child)| {
                    let p = child_path(path, i + 1);
                    self.part(child, buf, &p, depth + 1, edits)
                });
                if pushed {
                    self.delimiters.pop();
                }
                walked
            }
            mime::Kind::Message(Some(inner)) => {
                let root_path = nested_root_path(inner, leaf_path);
                self.nested += 1;
                let r = self.part(inner, buf, &root_path, depth + 1, edits);
                self.nested -= 1;
                r
            }
            mime::Kind::Message(None) => {
                self.skip(
                    SkipReason::NestedMessage,
                    leaf_path,
                    Some("nested message could not be parsed".into()),
                );
                Ok(())
            }
            mime::Kind::Leaf => {
                if ctype == "message" && (subtype == "rfc822" || subtype == "global") {
                    return self.encoded_message(part, buf, leaf_path, depth, edits);
                }
                if ctype == "application" && (subtype == "pkcs7-mime" || subtype == "x-pkcs7-mime")
                {
                    let signed = part
                        .param("smime-type")
                        .is_some_and(|t| t.eq_ignore_ascii_case("signed-data"));
                    let reason = if signed {
                        SkipReason::Signed
                    } else {
                        SkipReason::Encrypted
                    };
                    self.skip(reason, leaf_path, Some(format!("{ctype}/{subtype}")));
                    return Ok(());
                }
                self.leaf(part, buf, leaf_path, edits)
            }
        }
    }

    /// A message/rfc822 part in base64 or quoted-printable: decoded, parsed on its own,
    /// rewritten, and encoded again the way it came.
    fn encoded_message(
        &mut self,
        part: &Part,
        buf: &[u8],
        path: &str,
        depth: usize,
        edits: &mut Vec<Edit>,
    ) -> Result<(), SkipReason> {
        let Some(cte) = self.transfer_encoding(part, path) else {
            return Ok(());
        };
        let body = &buf[part.body.clone()];
        if self.holds_delimiter(body) {
            self.ambiguous(path, false);
            return Ok(());
        }
        let inner = match cte.decode(body) {
            Ok(d) => d,
            Err(reason) => {
                self.skip(reason, path, None);
                return Ok(());
            }
        };
        if !mime::has_header_field(header::top_block(&inner)) {
            self.skip(
                SkipReason::NestedMessage,
                path,
                Some("nested message could not be parsed".into()),
            );
            return Ok(());
        }
        let max_depth = self.policy.limits.max_depth;
        if depth + 1 > max_depth {
            return Err(SkipReason::MimeDepth);
        }
        let root = match mime::parse(&inner, max_depth - depth - 1) {
            Ok(root) => root,
            Err(MimeError::TooDeep) => return Err(SkipReason::MimeDepth),
            Err(e) => {
                let f = mime_error(e);
                self.skip(f.reason.unwrap_or(SkipReason::MemoryLimit), path, f.detail);
                return Ok(());
            }
        };
        let root_path = nested_root_path(&root, path);
        let mut inner_edits = Vec::new();
        self.nested += 1;
        let r = self.part(&root, &inner, &root_path, depth + 1, &mut inner_edits);
        self.nested -= 1;
        r?;
        if inner_edits.is_empty() {
            return Ok(());
        }
        let rewritten = splice(&inner, &mut inner_edits);
        let bytes = cte.encode(&rewritten, self.nl, body.ends_with(b"\n"));
        if self.holds_delimiter(&bytes) {
            self.ambiguous(path, true);
            return Ok(());
        }
        edits.push(Edit {
            start: part.body.start,
            end: part.body.end,
            bytes,
        });
        Ok(())
    }

    /// The part's transfer encoding, or `None` after a skip finding when it is unknown or
    /// its fields disagree.
    fn transfer_encoding(&mut self, part: &Part, path: &str) -> Option<Cte> {
        let value = match part.transfer_encoding() {
            Ok(v) => v,
            Err(mime::ConflictingEncodings) => {
                self.skip(
                    SkipReason::UnknownTransferEncoding,
                    path,
                    Some("conflicting Content-Transfer-Encoding fields".into()),
                );
                return None;
            }
        };
        match Cte::from_header(value) {
            Ok(c) => Some(c),
            Err(reason) => {
                self.skip(reason, path, value.map(str::to_string));
                None
            }
        }
    }

    fn leaf(
        &mut self,
        part: &Part,
        buf: &[u8],
        path: &str,
        edits: &mut Vec<Edit>,
    ) -> Result<(), SkipReason> {
        let is_html = part.subtype == "html";
        if part.ctype != "text" || !(is_html || part.subtype == "plain") || part.attachment {
            return Ok(());
        }
        let (start, end) = (part.body.start, part.body.end);
        let body = &buf[start..end];
        let Some(cte) = self.transfer_encoding(part, path) else {
            return Ok(());
        };
        if self.holds_delimiter(body) {
            self.ambiguous(path, false);
            return Ok(());
        }
        // A large encoded HTML part is decoded into pieces that the rewriter frees as it reads
        // them, and its output encoded as it comes: the part is then held about twice (the
        // message and the output), not four times (the decoded, rewritten and encoded copies).
        let streamed =
            is_html && cte != Cte::Identity && body.len() >= self.policy.limits.stream_above;
        // A quoted-printable part (not too large to hold twice) is decoded with where its
        // lines end, so that the lines the rewrite leaves alone keep their encoding.
        let mut line_ends = None;
        let decoded = if streamed {
            cte.decode_pieces(body, PIECE).map(Decoded::Pieces)
        } else if cte == Cte::QuotedPrintable && body.len() < self.policy.limits.stream_above {
            encode::qp_decode_lines(body).map(|(d, ends)| {
                line_ends = Some(ends);
                Decoded::Whole(Cow::Owned(d))
            })
        } else {
            cte.decode(body).map(Decoded::Whole)
        };
        let mut decoded = match decoded {
            Ok(d) => d,
            Err(reason) => {
                self.skip(reason, path, None);
                return Ok(());
            }
        };
        let label = part.param("charset").filter(|c| !c.trim().is_empty());
        let label = match label {
            Some(l) => Some(Cow::Borrowed(l)),
            None if is_html => sniff_meta_charset(decoded.first()).map(Cow::Owned),
            None => None,
        };
        let encoding = match encode::charset(label.as_deref()) {
            Ok(e) => e,
            Err(reason) => {
                self.skip(reason, path, label.map(|l| l.into_owned()));
                return Ok(());
            }
        };
        if decoded.contains(b"-----BEGIN PGP SIGNED MESSAGE-----") {
            self.skip(
                SkipReason::Signed,
                path,
                Some("inline PGP signature".into()),
            );
            return Ok(());
        }
        if decoded.contains(b"-----BEGIN PGP MESSAGE-----") {
            self.skip(
                SkipReason::Encrypted,
                path,
                Some("inline PGP message".into()),
            );
            return Ok(());
        }
        let mut found = Vec::new();
        let mut remote = Vec::new();
        let rules = &self.policy.rules;
        let link_rules = rules.links();
        // The same link often comes back (picture and button, the plain part repeating the
        // HTML's links): each is judged once per message.
        let judge = |url: &str| {
            if let Some(hit) = self.link_memo.borrow().get(url) {
                return hit.clone();
            }
            let result = links::process(url, &link_rules);
            let mut memo = self.link_memo.borrow_mut();
            if memo.len() < LINK_MEMO_MAX {
                memo.insert(url.to_string(), result.clone());
            }
            result
        };
        let trailing_newline = body.ends_with(b"\n");
        let result = if is_html {
            let ctx = html::rewrite::PartCtx {
                part: path,
                deadline: self.deadline,
                memory: self.policy.limits.html_memory,
                open: &self.policy.rules.open,
                font: &self.policy.rules.font,
                heuristics: &self.policy.heuristics,
                links: self.policy.links.then_some(&judge as LinkJudge<'_>),
                opaque_links: self.policy.opaque_links,
            };
            match &mut decoded {
                Decoded::Whole(d) => {
                    html::rewrite::rewrite(d, encoding, &ctx, &mut found, &mut remote)
                        .map(|c| c.map(Rewritten::Content))
                }
                Decoded::Pieces(pieces) => {
                    let input = html::rewrite::Input::Pieces(std::mem::take(pieces));
                    let mut enc = encode::Encoder::new(cte, self.nl, trailing_newline, body.len());
                    let sink = |c: &[u8]| enc.write(c);
                    html::rewrite::rewrite_to(input, sink, encoding, &ctx, &mut found, &mut remote)
                        .map(|changed| changed.then(|| Rewritten::Encoded(enc.finish())))
                }
            }
        } else {
            match &decoded {
                Decoded::Whole(d) if self.policy.links => {
                    let opaque = self.policy.opaque_links;
                    plain::rewrite(d, encoding, &judge, opaque, path, &mut found)
                        .map(|c| c.map(Rewritten::Content))
                }
                _ => Ok(None),
            }
        };
        if self.nested > 0 {
            found.iter_mut().for_each(|f| f.nested = true);
        }
        let content = match result {
            Ok(Some(Rewritten::Encoded(bytes))) => {
                if self.holds_delimiter(&bytes) {
                    self.ambiguous(path, true);
                    self.add_remote(remote, false);
                    return Ok(());
                }
                self.findings.extend(found);
                self.add_remote(remote, true);
                edits.push(Edit { start, end, bytes });
                return Ok(());
            }
            Ok(Some(Rewritten::Content(c))) => c,
            Ok(None) => {
                self.findings.extend(found);
                self.add_remote(remote, true);
                return Ok(());
            }
            Err(reason) if reason.is_message_wide() => return Err(reason),
            Err(reason) => {
                self.skip(reason, path, None);
                return Ok(());
            }
        };
        // The decoded text is not needed any more, unless its lines are to be compared with
        // the rewrite's: freed before the output is encoded (with a 64 MiB part, one copy
        // fewer held at the peak).
        let longest_before = match &decoded {
            Decoded::Whole(d) if cte == Cte::Identity => longest_line(d),
            _ => 0,
        };
        let old = match (decoded, &line_ends) {
            (Decoded::Whole(d), Some(ends)) => Some((d, ends)),
            _ => None,
        };
        let mut out_cte = cte;
        let mut header_edit = None;
        if cte == Cte::Identity && longest_line(&content) > 998.max(longest_before) {
            // The rewrite made a line too long for SMTP (RFC 5322 §2.1.1): re-encode this part
            // as quoted-printable, which changes its Content-Transfer-Encoding field and
            // nothing else.
            match to_quoted_printable(part, buf, self.nl) {
                Some(edit) => {
                    header_edit = Some(edit);
                    out_cte = Cte::QuotedPrintable;
                }
                None => {
                    self.skip(SkipReason::LineTooLong, path, None);
                    self.add_remote(remote, false);
                    return Ok(());
                }
            }
        }
        let bytes = match old {
            Some((old, ends)) if out_cte == Cte::QuotedPrintable => {
                encode::qp_reencode(&content, &old, body, ends, self.nl)
            }
            _ => out_cte.encode(&content, self.nl, trailing_newline),
        };
        if self.holds_delimiter(&bytes) {
            self.ambiguous(path, true);
            self.add_remote(remote, false);
            return Ok(());
        }
        self.findings.extend(found);
        self.add_remote(remote, true);
        edits.extend(header_edit);
        edits.push(Edit { start, end, bytes });
        Ok(())
    }

    /// The remote resources of a part that was read: what it loads is known whether or not
    /// it changed (`applied` false: its rewrite was dropped, nothing was taken out). A part
    /// that could not be read lists nothing.
    fn add_remote(&mut self, mut remote: Vec<Remote>, applied: bool) {
        if !applied {
            remote.iter_mut().for_each(|r| r.removed = false);
        }
        self.remote.extend(remote);
        if self.remote.len() > 2 * REMOTE_MAX {
            merge_remote(&mut self.remote);
        }
    }
}

/// The edit that makes the header block of `part` say `Content-Transfer-Encoding:
/// quoted-printable`: its one such field's value replaced, or the field added at the end of
/// the block when there is none. `None` when the part has several such fields (which one a
/// reader believes is not ours to guess) or its header block does not end in a blank line.
fn to_quoted_printable(part: &Part, buf: &[u8], nl: &[u8]) -> Option<Edit> {
    match part.cte.as_slice() {
        [] => {
            let at = part.header.end;
            if at == part.body.start {
                return None; // no blank line before the body
            }
            let mut bytes = b"Content-Transfer-Encoding: quoted-printable".to_vec();
            bytes.extend_from_slice(nl);
            Some(Edit {
                start: at,
                end: at,
                bytes,
            })
        }
        [(range, _)] => {
            let value = buf.get(range.clone())?;
            // Keep the field's own line ending (the value runs up to and including it).
            let ending: &[u8] = if value.ends_with(b"\r\n") {
                b"\r\n"
            } else if value.ends_with(b"\n") {
                b"\n"
            } else {
                b""
            };
            let mut bytes = b" quoted-printable".to_vec();
            bytes.extend_from_slice(ending);
            Some(Edit {
                start: range.start,
                end: range.end,
                bytes,
            })
        }
        _ => None,
    }
}

/// The path of a nested message's top part: the message part's own when it is a multipart
/// (its children are numbered below it), else its first child's.
fn nested_root_path(root: &Part, path: &str) -> String {
    match root.kind {
        mime::Kind::Multipart(_) => path.to_string(),
        _ => child_path(path, 1),
    }
}

/// Pieces a large part is decoded into (see `Limits::stream_above`): each is this size at least,
/// so the first holds the part's first 2 KiB where a `<meta charset>` is looked for.
const PIECE: usize = 1 << 20;

/// A decoded part: whole (borrowed when it was not encoded), or in pieces.
enum Decoded<'a> {
    Whole(Cow<'a, [u8]>),
    Pieces(Vec<Vec<u8>>),
}

impl Decoded<'_> {
    /// The first bytes of the part (its first piece).
    fn first(&self) -> &[u8] {
        match self {
            Decoded::Whole(d) => d,
            Decoded::Pieces(p) => p.first().map_or(&[][..], Vec::as_slice),
        }
    }

    /// Whether `needle` occurs in the part, across the pieces' edges too.
    fn contains(&self, needle: &[u8]) -> bool {
        let find = |hay: &[u8]| memchr::memmem::find(hay, needle).is_some();
        match self {
            Decoded::Whole(d) => find(d),
            Decoded::Pieces(p) => {
                let edge = needle.len().saturating_sub(1);
                p.iter().any(|x| find(x))
                    || p.windows(2).any(|w| {
                        let mut seam = w[0][w[0].len().saturating_sub(edge)..].to_vec();
                        seam.extend_from_slice(&w[1][..w[1].len().min(edge)]);
                        find(&seam)
                    })
            }
        }
    }
}

/// What a part's rewrite gives: its new content, to be encoded, or (a streamed part) its
/// new body already encoded.
enum Rewritten {
    Content(Vec<u8>),
    Encoded(Vec<u8>),
}

fn longest_line(s: &[u8]) -> usize {
    s.split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap_or(0)
}

/// `<meta charset=…>` or `<meta http-equiv=Content-Type content="…; charset=…">` in the first
/// 2 KiB of an HTML part without a MIME charset.
fn sniff_meta_charset(html: &[u8]) -> Option<String> {
    let head = &html[..html.len().min(2048)];
    let lower = head.to_ascii_lowercase();
    let pos = lower.windows(8).position(|w| w == b"charset=")?;
    let rest = &head[pos + 8..];
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let end = rest
        .iter()
        .position(|&b| {
            !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':' || b == b'.')
        })
        .unwrap_or(rest.len());
    let label = std::str::from_utf8(&rest[..end]).ok()?;
    (!label.is_empty()).then(|| label.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every start of `boundary` in any case, one byte at a time.
    fn naive(hay: &[u8]) -> Vec<usize> {
        (0..hay.len())
            .filter(|&at| {
                hay.get(at..at + 8)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"boundary"))
            })
            .collect()
    }

    fn found(hay: &[u8]) -> Vec<usize> {
        let mut at = Vec::new();
        boundary_words(hay, |i| at.push(i));
        at
    }

    #[test]
    fn the_word_is_found_in_any_case_at_every_offset() {
        for len in 0usize..200 {
            for at in 0..len.saturating_sub(7) {
                let mut hay = vec![b'y'; len];
                hay[at..at + 8].copy_from_slice(if at % 2 == 0 {
                    b"BoUnDaRy"
                } else {
                    b"boundary"
                });
                assert_eq!(found(&hay), vec![at], "len {len}, at {at}");
            }
        }
        assert!(found(b"boundar").is_empty());
        assert!(found(&[b'b'; 300]).is_empty());
    }

    #[test]
    fn declared_boundaries_come_from_every_parameter_once() {
        let raw = b"Content-Type: multipart/mixed; BOUNDARY=\"a b\"\r\n\r\n--a b\r\n\
            Content-Type: text/plain\r\n\r\nboundary = x;y boundary=\"a b\" boundary=; boundary=\"\r\n";
        assert_eq!(
            declared_delimiters(raw),
            vec![b"--a b".to_vec(), b"--x".to_vec()]
        );
    }

    proptest! {
        #[test]
        fn the_word_is_found_where_a_byte_by_byte_search_finds_it(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(b"boundary".to_vec()),
                    Just(b"BOUNDARY".to_vec()),
                    Just(b"bOundarY".to_vec()),
                    Just(b"b      y".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..40),
                ],
                0..30,
            )
        ) {
            let hay = parts.concat();
            prop_assert_eq!(found(&hay), naive(&hay));
        }
    }
}
