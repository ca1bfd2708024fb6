//! HTML character references in attribute values. lol_html hands attribute values over raw,
//! so URLs must be decoded before they are looked at and escaped again before they are written.

use std::borrow::Cow;

/// Decode the character references that occur in URLs and CSS in attribute values:
/// numeric ones, and the named ones mail HTML uses. Following the HTML rule for attributes,
/// a named reference without `;` is only decoded for `&amp` not followed by an alphanumeric
/// or `=` (so `?a=1&copy=2` stays as it is).
pub fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        match decode_one(tail) {
            Some((ch, used)) => {
                out.push_str(ch.as_ref());
                rest = &tail[used..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decode one reference at the start of `s` (which starts with '&').
fn decode_one(s: &str) -> Option<(Cow<'static, str>, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let (hex, start) = match b.get(2) {
            Some(b'x') | Some(b'X') => (true, 3),
            _ => (false, 2),
        };
        let digits_end = b[start..]
            .iter()
            .position(|c| {
                !(if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                })
            })
            .map_or(b.len(), |p| start + p);
        if digits_end == start || digits_end - start > 8 {
            return None;
        }
        let n = u32::from_str_radix(&s[start..digits_end], if hex { 16 } else { 10 }).ok()?;
        let ch = char::from_u32(n)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{fffd}');
        let used = if b.get(digits_end) == Some(&b';') {
            digits_end + 1
        } else {
            digits_end
        };
        return Some((Cow::Owned(ch.to_string()), used));
    }
    const NAMED: &[(&str, &str)] = &[
        ("amp;", "&"),
        ("lt;", "<"),
        ("gt;", ">"),
        ("quot;", "\""),
        ("apos;", "'"),
        ("nbsp;", "\u{a0}"),
        ("sol;", "/"),
        ("colon;", ":"),
        ("quest;", "?"),
        ("equals;", "="),
        ("num;", "#"),
        ("percnt;", "%"),
        ("period;", "."),
        ("lpar;", "("),
        ("rpar;", ")"),
    ];
    // Compared as bytes: `s` may hold any character after the `&`, and a name is ASCII, so a
    // match ends on a character boundary.
    let body = &b[1..];
    for (name, val) in NAMED {
        if body.len() >= name.len() && body[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            return Some((Cow::Borrowed(val), 1 + name.len()));
        }
    }
    if body.starts_with(b"amp") {
        let next = body.get(3);
        if next.is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'=') {
            return Some((Cow::Borrowed("&"), 4));
        }
    }
    None
}

/// Escape a value for a double-quoted attribute.
pub fn escape_attr(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '"', '<', '>']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_urls_carry() {
        assert_eq!(decode("a?x=1&amp;y=2"), "a?x=1&y=2");
        assert_eq!(decode("a?x=1&#38;y=2&#x26;z"), "a?x=1&y=2&z");
        assert_eq!(
            decode("font-family:&quot;Roboto&quot;"),
            "font-family:\"Roboto\""
        );
        assert_eq!(decode("?a=1&copy=2"), "?a=1&copy=2");
        assert_eq!(decode("?a=1&amp=2"), "?a=1&amp=2");
        assert_eq!(decode("x&amp"), "x&");
        assert_eq!(decode("&#0;&#xFFFFFFFFF;"), "\u{fffd}&#xFFFFFFFFF;");
        assert_eq!(decode("no refs"), "no refs");
    }

    #[test]
    fn multibyte_after_ampersand() {
        // A real newsletter's href held `&gt;×&lt;`: the name comparison once sliced the
        // string inside the `×`.
        assert_eq!(decode("a&gt;\u{d7}&lt;b"), "a>\u{d7}<b");
        assert_eq!(decode("&\u{d7}\u{d7}"), "&\u{d7}\u{d7}");
        assert_eq!(
            decode("&l\u{e9};&am\u{e9}&#\u{e9};&#x\u{1f600}"),
            "&l\u{e9};&am\u{e9}&#\u{e9};&#x\u{1f600}"
        );
        assert_eq!(decode("&quo\u{20ac}t;&\u{20ac}"), "&quo\u{20ac}t;&\u{20ac}");
    }

    #[test]
    fn escape_roundtrips() {
        let s = "https://x.example/?a=1&b=\"2\"";
        assert_eq!(decode(&escape_attr(s)), s);
    }
}
