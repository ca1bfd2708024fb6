//! The MIME structure of a message (RFC 2045, 2046), found without decoding any body: where
//! each part's header block and body start and end, and the few header fields the rewrite
//! reads (Content-Type with its parameters, Content-Transfer-Encoding, Content-Disposition).
//!
//! Offsets point into the buffer given to [`parse`]. A `message/rfc822` part sent as
//! 7bit/8bit/binary is parsed in place; an encoded one is left as a leaf for the caller to
//! decode and parse on its own. Decoding is the caller's business: a body is never copied here.
//!
//! How the structure is read where RFC 2046 leaves room:
//! - a delimiter is a line that starts with `--boundary` followed by `--`, or by nothing but
//!   spaces and tabs up to the end of the line; `--boundaryX` is not a delimiter of `boundary`;
//! - a part's body ends before the line break that precedes the next delimiter (that line
//!   break belongs to the delimiter);
//! - a multipart without a close delimiter ends where its enclosing body ends; one without
//!   any delimiter, or without a `boundary` parameter, is a leaf (left alone by the rewrite);
//! - a part without a blank line after its header fields is all header, with an empty body;
//! - a Content-Type whose type is not a token (`Content-Type: =`) is read as absent (RFC
//!   2045 §5.2); a damaged subtype is kept as it is (a `multipart/alternativ=` is still a
//!   multipart: display clients read any multipart subtype as mixed);
//! - junk before a parameter name (`;*\n\tboundary=…`) is skipped, as lenient readers do;
//! - with a field given twice, the last one counts for Content-Type and Content-Disposition;
//!   every Content-Transfer-Encoding field is kept so that the caller can refuse a part whose
//!   fields disagree.

use crate::mail::header;
use memchr::memmem;
use std::ops::Range;

/// Parts beyond this many in one message make it too costly to walk (each costs far more
/// memory than the few bytes a hostile part can take).
pub const MAX_PARTS: usize = 10_000;

/// Why the structure could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MimeError {
    /// Nested deeper than the caller's limit.
    TooDeep,
    /// More than [`MAX_PARTS`] parts.
    TooManyParts,
}

/// A part's Content-Transfer-Encoding fields disagree (which one a reader believes is not
/// ours to guess).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictingEncodings;

/// One MIME entity: a header block and a body.
#[derive(Debug)]
pub struct Part {
    /// The header fields, without the blank line that ends them.
    pub header: Range<usize>,
    /// The body.
    pub body: Range<usize>,
    /// Lowercased type and subtype; `text/plain` (or `message/rfc822` in a multipart/digest)
    /// when the part has no Content-Type.
    pub ctype: String,
    pub subtype: String,
    /// Content-Type parameters, names lowercased, values unquoted (RFC 2231 continuations
    /// and charset prefixes resolved).
    pub params: Vec<(String, String)>,
    /// Each Content-Transfer-Encoding field: the byte range of its value (after the colon,
    /// up to and including the field's line ending) and the value trimmed, comments removed.
    pub cte: Vec<(Range<usize>, String)>,
    /// Content-Disposition says `attachment`.
    pub attachment: bool,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    /// A body the caller may decode and read (or an encoded message/rfc822, or a multipart
    /// whose delimiters were not found).
    Leaf,
    /// The children of a multipart, in order.
    Multipart(Vec<Part>),
    /// A message/rfc822 (or message/global) sent without transfer encoding, parsed in place.
    /// `None` when its body holds no header field (not a message).
    Message(Option<Box<Part>>),
}

impl Part {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The transfer encoding, `None` when the part has no such field. When several fields
    /// disagree (7bit, 8bit and binary agree: none of them encodes), `Err(ConflictingEncodings)`.
    pub fn transfer_encoding(&self) -> Result<Option<&str>, ConflictingEncodings> {
        let mut values = self.cte.iter().map(|(_, v)| v.as_str());
        let Some(first) = values.next() else {
            return Ok(None);
        };
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b) || is_identity(a) && is_identity(b);
        if values.all(|v| same(v, first)) {
            Ok(Some(first))
        } else {
            Err(ConflictingEncodings)
        }
    }

    /// Sent without a transfer encoding (7bit, 8bit, binary, or none given).
    fn identity(&self) -> bool {
        match self.transfer_encoding() {
            Ok(None) => true,
            Ok(Some(v)) => is_identity(v),
            Err(ConflictingEncodings) => false,
        }
    }
}

fn is_identity(cte: &str) -> bool {
    ["7bit", "8bit", "binary", ""]
        .iter()
        .any(|k| cte.eq_ignore_ascii_case(k))
}

/// The structure of the message in `buf`. Depth counts multipart and message levels; the
/// top entity is at depth 0.
pub fn parse(buf: &[u8], max_depth: usize) -> Result<Part, MimeError> {
    let mut budget = MAX_PARTS;
    entity(buf, 0..buf.len(), false, 0, max_depth, &mut budget)
}

/// Does `block` hold at least one header field (`name:` with a name of printable ASCII)?
pub fn has_header_field(block: &[u8]) -> bool {
    header::fields(block).into_iter().any(|(a, b)| {
        let field = &block[a..b];
        let name = header::field_name(field);
        !name.is_empty()
            && field.get(name.len()) == Some(&b':')
            && name.iter().all(|&c| c.is_ascii_graphic() && c != b':')
    })
}

/// Where the header block of the entity at `range` ends and its body starts.
fn split_header(buf: &[u8], range: &Range<usize>) -> (usize, usize) {
    let s = &buf[range.clone()];
    if s.starts_with(b"\n") {
        return (range.start, range.start + 1);
    }
    if s.starts_with(b"\r\n") {
        return (range.start, range.start + 2);
    }
    let mut pos = 0;
    while let Some(i) = memchr::memchr(b'\n', &s[pos..]) {
        let next = pos + i + 1;
        match s.get(next) {
            Some(b'\n') => return (range.start + next, range.start + next + 1),
            Some(b'\r') if s.get(next + 1) == Some(&b'\n') => {
                return (range.start + next, range.start + next + 2)
            }
            _ => pos = next,
        }
    }
    (range.end, range.end)
}

fn entity(
    buf: &[u8],
    range: Range<usize>,
    in_digest: bool,
    depth: usize,
    max_depth: usize,
    budget: &mut usize,
) -> Result<Part, MimeError> {
    if depth > max_depth {
        return Err(MimeError::TooDeep);
    }
    if *budget == 0 {
        return Err(MimeError::TooManyParts);
    }
    *budget -= 1;
    let (head_end, body_start) = split_header(buf, &range);
    let mut part = Part {
        header: range.start..head_end,
        body: body_start..range.end,
        ctype: String::new(),
        subtype: String::new(),
        params: Vec::new(),
        cte: Vec::new(),
        attachment: false,
        kind: Kind::Leaf,
    };
    let block = &buf[part.header.clone()];
    let mut content_type = None;
    let mut disposition = None;
    for (a, b) in header::fields(block) {
        let field = &block[a..b];
        let name = header::field_name(field);
        let Some(colon) = memchr::memchr(b':', field) else {
            continue;
        };
        let value_at = range.start + a + colon + 1;
        let value = &field[colon + 1..];
        if name.eq_ignore_ascii_case(b"content-type") {
            content_type = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-disposition") {
            disposition = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
            let text = unfold(value);
            let text = strip_comments(&text);
            part.cte
                .push((value_at..range.start + b, text.trim().to_string()));
        }
    }
    match content_type.map(parse_content_type) {
        Some((t, s, p)) if is_token(&t) => (part.ctype, part.subtype, part.params) = (t, s, p),
        _ if in_digest => (part.ctype, part.subtype) = ("message".into(), "rfc822".into()),
        _ => (part.ctype, part.subtype) = ("text".into(), "plain".into()),
    }
    part.attachment = disposition
        .map(parse_content_type)
        .is_some_and(|(t, _, _)| t == "attachment");
    if part.ctype == "multipart" {
        let boundary = part.param("boundary").map(str::to_string);
        if let Some(boundary) = boundary.filter(|b| !b.is_empty()) {
            let digest = part.subtype == "digest";
            if let Some(ranges) = split_multipart(buf, part.body.clone(), boundary.as_bytes()) {
                let mut children = Vec::with_capacity(ranges.len());
                for r in ranges {
                    children.push(entity(buf, r, digest, depth + 1, max_depth, budget)?);
                }
                part.kind = Kind::Multipart(children);
            }
        }
    } else if part.ctype == "message"
        && (part.subtype == "rfc822" || part.subtype == "global")
        && part.identity()
    {
        let inner = part.body.clone();
        let (inner_head, _) = split_header(buf, &inner);
        part.kind = if has_header_field(&buf[inner.start..inner_head]) {
            Kind::Message(Some(Box::new(entity(
                buf,
                inner,
                false,
                depth + 1,
                max_depth,
                budget,
            )?)))
        } else {
            Kind::Message(None)
        };
    }
    Ok(part)
}

/// The body ranges of the parts of a multipart whose body is `body`; `None` when no
/// delimiter is found.
fn split_multipart(buf: &[u8], body: Range<usize>, boundary: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut dash = Vec::with_capacity(boundary.len() + 2);
    dash.extend_from_slice(b"--");
    dash.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&dash);
    let hay = &buf[body.clone()];
    let mut parts = Vec::new();
    // Start of the current part (after an opening delimiter line), if any.
    let mut open: Option<usize> = None;
    let mut from = 0;
    while let Some(i) = finder.find(&hay[from..]) {
        let at = from + i;
        from = at + 1;
        if at > 0 && hay[at - 1] != b'\n' {
            continue;
        }
        let after = &hay[at + dash.len()..];
        let close = after.starts_with(b"--");
        let line_len = memchr::memchr(b'\n', after).map_or(after.len(), |n| n + 1);
        if !close
            && !after[..line_len]
                .iter()
                .all(|&c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        {
            continue;
        }
        if let Some(start) = open {
            // The line break before the delimiter belongs to it.
            let mut end = at;
            if end > start && hay[end - 1] == b'\n' {
                end -= 1;
                if end > start && hay[end - 1] == b'\r' {
                    end -= 1;
                }
            }
            parts.push(body.start + start..body.start + end.max(start));
        }
        if close {
            return Some(parts);
        }
        let next = at + dash.len() + line_len;
        open = Some(next);
        from = next;
    }
    let start = open?;
    parts.push(body.start + start..body.end);
    Some(parts)
}

/// A header value with its folding line breaks removed.
fn unfold(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if b != b'\r' && b != b'\n' {
            out.push(if b.is_ascii() { b as char } else { '\u{fffd}' });
        }
    }
    out
}

/// `value` without (comments), which may nest; quoted strings are kept as they are.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || depth > 0 => {
                let next = chars.next();
                if depth == 0 {
                    out.push(c);
                    out.extend(next);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `type/subtype; name=value; …` → lowercased type and subtype, and the parameters. A
/// Content-Disposition value reads the same way (its type, no subtype).
fn parse_content_type(value: &[u8]) -> (String, String, Vec<(String, String)>) {
    let text = strip_comments(&unfold(value));
    let mut items = split_params(&text).into_iter();
    let first = items.next().unwrap_or_default();
    let (t, s) = first.split_once('/').unwrap_or((first.as_str(), ""));
    let ctype = t.trim().to_ascii_lowercase();
    let subtype = s.trim().to_ascii_lowercase();
    let mut plain: Vec<(String, String)> = Vec::new();
    // RFC 2231: name*=charset'lang'%xx, name*0=…, name*1*=…
    let mut pieces: Vec<(String, u32, bool, String)> = Vec::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            continue;
        };
        let name = name
            .trim()
            .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_ascii_lowercase();
        let value = unquote(value.trim());
        match name.split_once('*') {
            None => plain.push((name, value)),
            Some((base, rest)) => {
                let encoded = rest.ends_with('*') || rest.is_empty();
                let index = rest.trim_end_matches('*');
                let index = if index.is_empty() {
                    Some(0)
                } else {
                    index.parse::<u32>().ok()
                };
                if let Some(n) = index {
                    pieces.push((base.to_string(), n, encoded, value));
                }
            }
        }
    }
    pieces.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut joined: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        let base = pieces[i].0.clone();
        let mut bytes = Vec::new();
        let mut expected = 0;
        while i < pieces.len() && pieces[i].0 == base {
            let (_, n, encoded, v) = &pieces[i];
            if *n == expected {
                let v = if *encoded && *n == 0 {
                    // charset'language'value
                    v.splitn(3, '\'').nth(2).unwrap_or(v)
                } else {
                    v.as_str()
                };
                if *encoded {
                    bytes.extend_from_slice(&crate::mail::url::percent_decode(v));
                } else {
                    bytes.extend_from_slice(v.as_bytes());
                }
                expected += 1;
            }
            i += 1;
        }
        joined.push((base, String::from_utf8_lossy(&bytes).into_owned()));
    }
    if !joined.is_empty() {
        // A parameter given both ways: the RFC 2231 form wins. One pass over the plain ones
        // (not one per joined name: a header of 100 000 parameters would be quadratic).
        let names: std::collections::HashSet<&str> =
            joined.iter().map(|(n, _)| n.as_str()).collect();
        plain.retain(|(n, _)| !names.contains(n.as_str()));
        plain.extend(joined);
    }
    (ctype, subtype, plain)
}

/// An RFC 2045 token: not empty, printable ASCII without tspecials. A Content-Type whose type
/// is not one is read as absent (RFC 2045 §5.2: text/plain).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&c))
}

/// Split at `;` outside quoted strings.
fn split_params(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"') else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn children(p: &Part) -> &[Part] {
        match &p.kind {
            Kind::Multipart(kids) => kids,
            _ => panic!("not multipart"),
        }
    }

    fn body<'a>(buf: &'a [u8], p: &Part) -> &'a [u8] {
        &buf[p.body.clone()]
    }

    #[test]
    fn single_part() {
        let m = b"From: a@b\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\r\n<p>hi</p>\r\n";
        let p = parse(m, 10).unwrap();
        assert_eq!((p.ctype.as_str(), p.subtype.as_str()), ("text", "html"));
        assert_eq!(p.param("charset"), Some("utf-8"));
        assert_eq!(body(m, &p), b"<p>hi</p>\r\n");
        assert!(matches!(p.kind, Kind::Leaf));
    }

    #[test]
    fn multipart_bodies_end_before_the_delimiters_line_break() {
        let m = b"Content-Type: multipart/alternative; boundary=b1\n\npreamble\n--b1\nContent-Type: text/plain\n\nplain\n\n--b1 \nContent-Transfer-Encoding: quoted-printable\n (folded)\nContent-Type: text/html\n\n<a>\n--b1--\nepilogue\n";
        let p = parse(m, 10).unwrap();
        let kids = children(&p);
        assert_eq!(kids.len(), 2);
        assert_eq!(body(m, &kids[0]), b"plain\n");
        assert_eq!(body(m, &kids[1]), b"<a>");
        assert_eq!(kids[1].subtype, "html");
        assert_eq!(kids[1].transfer_encoding(), Ok(Some("quoted-printable")));
        let (r, _) = &kids[1].cte[0];
        assert_eq!(&m[r.clone()], b" quoted-printable\n (folded)\n");
    }

    #[test]
    fn a_boundary_prefix_or_mid_line_is_not_a_delimiter() {
        let m = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\nx --b\r\n--bb\r\n--b--\r\n";
        let p = parse(m, 10).unwrap();
        let kids = children(&p);
        assert_eq!(kids.len(), 1);
        assert_eq!(body(m, &kids[0]), b"x --b\r\n--bb");
        assert_eq!(kids[0].ctype, "text");
    }

    #[test]
    fn unterminated_and_missing_delimiters() {
        let m = b"Content-Type: multipart/mixed; boundary=q\n\n--q\n\nlast part\n";
        let p = parse(m, 10).unwrap();
        let kids = children(&p);
        assert_eq!(body(m, &kids[0]), b"last part\n");
        let m = b"Content-Type: multipart/mixed; boundary=q\n\nno parts\n";
        assert!(matches!(parse(m, 10).unwrap().kind, Kind::Leaf));
        let m = b"Content-Type: multipart/mixed\n\n--q\n\nx\n";
        assert!(matches!(parse(m, 10).unwrap().kind, Kind::Leaf));
    }

    #[test]
    fn nested_message_in_place_and_digest_default() {
        let m = b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: inner\nContent-Type: text/html\n\n<p>in</p>\n--d--\n";
        let p = parse(m, 10).unwrap();
        let kids = children(&p);
        assert_eq!(kids[0].ctype, "message");
        let Kind::Message(Some(inner)) = &kids[0].kind else {
            panic!("not a message")
        };
        assert_eq!(inner.subtype, "html");
        assert_eq!(body(m, inner), b"<p>in</p>");
        // Encoded: a leaf for the caller.
        let m = b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoKeQo=\n";
        assert!(matches!(parse(m, 10).unwrap().kind, Kind::Leaf));
        let m = b"Content-Type: message/rfc822\n\nno header here\n";
        assert!(matches!(parse(m, 10).unwrap().kind, Kind::Message(None)));
    }

    #[test]
    fn parameters_quoted_commented_and_rfc2231() {
        let (t, s, p) = parse_content_type(
            b" Text/HTML (comment; x=y) ;\r\n charset*=utf-8''%75tf-8 ; name*0=\"a;b\" ; name*1*=%41; q=\"x\\\"y\"",
        );
        assert_eq!((t.as_str(), s.as_str()), ("text", "html"));
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("charset"), Some("utf-8"));
        assert_eq!(get("name"), Some("a;bA"));
        assert_eq!(get("q"), Some("x\"y"));
    }

    #[test]
    fn many_parameters_given_both_ways() {
        // Every other name given both ways: the RFC 2231 form wins, the plain one goes, and the
        // others stay (once each, in order, then the joined ones in name order).
        let mut v = String::from("application/octet-stream");
        for i in 0..20_000 {
            v.push_str(&format!("; p{i:05}=plain"));
            if i % 2 == 0 {
                v.push_str(&format!("; p{i:05}*0=a; p{i:05}*1*=%42"));
            }
        }
        let (_, _, p) = parse_content_type(v.as_bytes());
        assert_eq!(p.len(), 20_000);
        assert_eq!(p[0], ("p00001".to_string(), "plain".to_string()));
        assert_eq!(p[9_999], ("p19999".to_string(), "plain".to_string()));
        assert_eq!(p[10_000], ("p00000".to_string(), "aB".to_string()));
        assert_eq!(p[19_999], ("p19998".to_string(), "aB".to_string()));
    }

    #[test]
    fn an_invalid_content_type_is_text_plain() {
        for ct in ["=", "te xt/html", "/html", ""] {
            let m = format!("Content-Type: {ct}; boundary=x\n\n--x\n\nbody\n");
            let p = parse(m.as_bytes(), 10).unwrap();
            assert_eq!(
                (p.ctype.as_str(), p.subtype.as_str()),
                ("text", "plain"),
                "{ct}"
            );
        }
    }

    #[test]
    fn damaged_subtypes_and_parameter_names() {
        let m = b"Content-Type: multipart/alternativ=;*\n\tboundary=\"b\"\n\n--b\nContent-Type: text/html\n\n<p>\n--b--\n";
        let p = parse(m, 10).unwrap();
        assert_eq!(p.subtype, "alternativ=");
        let kids = children(&p);
        assert_eq!(kids[0].subtype, "html");
        let p = parse(b"Content-Type: text\n\nx", 10).unwrap();
        assert_eq!((p.ctype.as_str(), p.subtype.as_str()), ("text", ""));
    }

    #[test]
    fn limits() {
        let nest = |levels: usize| {
            let mut m = Vec::new();
            for i in 0..levels {
                m.extend_from_slice(
                    format!("Content-Type: multipart/mixed; boundary=x{i}\n\n--x{i}\n").as_bytes(),
                );
            }
            m
        };
        assert!(parse(&nest(8), 8).is_ok());
        assert_eq!(parse(&nest(9), 8).unwrap_err(), MimeError::TooDeep);
        let flat = |children: usize| {
            let mut m = b"Content-Type: multipart/mixed; boundary=x\n\n".to_vec();
            for _ in 0..children {
                m.extend_from_slice(b"--x\n\n");
            }
            m.extend_from_slice(b"--x--\n");
            m
        };
        assert!(parse(&flat(MAX_PARTS - 1), 8).is_ok());
        assert_eq!(
            parse(&flat(MAX_PARTS), 8).unwrap_err(),
            MimeError::TooManyParts
        );
    }

    /// Every range lies inside the buffer, a part's header ends before its body, and children
    /// lie inside their parent's body, on the corpus and on mangled copies of it.
    #[test]
    fn ranges_nest_inside_their_parents_on_mangled_corpus_messages() {
        fn check(p: &Part, outer: &Range<usize>, len: usize) {
            assert!(p.header.start <= p.header.end && p.header.end <= p.body.start);
            assert!(p.body.start <= p.body.end && p.body.end <= len);
            assert!(outer.start <= p.header.start && p.body.end <= outer.end);
            for (r, _) in &p.cte {
                assert!(p.header.start <= r.start && r.end <= p.header.end);
            }
            match &p.kind {
                Kind::Multipart(kids) => kids.iter().for_each(|k| check(k, &p.body, len)),
                Kind::Message(Some(inner)) => check(inner, &p.body, len),
                _ => {}
            }
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "eml"))
        {
            let raw = std::fs::read(f).unwrap();
            for round in 0..20 {
                let mut m = raw.clone();
                // Cut, duplicate or overwrite a few stretches: boundaries and headers break.
                for _ in 0..round % 5 {
                    if m.is_empty() {
                        break;
                    }
                    let at = (next() as usize) % m.len();
                    let n = ((next() as usize) % 64).min(m.len() - at);
                    match next() % 3 {
                        0 => {
                            m.drain(at..at + n);
                        }
                        1 => {
                            let dup = m[at..at + n].to_vec();
                            m.splice(at..at, dup);
                        }
                        _ => m[at..at + n]
                            .iter_mut()
                            .for_each(|b| *b = b"-\n\r=\";"[next() as usize % 6]),
                    }
                }
                if let Ok(p) = parse(&m, 32) {
                    check(&p, &(0..m.len()), m.len());
                }
            }
        }
    }

    #[test]
    fn part_without_headers_or_blank_line() {
        let m = b"Content-Type: multipart/mixed; boundary=x\n\n--x\n\nbody only\n--x\nSubject: all header\n--x--\n";
        let p = parse(m, 10).unwrap();
        let kids = children(&p);
        assert_eq!(body(m, &kids[0]), b"body only");
        assert_eq!(body(m, &kids[1]), b"");
        assert_eq!(&m[kids[1].header.clone()], b"Subject: all header");
    }
}
