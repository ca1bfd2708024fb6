//! Rewriting `text/plain` parts: the URLs in the text go through the same link pipeline as
//! HTML links. Only the URL spans change; every other character stays as it was.

use crate::mail::link::{LinkJudge, OpaqueLinks, MARK_TEXT};
use crate::mail::outcome::{Action, Finding, Kind, SkipReason};

/// A URL found in the text: byte range in the decoded string, and the URL itself (for a
/// `<…>`-wrapped URL broken over lines, the pieces joined).
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
    pub url: String,
}

/// Find http(s) URLs in plain text.
pub fn find_urls(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    // Found from their "://" (rarer in text than the letter h), then the scheme before it.
    for colon in memchr::memmem::find_iter(bytes, b"://") {
        let start = if colon >= 5 && bytes[colon - 5..colon].eq_ignore_ascii_case(b"https") {
            colon - 5
        } else if colon >= 4 && bytes[colon - 4..colon].eq_ignore_ascii_case(b"http") {
            colon - 4
        } else {
            continue;
        };
        if start < pos {
            continue;
        }
        pos = start + 1;
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'/') {
            continue;
        }
        // <URL> may be broken over lines (RFC 3986 appendix C): whitespace inside is dropped.
        if start > 0 && bytes[start - 1] == b'<' {
            // A `>` 4096 bytes away or more is not taken: look no further (a text of many
            // unclosed `<http://` would otherwise be searched to its end from each).
            let window = &bytes[start..bytes.len().min(start + 4096)];
            if let Some(close) = memchr::memchr(b'>', window).map(|c| start + c) {
                let inner = &text[start..close];
                if close - start < 4096
                    && !inner.contains('<')
                    && !inner.contains("\n\n")
                    && !inner.contains("\r\n\r\n")
                {
                    let url: String = inner.split_whitespace().collect();
                    out.push(Found {
                        start,
                        end: close,
                        url,
                    });
                    pos = close;
                    continue;
                }
            }
        }
        let mut end = start;
        while end < bytes.len() && is_url_byte(bytes[end]) {
            end += 1;
        }
        let end = trim_punctuation(bytes, start, end);
        if end > start + "https://".len() - 1 {
            out.push(Found {
                start,
                end,
                url: text[start..end].to_string(),
            });
        }
        pos = end.max(pos);
    }
    out
}

/// Where the URL at `bytes[start..end]` ends once the sentence's punctuation is taken off:
/// trailing `.`, `,`, `;`, … and closing brackets without an opening one in the URL.
fn trim_punctuation(bytes: &[u8], start: usize, mut end: usize) -> usize {
    // Trailing punctuation belongs to the sentence; unbalanced closers too. The brackets
    // are counted once, when a closer ends the URL, then as they are trimmed (not
    // recounted for each: a URL ending in thousands of `)` made that quadratic).
    let mut brackets: Option<[usize; 4]> = None;
    while end > start {
        let last = bytes[end - 1];
        if matches!(last, b')' | b']') && brackets.is_none() {
            let mut n = [0; 4];
            for &c in &bytes[start..end] {
                match c {
                    b'(' => n[0] += 1,
                    b')' => n[1] += 1,
                    b'[' => n[2] += 1,
                    b']' => n[3] += 1,
                    _ => {}
                }
            }
            brackets = Some(n);
        }
        let trim = match (last, brackets.as_mut()) {
            (b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'' | b'*', _) => true,
            (b')', Some(n)) if n[1] > n[0] => {
                n[1] -= 1;
                true
            }
            (b']', Some(n)) if n[3] > n[2] => {
                n[3] -= 1;
                true
            }
            _ => false,
        };
        if !trim {
            break;
        }
        end -= 1;
    }
    end
}

fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

/// Could `content` contain an http(s) URL at all? (Cheap test before decoding the charset.)
fn may_contain_url(content: &[u8]) -> bool {
    memchr::memmem::find_iter(content, b"://").any(|i| {
        i >= 4
            && (starts_with_ci(&content[i - 4..], b"http")
                || i >= 5 && starts_with_ci(&content[i - 5..], b"https"))
    })
}

/// `url` as it must be written into text so that `find_urls` finds all of it again (a
/// second run must see the URL the first one wrote): the bytes it stops at are
/// percent-encoded, and so is a last character it would take for the sentence's punctuation
/// (`.`, `:`, an unbalanced `)`, …); a trailing `?` (an empty query) is dropped.
fn findable(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        if c.is_ascii() && !is_url_byte(c as u8) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    while out.ends_with('?') {
        out.pop();
    }
    if let Some(last) = out.chars().last() {
        let unbalanced = |open: char, close: char| {
            last == close && out.matches(close).count() > out.matches(open).count()
        };
        if matches!(last, '.' | ',' | ';' | ':' | '!' | '\'' | '*')
            || unbalanced('(', ')')
            || unbalanced('[', ']')
        {
            out.pop();
            out.push_str(&format!("%{:02X}", last as u32));
        }
    }
    out
}

fn is_url_byte(b: u8) -> bool {
    b > 0x20
        && b < 0x7f
        && !matches!(
            b,
            b'<' | b'>' | b'"' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^'
        )
}

/// Rewrite a decoded text/plain part in `encoding`. `Ok(None)` when nothing changes.
pub fn rewrite(
    content: &[u8],
    encoding: &'static encoding_rs::Encoding,
    links: LinkJudge<'_>,
    opaque_links: OpaqueLinks,
    part: &str,
    findings: &mut Vec<Finding>,
) -> Result<Option<Vec<u8>>, SkipReason> {
    // Fast path: no URL at all, nothing to decode.
    if !may_contain_url(content) {
        return Ok(None);
    }
    let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(content) else {
        return Err(SkipReason::BadCharset);
    };
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut changed = false;
    let mut found_here = Vec::new();
    for u in find_urls(&text) {
        let Some(res) = links(&u.url) else {
            continue;
        };
        let mut f = Finding::new(Kind::Link, res.action);
        f.url = Some(u.url.clone());
        f.context = Some("text");
        f.part = part.to_string();
        f.rule = res.rule;
        f.vendor = res.vendor;
        f.chain = res.chain;
        f.detail = res.detail;
        out.push_str(&text[pos..u.start]);
        let mut end = u.end;
        match (res.action, res.new_url) {
            (Action::Unwrapped | Action::Cleaned, Some(new)) => {
                let new = findable(&new);
                out.push_str(&new);
                f.new_url = Some(new);
                changed = true;
            }
            _ => out.push_str(&text[u.start..u.end]),
        }
        // A link still going through a click tracker is marked, once: after the URL, or after
        // the closing '>' of a <URL>.
        if res.still_tracked && opaque_links == OpaqueLinks::Mark {
            if text[end..].starts_with('>') {
                out.push('>');
                end += 1;
            }
            if !text[end..].starts_with(MARK_TEXT) {
                out.push_str(MARK_TEXT);
                if f.action == Action::KeptOpaque {
                    f.action = Action::Marked;
                }
                changed = true;
            }
        }
        pos = end;
        found_here.push(f);
    }
    out.push_str(&text[pos..]);
    if !changed {
        findings.extend(found_here);
        return Ok(None);
    }
    // Only the URL spans may differ: the charset must round-trip the text we did not touch.
    let (original, _, unmappable) = encoding.encode(&text);
    if unmappable || original.as_ref() != content {
        return Err(SkipReason::BadCharset);
    }
    let (bytes, _, _) = encoding.encode(&out);
    findings.extend(found_here);
    Ok(Some(bytes.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(t: &str) -> Vec<String> {
        find_urls(t).into_iter().map(|f| f.url).collect()
    }

    /// The trim as first written: the brackets counted before anything is trimmed.
    fn trim_counting_first(bytes: &[u8], start: usize, mut end: usize) -> usize {
        let count = |b: u8| bytes[start..end].iter().filter(|&&c| c == b).count();
        let (mut parens, mut squares) = ((count(b'('), count(b')')), (count(b'['), count(b']')));
        while end > start {
            let trim = match bytes[end - 1] {
                b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'' | b'*' => true,
                b')' if parens.1 > parens.0 => {
                    parens.1 -= 1;
                    true
                }
                b']' if squares.1 > squares.0 => {
                    squares.1 -= 1;
                    true
                }
                _ => false,
            };
            if !trim {
                break;
            }
            end -= 1;
        }
        end
    }

    proptest::proptest! {
        #[test]
        fn trim_counts_brackets_as_before(s in "[a()\\[\\].,:?!']{0,16}") {
            let b = s.as_bytes();
            for start in 0..=b.len() {
                proptest::prop_assert_eq!(
                    trim_punctuation(b, start, b.len()),
                    trim_counting_first(b, start, b.len())
                );
            }
        }
    }

    #[test]
    fn closers_trimmed_as_counted_and_far_angle_brackets_ignored() {
        // Balanced pairs stay, unbalanced closers and punctuation after them go, however many.
        let many = format!("(see https://a.example/p_(1)_[2]{}.", ")".repeat(10_000));
        assert_eq!(urls(&many), ["https://a.example/p_(1)_[2]"]);
        assert_eq!(
            urls("[x https://a.example/q]).] y"),
            ["https://a.example/q"]
        );
        // An unclosed `<` before many URLs: each is read as a bare URL.
        let text = "<https://a.example/1 ".repeat(2_000);
        assert_eq!(urls(&text).len(), 2_000);
        // A `>` 4096 bytes away or more does not close `<URL>`; nearer, it does.
        let far = format!("<https://a.example/{}> end", "x ".repeat(2_100));
        assert_eq!(urls(&far), ["https://a.example/x"]);
        assert_eq!(
            urls("<https://a.example/a\n b> end"),
            ["https://a.example/ab"]
        );
    }

    #[test]
    fn finds_urls_in_prose() {
        assert_eq!(urls("See https://a.example/x?y=1. Then (http://b.example/p_(1)) and https://c.example/z, ok"),
            ["https://a.example/x?y=1", "http://b.example/p_(1)", "https://c.example/z"]);
        assert_eq!(
            urls("Shop now [https://a.example/x]"),
            ["https://a.example/x"]
        );
        assert_eq!(
            urls("nohttp://x.example xhttps://y.example"),
            Vec::<String>::new()
        );
        assert_eq!(urls("HTTPS://UPPER.example/A"), ["HTTPS://UPPER.example/A"]);
    }

    #[test]
    fn written_urls_are_found_whole() {
        for url in [
            "https://a.example/L0/https:",
            "https://a.example/x.",
            "https://a.example/p_(1",
            "https://a.example/p)",
            "https://a.example/q?",
            "https://a.example/a|b",
        ] {
            let written = findable(url);
            assert_eq!(
                urls(&format!("see {written} [tracked]")),
                std::slice::from_ref(&written),
                "{url}"
            );
        }
        assert_eq!(
            findable("https://a.example/L0/https:"),
            "https://a.example/L0/https%3A"
        );
        assert_eq!(findable("https://a.example/q?"), "https://a.example/q");
    }

    #[test]
    fn joins_wrapped_urls_in_angle_brackets() {
        let t = "Read it here <https://a.example/very/long/\r\n  path?x=1>\r\nThanks";
        let f = find_urls(t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].url, "https://a.example/very/long/path?x=1");
        assert_eq!(&t[f[0].end..f[0].end + 1], ">");
    }
}
