//! The top-level header block: find where it ends, drop `X-Trackless` fields a sender (or an
//! earlier run) put there, and append ours. Every other header byte stays as it was.

/// Name of the header we write.
pub const HEADER: &str = "X-Trackless";

/// Byte ranges of each header field (including continuation lines and the line ending) in
/// `block`, which is the header block without the blank separator line.
pub fn fields(block: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < block.len() {
        let line_end = block[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(block.len(), |i| pos + i + 1);
        // A continuation line with no field before it (hostile input starting with
        // whitespace) is a field of its own, so that it is kept like any other.
        let continuation = matches!(block[pos], b' ' | b'\t') && start.is_some();
        if !continuation {
            if let Some(s) = start {
                out.push((s, pos));
            }
            start = Some(pos);
        }
        pos = line_end;
    }
    if let Some(s) = start {
        out.push((s, block.len()));
    }
    out
}

/// Field name of a raw header field.
pub fn field_name(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == b':').unwrap_or(0);
    let mut name = &field[..end];
    while let Some((last, rest)) = name.split_last() {
        if last.is_ascii_whitespace() {
            name = rest;
        } else {
            break;
        }
    }
    name
}

/// The top-level header block including the blank line that ends it (all of `raw` when
/// there is no body). Found by scanning for the first empty line, without parsing.
pub fn top_block(raw: &[u8]) -> &[u8] {
    // A message that starts with its blank line has no header fields (as the MIME walk reads
    // it): the blank line is not one that follows a line break.
    if raw.starts_with(b"\n") {
        return &raw[..1];
    }
    if raw.starts_with(b"\r\n") {
        return &raw[..2];
    }
    let mut pos = 0;
    while let Some(i) = memchr::memchr(b'\n', &raw[pos..]) {
        let next = pos + i + 1;
        match raw.get(next) {
            Some(b'\n') => return &raw[..next + 1],
            Some(b'\r') if raw.get(next + 1) == Some(&b'\n') => return &raw[..next + 2],
            _ => pos = next,
        }
    }
    raw
}

/// Where the header block ends: the offset of the blank line that separates it from the body
/// (or the end of the headers when there is no body). `body_offset` is where the body starts.
pub fn block_end(raw: &[u8], body_offset: usize) -> usize {
    let head = &raw[..body_offset.min(raw.len())];
    // The blank line is the last line of `head`; its ending and the previous line's need not
    // match (a last field ending in LF, then a CRLF blank line, is seen in hostile mail).
    let blank = if head.ends_with(b"\r\n") {
        2
    } else if head.ends_with(b"\n") {
        1
    } else {
        return head.len();
    };
    let before = &head[..head.len() - blank];
    if before.is_empty() || before.ends_with(b"\n") {
        head.len() - blank
    } else {
        head.len()
    }
}

/// Stamp a rewritten message in place: its header block `msg[..head_end]` loses any
/// `X-Trackless` field and gets ours appended; the rest (the blank line and the body) is
/// moved, not copied into a second buffer (a 64 MiB message is held once, not twice).
pub fn restamp(msg: &mut Vec<u8>, head_end: usize, value: &str, nl: &[u8]) {
    let head_end = head_end.min(msg.len());
    let head = &msg[..head_end];
    let mut out = Vec::with_capacity(head.len() + value.len() + 32);
    for (a, b) in fields(head) {
        let field = &head[a..b];
        if !field_name(field).eq_ignore_ascii_case(HEADER.as_bytes()) {
            out.extend_from_slice(field);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(nl);
    }
    out.extend_from_slice(&fold(HEADER, value, nl));
    out.extend_from_slice(nl);
    // The rest moves by one memmove (Vec::splice would copy the new block byte by byte).
    let tail = msg.len() - head_end;
    if out.len() > head_end {
        msg.resize(out.len() + tail, 0);
    }
    msg.copy_within(head_end..head_end + tail, out.len());
    msg.truncate(out.len() + tail);
    msg[..out.len()].copy_from_slice(&out);
}

/// `Name: value` folded at "; " so that lines stay within 78 characters (no line ending).
pub fn fold(name: &str, value: &str, nl: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 16);
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    let mut col = name.len() + 1;
    for (i, item) in value.split("; ").enumerate() {
        let piece = if i + 1 < value.split("; ").count() {
            format!("{item};")
        } else {
            item.to_string()
        };
        if col + 1 + piece.len() > 78 && col > name.len() + 1 {
            out.extend_from_slice(nl);
            col = 0;
        }
        out.push(b' ');
        out.extend_from_slice(piece.as_bytes());
        col += 1 + piece.len();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn block_end_with_mixed_line_endings() {
        // Last field ending in LF, blank line in CRLF (and the other way round).
        let raw = b"A: 1\r\nB: 2\n\r\nbody";
        assert_eq!(block_end(raw, 13), 11);
        let raw = b"A: 1\r\n\nbody";
        assert_eq!(block_end(raw, 7), 6);
        assert_eq!(block_end(b"A: 1\r\n\r\nbody", 8), 6);
        assert_eq!(block_end(b"A: 1\n\nbody", 6), 5);
        assert_eq!(block_end(b"\r\nbody", 2), 0);
        assert_eq!(block_end(b"A: 1", 4), 4);
    }

    use super::*;

    #[test]
    fn top_block_ends_at_the_first_blank_line_even_the_first_line() {
        assert_eq!(
            top_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(top_block(b"A: 1\n\nbody"), b"A: 1\n\n");
        // No header fields at all: the block is the blank line alone, as the MIME walk reads
        // it (not the lines of the body up to the next blank line).
        assert_eq!(top_block(b"\r\nFrom: x\r\n\r\nbody"), b"\r\n");
        assert_eq!(top_block(b"\nFrom: x\n\nbody"), b"\n");
        assert_eq!(top_block(b"A: 1"), b"A: 1");
        assert_eq!(top_block(b""), b"");
    }

    #[test]
    fn a_leading_continuation_line_is_kept() {
        let head = b" stray continuation\r\nFrom: a\r\n x\r\nX-Trackless: forged\r\n";
        assert_eq!(fields(head), vec![(0, 21), (21, 34), (34, 55)]);
        let mut out = [&head[..], b"\r\nbody"].concat();
        restamp(&mut out, head.len(), "pixels=1", b"\r\n");
        assert!(
            out.starts_with(b" stray continuation\r\nFrom: a\r\n x\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert!(!out.windows(6).any(|w| w == b"forged"));
    }

    #[test]
    fn fields_with_continuations() {
        let block = b"From: a\r\nSubject: one\r\n two\r\nX-Trackless: forged\r\n";
        let f = fields(block);
        assert_eq!(f.len(), 3);
        assert_eq!(&block[f[1].0..f[1].1], b"Subject: one\r\n two\r\n");
        assert_eq!(field_name(&block[f[2].0..f[2].1]), b"X-Trackless");
    }

    #[test]
    fn restamp_replaces_and_appends() {
        let head = b"From: a\r\nx-trackless : pixels=9\r\n  more\r\nTo: b\r\n";
        let mut out = [&head[..], b"\r\nbody"].concat();
        restamp(&mut out, head.len(), "pixels=1; fonts=0", b"\r\n");
        assert_eq!(
            out,
            b"From: a\r\nTo: b\r\nX-Trackless: pixels=1; fonts=0\r\n\r\nbody".to_vec()
        );
    }

    /// In place, the header block may grow or shrink (a long forged field replaced by a
    /// short one); the body after it moves whole.
    #[test]
    fn restamp_in_place_grows_and_shrinks() {
        let body = b"\r\nline one\r\nline two\r\n".repeat(50);
        for forged in [
            "",
            "X-Trackless: x\r\n",
            &format!("X-Trackless: {}\r\n", "f".repeat(900)),
        ] {
            let head = format!("From: a\r\n{forged}To: b\r\n");
            let mut msg = [head.as_bytes(), &body].concat();
            restamp(&mut msg, head.len(), "pixels=1; fonts=0", b"\r\n");
            let want = [
                &b"From: a\r\nTo: b\r\nX-Trackless: pixels=1; fonts=0\r\n"[..],
                &body,
            ]
            .concat();
            assert_eq!(msg, want, "{} bytes forged", forged.len());
        }
    }

    #[test]
    fn block_end_finds_separator() {
        assert_eq!(block_end(b"A: b\r\n\r\nbody", 8), 6);
        assert_eq!(block_end(b"A: b\n\nbody", 6), 5);
        assert_eq!(block_end(b"A: b\n", 5), 5);
    }

    #[test]
    fn fold_keeps_lines_short() {
        let v = (0..20)
            .map(|i| format!("item{i}=value"))
            .collect::<Vec<_>>()
            .join("; ");
        let folded = fold("X-Trackless", &v, b"\r\n");
        for line in folded.split(|&b| b == b'\n') {
            assert!(line.len() <= 79, "{}", String::from_utf8_lossy(line));
        }
        let unfolded = String::from_utf8(folded).unwrap().replace("\r\n", "");
        assert_eq!(unfolded, format!("X-Trackless: {v}"));
    }
}
