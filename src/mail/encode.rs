//! Content-Transfer-Encoding (strict decode, re-encode) and charsets.
//!
//! Decoding is strict on purpose: a part we cannot decode losslessly is left alone, so the
//! decoders report errors instead of guessing the way a display client would.

use crate::mail::outcome::SkipReason;
use base64::Engine;
use std::borrow::Cow;

/// The transfer encodings a part can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cte {
    /// 7bit, 8bit, binary or no header: the body is the content.
    Identity,
    QuotedPrintable,
    Base64,
}

impl Cte {
    /// From the `Content-Transfer-Encoding` header value (None when absent).
    pub fn from_header(value: Option<&str>) -> Result<Cte, SkipReason> {
        let Some(v) = value else {
            return Ok(Cte::Identity);
        };
        let v = v.trim();
        if v.eq_ignore_ascii_case("quoted-printable") {
            Ok(Cte::QuotedPrintable)
        } else if v.eq_ignore_ascii_case("base64") {
            Ok(Cte::Base64)
        } else if ["7bit", "8bit", "binary", ""]
            .iter()
            .any(|k| v.eq_ignore_ascii_case(k))
        {
            Ok(Cte::Identity)
        } else {
            Err(SkipReason::UnknownTransferEncoding)
        }
    }

    pub fn decode(self, body: &[u8]) -> Result<Cow<'_, [u8]>, SkipReason> {
        match self {
            Cte::Identity => Ok(Cow::Borrowed(body)),
            Cte::QuotedPrintable => qp_decode(body).map(Cow::Owned),
            Cte::Base64 => b64_decode(body).map(Cow::Owned),
        }
    }

    /// [`Cte::decode`] into pieces of at least `size` bytes each (the last one excepted): the
    /// same bytes, the same errors.
    pub fn decode_pieces(self, body: &[u8], size: usize) -> Result<Vec<Vec<u8>>, SkipReason> {
        let mut out = Pieces::new(size);
        match self {
            Cte::Identity => out.extend_from_slice(body),
            Cte::QuotedPrintable => qp_decode_to(body, &mut out, None)?,
            Cte::Base64 => b64_decode_to(body, &mut out, B64_RUN)?,
        }
        Ok(out.finish())
    }

    /// Encode `content`; `trailing_newline` says whether the original encoded body ended with
    /// a line break (it does for a top-level body, not for a part before its boundary).
    pub fn encode(self, content: &[u8], nl: &[u8], trailing_newline: bool) -> Vec<u8> {
        match self {
            Cte::Identity => content.to_vec(),
            Cte::QuotedPrintable => qp_encode(content, nl),
            Cte::Base64 => b64_encode(content, nl, trailing_newline),
        }
    }
}

/// Line ending used by a message: CRLF if its first line ends in CRLF, else LF.
pub fn line_ending(raw: &[u8]) -> &'static [u8] {
    match memchr(b'\n', raw) {
        Some(i) if i > 0 && raw[i - 1] == b'\r' => b"\r\n",
        Some(_) => b"\n",
        None => b"\r\n",
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// The first `needle` in `hay`, eight bytes at a time. For the short spans between the
/// escapes of a quoted-printable line (HTML has one every few bytes: `=3D`), where setting up
/// a vector search (`memchr`) costs more than the search.
fn find_near(needle: u8, hay: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = u64::from(needle) * ONES;
    let mut at = 0;
    for chunk in hay.chunks_exact(8) {
        let v = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) ^ pattern;
        // The high bit of each byte of `v` that is zero; a borrow only runs upwards from a
        // zero byte, so the lowest bit set is the first match.
        let zero = v.wrapping_sub(ONES) & !v & HIGH;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    hay[at..].iter().position(|&b| b == needle).map(|p| at + p)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Strict quoted-printable decoding (RFC 2045 §6.7). Hard line breaks are kept as they are
/// (CRLF or LF); soft breaks and transport padding are removed. A `=` not followed by two hex
/// digits or a line break is an error.
pub fn qp_decode(body: &[u8]) -> Result<Vec<u8>, SkipReason> {
    let mut out = Vec::with_capacity(body.len());
    qp_decode_to(body, &mut out, None)?;
    Ok(out)
}

/// Where each line of a quoted-printable body ends: `(in the body, in the decoded bytes)`.
pub type LineEnds = Vec<(usize, usize)>;

/// [`qp_decode`], and where each line of `body` ends (soft breaks too): `(end in body, end
/// in the decoded bytes)`, line break included, the last line's ends last (equal to the
/// lengths). Every line decodes on its own, so between two consecutive ends `body[a..b]`
/// decodes to `decoded[c..d]`: [`qp_reencode`] copies the lines a rewrite left as they were.
pub fn qp_decode_lines(body: &[u8]) -> Result<(Vec<u8>, LineEnds), SkipReason> {
    let mut out = Vec::with_capacity(body.len());
    let mut ends = Vec::new();
    qp_decode_to(body, &mut out, Some(&mut ends))?;
    if ends.last().is_none_or(|&(e, _)| e != body.len()) {
        ends.push((body.len(), out.len()));
    }
    Ok((out, ends))
}

/// Where a decoder writes: one buffer, or [`Pieces`].
trait Sink {
    fn extend_from_slice(&mut self, b: &[u8]);
    fn push(&mut self, b: u8);
    /// How many bytes were written so far.
    fn written(&self) -> usize;
}

impl Sink for Vec<u8> {
    fn extend_from_slice(&mut self, b: &[u8]) {
        Vec::extend_from_slice(self, b);
    }
    fn push(&mut self, b: u8) {
        Vec::push(self, b);
    }
    fn written(&self) -> usize {
        self.len()
    }
}

/// Decoded content in pieces of about `size` bytes (each at least `size` but the last), so
/// that a large part can be handed to the HTML rewriter a piece at a time and every piece freed
/// once read: the decoded part and the rewritten one are then never held whole at once.
struct Pieces {
    done: Vec<Vec<u8>>,
    cur: Vec<u8>,
    size: usize,
}

impl Pieces {
    fn new(size: usize) -> Pieces {
        Pieces {
            done: Vec::new(),
            cur: Vec::with_capacity(size),
            size: size.max(1),
        }
    }

    fn rotate(&mut self) {
        if self.cur.len() >= self.size {
            let full = std::mem::replace(&mut self.cur, Vec::with_capacity(self.size));
            self.done.push(full);
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.cur.is_empty() {
            self.done.push(self.cur);
        }
        self.done
    }
}

impl Sink for Pieces {
    fn extend_from_slice(&mut self, b: &[u8]) {
        self.cur.extend_from_slice(b);
        self.rotate();
    }
    fn push(&mut self, b: u8) {
        self.cur.push(b);
        self.rotate();
    }
    fn written(&self) -> usize {
        self.done.iter().map(Vec::len).sum::<usize>() + self.cur.len()
    }
}

fn qp_decode_to(
    body: &[u8],
    out: &mut impl Sink,
    mut ends: Option<&mut Vec<(usize, usize)>>,
) -> Result<(), SkipReason> {
    let mut rest = body;
    while !rest.is_empty() {
        let (line, nl, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let (line, nl) = if i > 0 && rest[i - 1] == b'\r' {
                    (&rest[..i - 1], &rest[i - 1..=i])
                } else {
                    (&rest[..i], &rest[i..=i])
                };
                (line, nl, &rest[i + 1..])
            }
            None => (rest, &b""[..], &b""[..]),
        };
        // Transport padding: trailing whitespace is not part of the content.
        let mut end = line.len();
        while end > 0 && (line[end - 1] == b' ' || line[end - 1] == b'\t') {
            end -= 1;
        }
        let line = &line[..end];
        let soft = line.last() == Some(&b'=');
        let content = if soft { &line[..line.len() - 1] } else { line };
        let mut i = 0;
        while let Some(eq) = find_near(b'=', &content[i..]) {
            out.extend_from_slice(&content[i..i + eq]);
            i += eq;
            let hi = content.get(i + 1).and_then(|&c| hex_val(c));
            let lo = content.get(i + 2).and_then(|&c| hex_val(c));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(SkipReason::BadQp),
            }
            i += 3;
        }
        out.extend_from_slice(&content[i..]);
        if !soft {
            out.extend_from_slice(nl);
        }
        if let Some(ends) = ends.as_deref_mut() {
            ends.push((body.len() - next.len(), out.written()));
        }
        rest = next;
    }
    Ok(())
}

/// Quoted-printable encoding with lines of at most 76 characters. Line breaks in `content`
/// (CRLF or LF) become hard breaks written as `nl`; a lone CR is encoded.
pub fn qp_encode(content: &[u8], nl: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 8);
    let mut rest = content;
    loop {
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let line = &rest[..i];
                qp_line(
                    line.strip_suffix(b"\r").unwrap_or(line),
                    false,
                    nl,
                    &mut out,
                );
                out.extend_from_slice(nl);
                rest = &rest[i + 1..];
            }
            None => {
                // The last line (empty when the content ended with a line break).
                qp_line(rest, false, nl, &mut out);
                return out;
            }
        }
    }
}

/// After a change, [`qp_reencode`] looks for where `old` and `new` agree again at the next few
/// quotes, tag ends and line breaks (an attribute value rewritten ends at its quote, a removed
/// element before the next tag's end), this many in `old` against this many in `new`, and
/// takes a place where this many bytes agree.
const LANDMARKS_OLD: usize = 8;
const LANDMARKS_NEW: usize = 4;
const AGREE: usize = 16;
/// Old lines tried at the place found, the first of them the first one that starts after it.
const RESYNC_LINES: usize = 3;

/// Quoted-printable for `new`, the rewrite of `old` (decoded from `old_encoded`, whose lines
/// end at `ends`, from [`qp_decode_lines`]): the encoded lines whose decoded bytes the rewrite
/// left as they were are copied byte for byte; what changed is encoded as [`qp_encode`] does,
/// ending in a soft line break where an old line follows in the middle of a line. The result
/// decodes to `new` whatever the alignment found: an old line is copied only where `new`
/// holds exactly its decoded bytes.
pub fn qp_reencode(
    new: &[u8],
    old: &[u8],
    old_encoded: &[u8],
    ends: &[(usize, usize)],
    nl: &[u8],
) -> Vec<u8> {
    let start = |k: usize| if k == 0 { 0 } else { ends[k - 1].1 };
    let line = |k: usize| {
        let e0 = if k == 0 { 0 } else { ends[k - 1].0 };
        (&old_encoded[e0..ends[k].0], &old[start(k)..ends[k].1])
    };
    // Old line `k` can be written at `new[p..]`: its bytes are there, and its encoding ends
    // in a line break (soft or hard) unless it is all that is left.
    let fits = |k: usize, p: usize| {
        let (encoded, decoded) = line(k);
        let rest = new.get(p..).unwrap_or_default();
        !decoded.is_empty()
            && rest.starts_with(decoded)
            && (encoded.ends_with(b"\n") || decoded.len() == rest.len())
    };
    let mut out = Vec::with_capacity(old_encoded.len() + old_encoded.len() / 16);
    // The old line expected next, and where `new` is.
    let (mut k, mut p) = (0, 0);
    while p < new.len() {
        if k < ends.len() && fits(k, p) {
            let (encoded, decoded) = line(k);
            out.extend_from_slice(encoded);
            p += decoded.len();
            k += 1;
            continue;
        }
        if k >= ends.len() {
            qp_span(&new[p..], false, nl, &mut out);
            break;
        }
        // A change inside old line `k`, from where the two stop agreeing.
        let same = old[start(k)..]
            .iter()
            .zip(&new[p..])
            .take_while(|(a, b)| a == b)
            .count();
        let (o, q) = (start(k) + same, p + same);
        let resync = resync(old, new, o, q).and_then(|(l, c)| {
            // The first old lines wholly after the landmark, where the shift puts them.
            let first = k + ends[k..].partition_point(|&(_, d)| d <= l) + 1;
            (first..ends.len().min(first + RESYNC_LINES)).find_map(|j| {
                let at = (start(j) + c).checked_sub(l)?;
                (at > p && fits(j, at)).then_some((j, at))
            })
        });
        match resync {
            Some((j, at)) => {
                qp_span(&new[p..at], true, nl, &mut out);
                (k, p) = (j, at);
            }
            None => {
                // Nothing found: the rest of the new line encoded anew, and the old line
                // after the next hard break in `old` tried next.
                let to = memchr::memchr(b'\n', &new[q..]).map_or(new.len(), |i| q + i + 1);
                qp_span(&new[p..to], false, nl, &mut out);
                p = to;
                k = match memchr::memchr(b'\n', &old[o..]) {
                    Some(i) => k + ends[k..].partition_point(|&(_, d)| d <= o + i + 1),
                    None => ends.len(),
                };
            }
        }
    }
    out
}

/// A place after a change where `old` (from `o`) and `new` (from `q`) agree again: one of the
/// next landmark bytes in each, followed by [`AGREE`] equal bytes (or the same end).
fn resync(old: &[u8], new: &[u8], o: usize, q: usize) -> Option<(usize, usize)> {
    fn marks(s: &[u8], from: usize, n: usize) -> impl Iterator<Item = usize> + '_ {
        memchr::memchr3_iter(b'"', b'>', b'\n', &s[from..])
            .take(n)
            .map(move |i| from + i)
    }
    marks(old, o, LANDMARKS_OLD).find_map(|l| {
        let tail = &old[l..old.len().min(l + AGREE)];
        marks(new, q, LANDMARKS_NEW)
            .find(|&c| new[c..].starts_with(tail))
            .map(|c| (l, c))
    })
}

/// `span` encoded as [`qp_encode`] does; when `more` (an old line follows), its last line, if
/// it has no line break, ends in a soft one.
fn qp_span(span: &[u8], more: bool, nl: &[u8], out: &mut Vec<u8>) {
    let mut rest = span;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        let line = &rest[..i];
        qp_line(line.strip_suffix(b"\r").unwrap_or(line), false, nl, out);
        out.extend_from_slice(nl);
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        qp_line(rest, more, nl, out);
        if more {
            out.push(b'=');
            out.extend_from_slice(nl);
        }
    }
}

/// Bytes written as they are anywhere but at the end of a line: printable ASCII but `=`, and
/// space and tab.
const QP_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 33;
    while b <= 126 {
        t[b] = b != b'=' as usize;
        b += 1;
    }
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t
};

/// One line of quoted-printable, without its line break, soft breaks where needed.
/// With `soft_end`, the line goes on after a soft break the caller writes: room is left for
/// its `=`, and trailing white space need not be escaped.
fn qp_line(line: &[u8], soft_end: bool, nl: &[u8], out: &mut Vec<u8>) {
    const MAX: usize = 76;
    let n = line.len();
    let mut col = 0;
    let mut i = 0;
    while i < n {
        if col > 0 {
            // A run of plain bytes that fits before the soft-break column, the line's last
            // byte excepted (trailing white space is escaped), copied at once.
            let stop = (n - 1).min(i + (MAX - 1).saturating_sub(col));
            let run = plain_run(&line[i..stop.max(i)]);
            if run > 0 {
                out.extend_from_slice(&line[i..i + run]);
                col += run;
                i += run;
                continue;
            }
        }
        let b = line[i];
        let at_end = i + 1 == n && !soft_end;
        let escape = match b {
            b'=' => true,
            b' ' | b'\t' => at_end,
            33..=126 => false,
            _ => true,
        };
        // Leave room for the soft-break '=' unless this is the last char of the line.
        let limit = if at_end { MAX } else { MAX - 1 };
        if col + if escape { 3 } else { 1 } > limit {
            out.push(b'=');
            out.extend_from_slice(nl);
            col = 0;
        }
        // Keep "From " and leading dots safe through mbox and SMTP.
        let risky_start = col == 0 && (b == b'.' || line[i..].starts_with(b"From "));
        if escape || risky_start {
            push_hex(out, b);
            col += 3;
        } else {
            out.push(b);
            col += 1;
        }
        i += 1;
    }
}

/// How many bytes at the start of `s` are plain ([`QP_PLAIN`]): eight at a time while no
/// byte of the eight is a control (tab included, which the byte-wise look then takes), `=`,
/// DEL or above.
fn plain_run(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `v` is zero (its high bit set in the result; borrows only run upwards from
    // a byte that is zero, so no byte is flagged falsely below the first flagged one).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut run = 0;
    for chunk in s.chunks_exact(8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // Below 0x20: subtracting 0x20 borrows into the high bit of a byte under 0x20 that
        // had it clear.
        let control = w.wrapping_sub(0x20 * ONES) & !w & HIGH;
        if (w & HIGH) | control | zero(w ^ (0x3d * ONES)) | zero(w ^ (0x7f * ONES)) != 0 {
            break;
        }
        run += 8;
    }
    run + s[run..]
        .iter()
        .position(|&b| !QP_PLAIN[b as usize])
        .unwrap_or(s.len() - run)
}

fn push_hex(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'=');
    out.push(HEX[(b >> 4) as usize]);
    out.push(HEX[(b & 15) as usize]);
}

const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Strict base64: whitespace is ignored, anything else outside the alphabet is an error.
pub fn b64_decode(body: &[u8]) -> Result<Vec<u8>, SkipReason> {
    B64.decode(b64_clean(body))
        .map_err(|_| SkipReason::BadBase64)
}

fn b64_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The base64 characters of `body`, white space left out.
fn b64_clean(body: &[u8]) -> Vec<u8> {
    let mut clean = Vec::with_capacity(body.len());
    // Line by line: a line's white space is nearly always at its end only.
    for line in body.split_inclusive(|&b| b == b'\n') {
        b64_clean_line(line, &mut clean);
    }
    clean
}

fn b64_clean_line(line: &[u8], clean: &mut Vec<u8>) {
    let end = line.iter().rposition(|b| !b64_ws(b)).map_or(0, |i| i + 1);
    let line = &line[..end];
    if line.iter().any(b64_ws) {
        clean.extend(line.iter().copied().filter(|b| !b64_ws(b)));
    } else {
        clean.extend_from_slice(line);
    }
}

/// Base64 characters decoded at a time by [`b64_decode_to`].
const B64_RUN: usize = 1 << 20;

/// [`b64_decode`] a run of characters at a time, with the same result: every run but the last
/// is a multiple of four characters followed by at least four more, so a `=` in it is padding
/// before the end, which the whole decode refuses too.
fn b64_decode_to(body: &[u8], out: &mut impl Sink, run: usize) -> Result<(), SkipReason> {
    let mut clean = Vec::with_capacity(run.min(body.len()) + 128);
    let mut buf = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        b64_clean_line(line, &mut clean);
        if clean.len() >= run + 4 {
            let take = (clean.len() - 4) / 4 * 4;
            if clean[..take].contains(&b'=') {
                return Err(SkipReason::BadBase64);
            }
            buf.clear();
            B64.decode_vec(&clean[..take], &mut buf)
                .map_err(|_| SkipReason::BadBase64)?;
            out.extend_from_slice(&buf);
            clean.drain(..take);
        }
    }
    buf.clear();
    B64.decode_vec(&clean, &mut buf)
        .map_err(|_| SkipReason::BadBase64)?;
    out.extend_from_slice(&buf);
    Ok(())
}

/// [`Cte::encode`] fed a piece at a time (the output of the HTML rewriter as it comes), with
/// the same result: quoted-printable is encoded a line at a time and base64 57 bytes (one
/// 76-column line) at a time, only the unfinished rest held back.
pub struct Encoder<'a> {
    cte: Cte,
    nl: &'a [u8],
    trailing_newline: bool,
    pending: Vec<u8>,
    out: Vec<u8>,
    /// Base64 lines written.
    lines: usize,
}

impl<'a> Encoder<'a> {
    pub fn new(cte: Cte, nl: &'a [u8], trailing_newline: bool, capacity: usize) -> Encoder<'a> {
        Encoder {
            cte,
            nl,
            trailing_newline,
            pending: Vec::new(),
            out: Vec::with_capacity(capacity),
            lines: 0,
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        match self.cte {
            Cte::Identity => self.out.extend_from_slice(bytes),
            Cte::QuotedPrintable => {
                // Only the bytes just added can hold a line break: what was pending had none
                // (a part without line breaks would otherwise be searched whole at each write).
                let before = self.pending.len();
                self.pending.extend_from_slice(bytes);
                let Some(last) =
                    memchr::memrchr(b'\n', &self.pending[before..]).map(|i| before + i)
                else {
                    return;
                };
                for line in self.pending[..last].split(|&b| b == b'\n') {
                    qp_line(
                        line.strip_suffix(b"\r").unwrap_or(line),
                        false,
                        self.nl,
                        &mut self.out,
                    );
                    self.out.extend_from_slice(self.nl);
                }
                self.pending.drain(..=last);
            }
            Cte::Base64 => {
                self.pending.extend_from_slice(bytes);
                let full = self.pending.len() / 57 * 57;
                let pending = std::mem::take(&mut self.pending);
                for group in pending[..full].chunks(57) {
                    self.b64_line(group);
                }
                self.pending = pending;
                self.pending.drain(..full);
            }
        }
    }

    fn b64_line(&mut self, group: &[u8]) {
        if self.lines > 0 {
            self.out.extend_from_slice(self.nl);
        }
        let mut line = [0u8; 76];
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(group, &mut line)
            .unwrap_or(0); // 57 bytes or fewer always fit in 76 characters
        self.out.extend_from_slice(&line[..n]);
        self.lines += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        match self.cte {
            Cte::Identity => {}
            Cte::QuotedPrintable => qp_line(&self.pending, false, self.nl, &mut self.out),
            Cte::Base64 => {
                let rest = std::mem::take(&mut self.pending);
                if !rest.is_empty() {
                    self.b64_line(&rest);
                }
                if self.trailing_newline {
                    self.out.extend_from_slice(self.nl);
                }
            }
        }
        self.out
    }
}

/// Base64 with 76-column lines.
pub fn b64_encode(content: &[u8], nl: &[u8], trailing_newline: bool) -> Vec<u8> {
    let enc = base64::engine::general_purpose::STANDARD.encode(content);
    let mut out = Vec::with_capacity(enc.len() + enc.len() / 76 * nl.len() + nl.len());
    for (i, chunk) in enc.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(nl);
        }
        out.extend_from_slice(chunk);
    }
    if trailing_newline {
        out.extend_from_slice(nl);
    }
    out
}

/// The charset of a text part, if we can rewrite in it (ASCII-compatible, known to encoding_rs).
/// `None` label means "not declared".
pub fn charset(label: Option<&str>) -> Result<&'static encoding_rs::Encoding, SkipReason> {
    let Some(label) = label else {
        return Ok(encoding_rs::UTF_8);
    };
    let label = label.trim().trim_matches('"');
    match encoding_rs::Encoding::for_label_no_replacement(label.as_bytes()) {
        Some(enc) if enc.is_ascii_compatible() => Ok(enc),
        _ => Err(SkipReason::UnsupportedCharset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_roundtrip_keeps_content() {
        let text = "Caf\u{e9} \u{20ac}5 \u{2019}quoted\u{2019} = sign and a very long line that must be folded because it is much longer than seventy-six columns, really.\r\nFrom here.\r\n.dot\r\ntrailing space \r\n";
        let enc = qp_encode(text.as_bytes(), b"\r\n");
        for line in enc.split(|&b| b == b'\n') {
            assert!(
                line.len() <= 77,
                "line too long: {:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(qp_decode(&enc).unwrap(), text.as_bytes());
        assert!(!enc.windows(6).any(|w| w == b"\nFrom "));
    }

    /// The byte-at-a-time encoder the run-copying one replaced: same output on any input.
    fn qp_encode_reference(content: &[u8], nl: &[u8]) -> Vec<u8> {
        const MAX: usize = 76;
        let mut out = Vec::new();
        let mut lines = content.split(|&b| b == b'\n').peekable();
        while let Some(mut line) = lines.next() {
            let last = lines.peek().is_none();
            if !last && line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if last && line.is_empty() {
                break;
            }
            let mut col = 0;
            for (i, &b) in line.iter().enumerate() {
                let at_end = i + 1 == line.len();
                let escape = match b {
                    b'=' => true,
                    b' ' | b'\t' => at_end,
                    33..=126 => false,
                    _ => true,
                };
                let limit = if at_end { MAX } else { MAX - 1 };
                if col + if escape { 3 } else { 1 } > limit {
                    out.push(b'=');
                    out.extend_from_slice(nl);
                    col = 0;
                }
                let risky_start = col == 0 && (b == b'.' || line[i..].starts_with(b"From "));
                if escape || risky_start {
                    push_hex(&mut out, b);
                    col += 3;
                } else {
                    out.push(b);
                    col += 1;
                }
            }
            if !last {
                out.extend_from_slice(nl);
            }
        }
        out
    }

    #[test]
    fn qp_encode_matches_the_reference() {
        let alphabet: &[u8] = b"aZ .=\t\r\nFrom\xe9\x00~\x7f\x1f!\x80\xff<>";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let len = (next() % 400) as usize;
            let content: Vec<u8> = (0..len)
                .map(|_| {
                    if round % 3 == 0 && next() % 4 != 0 {
                        b'x' // long plain runs
                    } else {
                        alphabet[(next() % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            for nl in [&b"\r\n"[..], b"\n"] {
                assert_eq!(
                    qp_encode(&content, nl),
                    qp_encode_reference(&content, nl),
                    "{:?}",
                    String::from_utf8_lossy(&content)
                );
            }
        }
    }

    #[test]
    fn qp_decode_rejects_broken_escapes() {
        assert_eq!(qp_decode(b"abc=ZZdef"), Err(SkipReason::BadQp));
        assert_eq!(qp_decode(b"abc=4"), Err(SkipReason::BadQp));
        assert_eq!(qp_decode(b"a=\r\nb=3D c  \r\n").unwrap(), b"ab= c\r\n");
        assert_eq!(qp_decode(b"lower=e9").unwrap(), b"lower\xe9");
    }

    #[test]
    fn qp_long_escapes_are_not_split() {
        let content = vec![0xe9u8; 200];
        let enc = qp_encode(&content, b"\n");
        for line in enc.split(|&b| b == b'\n') {
            assert!(line.len() <= 76);
        }
        assert_eq!(qp_decode(&enc).unwrap(), content);
    }

    #[test]
    fn base64_strict() {
        assert_eq!(b64_decode(b"aGVs\r\nbG8=\r\n").unwrap(), b"hello");
        assert_eq!(b64_decode(b"aGVs*bG8="), Err(SkipReason::BadBase64));
        assert_eq!(b64_decode(b"  aG Vs\tbG8=  \r\n").unwrap(), b"hello");
        assert_eq!(b64_decode(b"aGVsbG8=aGVs"), Err(SkipReason::BadBase64));
        let data: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let enc = b64_encode(&data, b"\r\n", true);
        assert!(enc.ends_with(b"\r\n"));
        assert!(enc.split(|&b| b == b'\n').all(|l| l.len() <= 77));
        assert_eq!(b64_decode(&enc).unwrap(), data);
    }

    #[test]
    fn charsets() {
        assert_eq!(charset(Some("ISO-8859-1")).unwrap().name(), "windows-1252");
        assert_eq!(charset(Some("\"Shift_JIS\"")).unwrap().name(), "Shift_JIS");
        assert_eq!(charset(Some("utf-16")), Err(SkipReason::UnsupportedCharset));
        assert_eq!(
            charset(Some("x-unknown")),
            Err(SkipReason::UnsupportedCharset)
        );
        assert_eq!(charset(None).unwrap().name(), "UTF-8");
    }

    fn pieces_equal_whole(cte: Cte, body: &[u8], size: usize, run: usize) {
        let whole = cte.decode(body).map(|c| c.into_owned());
        let mut out = Pieces::new(size);
        let pieces = match cte {
            Cte::Base64 => b64_decode_to(body, &mut out, run),
            Cte::QuotedPrintable => qp_decode_to(body, &mut out, None),
            Cte::Identity => {
                out.extend_from_slice(body);
                Ok(())
            }
        }
        .map(|()| out.finish());
        match (&whole, &pieces) {
            (Ok(w), Ok(p)) => {
                assert_eq!(w, &p.concat(), "{cte:?}");
                let n = p.len();
                for (i, piece) in p.iter().enumerate() {
                    assert!(
                        i + 1 == n || piece.len() >= size,
                        "piece {i} of {n} too small"
                    );
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("{cte:?} whole {whole:?} pieces {pieces:?}"),
        }
    }

    fn encoded_by_pieces(cte: Cte, content: &[u8], cuts: &[usize], trailing: bool) -> Vec<u8> {
        let mut e = Encoder::new(cte, b"\r\n", trailing, 0);
        let mut at = 0;
        for &c in cuts {
            let c = c.min(content.len()).max(at);
            e.write(&content[at..c]);
            at = c;
        }
        e.write(&content[at..]);
        e.finish()
    }

    #[test]
    fn pieces_and_encoder_edge_cases() {
        for body in [
            &b""[..],
            b"QQ==",
            b"QUJD\r\nREVG\r\n",
            b"QQ==QUJD",
            b"QUJDREVGR0hJ\r\nQQ=",
            b"QUJD REVG\tR0hJ\r\n",
            b"QUJDREVGR0hJSktM=",
            b"Q",
            b"QUJDREVG*0hJ",
        ] {
            for run in [1, 4, 5, 8, 64] {
                for size in [1, 3, 1000] {
                    pieces_equal_whole(Cte::Base64, body, size, run);
                }
            }
        }
        for body in [
            &b""[..],
            b"a=\r\nb",
            b"=41=42\r\n",
            b"x=4",
            b"=\r\n",
            b"abc =\r\n\r\n",
        ] {
            for size in [1, 2, 1000] {
                pieces_equal_whole(Cte::QuotedPrintable, body, size, 4);
            }
        }
        let text = b"line one\r\nline two with = and trailing space \r\n\r\nlast\r";
        for cte in [Cte::QuotedPrintable, Cte::Base64, Cte::Identity] {
            for trailing in [false, true] {
                let want = cte.encode(text, b"\r\n", trailing);
                for cut in 0..=text.len() {
                    assert_eq!(
                        encoded_by_pieces(cte, text, &[cut], trailing),
                        want,
                        "{cte:?} cut at {cut}"
                    );
                }
                assert_eq!(
                    encoded_by_pieces(cte, b"", &[], trailing),
                    cte.encode(b"", b"\r\n", trailing)
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn find_near_finds_what_memchr_finds(
            hay in proptest::collection::vec(
                proptest::sample::select(vec![b'=', b'a', 0x3c, 0xbd, 0x7d, 0x00, 0xff]),
                0..40,
            ),
            needle in proptest::sample::select(vec![b'=', 0x3c, 0xbd, 0x00]),
        ) {
            proptest::prop_assert_eq!(find_near(needle, &hay), memchr::memchr(needle, &hay));
        }
    }

    proptest::proptest! {
        #[test]
        fn pieces_decode_as_the_whole(
            content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            noise in proptest::collection::vec((0usize..2000, 0u8..6), 0..4),
            size in 1usize..80,
            run in 1usize..40,
        ) {
            let insert = |mut enc: Vec<u8>| {
                for &(at, what) in &noise {
                    let at = at % (enc.len() + 1);
                    let b = [b' ', b'\n', b'=', b'*', b'\r', b'Q'][what as usize];
                    enc.insert(at, b);
                }
                enc
            };
            let b64 = insert(b64_encode(&content, b"\r\n", true));
            pieces_equal_whole(Cte::Base64, &b64, size, run);
            let qp = insert(qp_encode(&content, b"\r\n"));
            pieces_equal_whole(Cte::QuotedPrintable, &qp, size, run);
        }

        #[test]
        fn encoder_by_pieces_encodes_as_the_whole(
            content in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b' ', b'\r', b'\n', b'=', b'.', 0xe9, b'F']),
                0..700,
            ),
            cuts in proptest::collection::vec(0usize..700, 0..6),
            trailing in proptest::prelude::any::<bool>(),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            for cte in [Cte::QuotedPrintable, Cte::Base64, Cte::Identity] {
                proptest::prop_assert_eq!(
                    encoded_by_pieces(cte, &content, &cuts, trailing),
                    cte.encode(&content, b"\r\n", trailing)
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn reencoding_decodes_to_the_rewrite_and_copies_what_it_left(
            content in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b' ', b'"', b'>', b'<', b'\r', b'\n', b'=', 0xe9]),
                0..900,
            ),
            cuts in proptest::collection::vec(0usize..900, 0..8),
            edits in proptest::collection::vec(
                (0usize..900, 0usize..60, proptest::collection::vec(
                    proptest::sample::select(vec![b'x', b'"', b'>', b'\n', b' ', b'=']), 0..30)),
                0..5,
            ),
            lf in proptest::prelude::any::<bool>(),
        ) {
            let nl: &[u8] = if lf { b"\n" } else { b"\r\n" };
            // Another sender's encoder: soft breaks at other places than ours.
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (content.len() + 1)).collect();
            cuts.push(content.len());
            cuts.sort_unstable();
            let (mut encoded, mut from) = (Vec::new(), 0);
            for &c in &cuts {
                qp_span(&content[from..c], c < content.len(), nl, &mut encoded);
                from = c;
            }
            let (old, ends) = qp_decode_lines(&encoded).unwrap();
            proptest::prop_assert_eq!(ends.last().map(|e| e.0), Some(encoded.len()));
            let mut new = old.clone();
            let mut edits = edits;
            edits.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
            for (at, len, with) in edits {
                let at = at % (new.len() + 1);
                let end = (at + len).min(new.len());
                new.splice(at..end, with);
            }
            let out = qp_reencode(&new, &old, &encoded, &ends, nl);
            // The rewrite, up to how its line breaks are written (a CRLF, LF or a CR encoded
            // before a break: the encoder writes breaks as `nl`).
            let breaks = |s: &[u8]| {
                let mut t = s.to_vec();
                while let Some(i) = memchr::memmem::find(&t, b"\r\n") {
                    t.remove(i);
                }
                t
            };
            proptest::prop_assert_eq!(breaks(&qp_decode(&out).unwrap()), breaks(&new));
            if new == old {
                proptest::prop_assert_eq!(&out, &encoded);
            }
            // Every line is one of the old ones, or one written within the limit.
            let old_lines: std::collections::HashSet<&[u8]> =
                encoded.split(|&b| b == b'\n').collect();
            for line in out.split(|&b| b == b'\n') {
                let text = line.strip_suffix(b"\r").unwrap_or(line);
                proptest::prop_assert!(text.len() <= 76 || old_lines.contains(line));
            }
        }
    }
}
