//! A small CSS scanner: finds `@import`, `@font-face` and `url()` in declarations, and deletes
//! the statements a caller rejects. Everything else in the stylesheet is kept byte for byte.
//! It is not a CSS parser: it only tracks comments, strings, parentheses and braces, which is
//! all that is needed to find statement and declaration boundaries.

/// Where a URL was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlUse {
    /// `@import url(…)` / `@import "…"`: the whole statement goes.
    Import,
    /// A `src` URL inside `@font-face { … }`: the whole rule goes.
    FontFace,
    /// `url(…)` in an ordinary declaration: that declaration goes.
    Declaration,
}

/// What is being scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A `<style>` block.
    Stylesheet,
    /// A `style=""` attribute: a declaration list.
    Declarations,
}

/// Rewrite `css`, deleting each statement for which `reject` returns true. Returns `None` when
/// nothing was deleted.
pub fn rewrite(
    css: &str,
    mode: Mode,
    reject: &mut dyn FnMut(UrlUse, &str) -> bool,
) -> Option<String> {
    let mut sc = Scanner {
        s: css.as_bytes(),
        text: css,
        cuts: Vec::new(),
        reject,
        depth: 0,
    };
    match mode {
        Mode::Stylesheet => sc.rule_list(0, css.len()),
        Mode::Declarations => sc.declarations(0, css.len()),
    }
    if sc.cuts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(css.len());
    let mut pos = 0;
    for (a, b) in std::mem::take(&mut sc.cuts) {
        if a < pos {
            continue; // nested inside a range already cut
        }
        out.push_str(&css[pos..a]);
        pos = b;
    }
    out.push_str(&css[pos..]);
    Some(out)
}

/// Every URL in `url(…)` tokens of a CSS fragment, in order.
pub fn urls(css: &str) -> Vec<String> {
    let mut out = Vec::new();
    let s = css.as_bytes();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'/' if s.get(i + 1) == Some(&b'*') => i = skip_comment(s, i),
            b'"' | b'\'' => i = skip_string(s, i),
            b'u' | b'U' if is_url_fn(s, i) => {
                let (url, next) = url_token(css, i + 4);
                out.push(url);
                i = next;
            }
            _ => i += 1,
        }
    }
    out
}

struct Scanner<'a, 'r> {
    s: &'a [u8],
    text: &'a str,
    cuts: Vec<(usize, usize)>,
    reject: &'r mut dyn FnMut(UrlUse, &str) -> bool,
    /// Nesting of the rule list being read (`@media { @supports { … } }`).
    depth: usize,
}

/// Nested rule lists read as such. Deeper, a block is judged whole, as one declaration (a
/// tracker URL anywhere in it takes it all out): each level rescans the rest of the sheet
/// for its closing brace, and recursion needs stack — 16 000 nested `@media{` in a 240 KB
/// message overflowed a 2 MiB worker thread's stack and took the daemon down.
const MAX_RULE_NESTING: usize = 16;

impl Scanner<'_, '_> {
    fn rule_list(&mut self, start: usize, end: usize) {
        let s = self.s;
        let mut i = start;
        loop {
            i = skip_trivia(s, i, end);
            if i >= end {
                break;
            }
            match s[i] {
                b'@' => {
                    let name_end = ident_end(s, i + 1, end);
                    let name = self.text[i + 1..name_end].to_ascii_lowercase();
                    match find_top(s, name_end, end, b";{") {
                        None => {
                            if name == "import" {
                                self.import(i, name_end, end);
                            }
                            break;
                        }
                        Some(p) if s[p] == b';' => {
                            if name == "import" {
                                self.import(i, name_end, p + 1);
                            }
                            i = p + 1;
                        }
                        Some(p) if s[p] == b'}' => i = p + 1,
                        Some(p) => {
                            let close = matching_brace(s, p, end);
                            match name.as_str() {
                                "font-face" => self.font_face(i, p + 1, close),
                                "media" | "supports" | "document" | "-moz-document" | "layer"
                                | "container"
                                    if self.depth < MAX_RULE_NESTING =>
                                {
                                    self.depth += 1;
                                    self.rule_list(p + 1, close);
                                    self.depth -= 1;
                                }
                                "media" | "supports" | "document" | "-moz-document" | "layer"
                                | "container" => self.declarations(p + 1, close),
                                _ => {}
                            }
                            i = (close + 1).min(end);
                        }
                    }
                }
                b'}' | b';' => i += 1,
                _ => match find_top(s, i, end, b"{") {
                    None => break,
                    Some(p) => {
                        let close = matching_brace(s, p, end);
                        self.declarations(p + 1, close);
                        i = (close + 1).min(end);
                    }
                },
            }
        }
    }

    fn import(&mut self, at: usize, after_name: usize, stmt_end: usize) {
        let s = self.s;
        let i = skip_trivia(s, after_name, stmt_end);
        let url = if i < stmt_end && is_url_fn(s, i) {
            Some(url_token(self.text, i + 4).0)
        } else if i < stmt_end && (s[i] == b'"' || s[i] == b'\'') {
            let close = skip_string(s, i).min(stmt_end);
            Some(unescape(string_content(self.text, i, close)))
        } else {
            None
        };
        if let Some(url) = url {
            if (self.reject)(UrlUse::Import, &url) {
                self.cuts.push((at, stmt_end));
            }
        }
    }

    fn font_face(&mut self, at: usize, body_start: usize, close: usize) {
        let body = &self.text[body_start..close];
        for url in urls(body) {
            if (self.reject)(UrlUse::FontFace, &url) {
                self.cuts.push((at, (close + 1).min(self.s.len())));
                return;
            }
        }
    }

    fn declarations(&mut self, start: usize, end: usize) {
        let s = self.s;
        let mut i = start;
        while i < end {
            let j = find_top(s, i, end, b";").unwrap_or(end);
            let decl = &self.text[i..j];
            for url in urls(decl) {
                if (self.reject)(UrlUse::Declaration, &url) {
                    self.cuts.push((i, (j + 1).min(end)));
                    break;
                }
            }
            i = j + 1;
        }
    }
}

fn is_url_fn(s: &[u8], i: usize) -> bool {
    s.len() >= i + 4
        && s[i..i + 4].eq_ignore_ascii_case(b"url(")
        && (i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'-' || s[i - 1] == b'_'))
}

/// Read a url token starting just after `url(`; returns the URL and the index after `)`.
fn url_token(text: &str, start: usize) -> (String, usize) {
    let s = text.as_bytes();
    let mut i = start;
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < s.len() && (s[i] == b'"' || s[i] == b'\'') {
        let close = skip_string(s, i);
        let url = unescape(string_content(text, i, close));
        let mut j = close;
        while j < s.len() && s[j] != b')' {
            j += 1;
        }
        return (url, (j + 1).min(s.len()));
    }
    let mut j = i;
    while j < s.len() && s[j] != b')' {
        j += 1;
    }
    (unescape(text[i..j].trim_end()), (j + 1).min(s.len()))
}

/// The inside of the string whose quote is at `open` and which ends before `close` (as
/// `skip_string` returns it, perhaps cut shorter): without the closing quote when there is one.
/// A string left open at the end of a block or line has no closing quote to drop, and its
/// last character may be any character, so `close - 1` is not a character boundary then.
fn string_content(text: &str, open: usize, close: usize) -> &str {
    let s = text.as_bytes();
    let close = close.min(s.len());
    if close <= open + 1 {
        return "";
    }
    let end = if s[close - 1] == s[open] && close - 1 > open {
        close - 1
    } else {
        close
    };
    text.get(open + 1..end).unwrap_or("")
}

/// CSS backslash escapes of the simple kind (`\"`, `\(`); hex escapes are kept as written.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some(n) if !n.is_ascii_hexdigit() && *n != '\n' => {
                    out.push(*n);
                    chars.next();
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn skip_comment(s: &[u8], i: usize) -> usize {
    let mut j = i + 2;
    while j + 1 < s.len() {
        if s[j] == b'*' && s[j + 1] == b'/' {
            return j + 2;
        }
        j += 1;
    }
    s.len()
}

/// Index after the closing quote of the string starting at `i` (or the end of a line/input).
fn skip_string(s: &[u8], i: usize) -> usize {
    let q = s[i];
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'\n' => return j,
            c if c == q => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

fn skip_trivia(s: &[u8], mut i: usize, end: usize) -> usize {
    while i < end {
        if s[i].is_ascii_whitespace() {
            i += 1;
        } else if s[i] == b'/' && s.get(i + 1) == Some(&b'*') {
            i = skip_comment(s, i);
        } else if s[i..end].starts_with(b"<!--") {
            i += 4;
        } else if s[i..end].starts_with(b"-->") {
            i += 3;
        } else {
            break;
        }
    }
    i.min(end)
}

fn ident_end(s: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && (s[i].is_ascii_alphanumeric() || s[i] == b'-' || s[i] == b'_') {
        i += 1;
    }
    i
}

/// First of `targets` at nesting depth 0 (outside strings, comments, parentheses and nested
/// braces) in `s[i..end]`.
fn find_top(s: &[u8], mut i: usize, end: usize, targets: &[u8]) -> Option<usize> {
    let mut parens = 0usize;
    let mut braces = 0usize;
    while i < end {
        let c = s[i];
        match c {
            b'/' if s.get(i + 1) == Some(&b'*') => {
                i = skip_comment(s, i);
                continue;
            }
            b'"' | b'\'' => {
                i = skip_string(s, i);
                continue;
            }
            b'\\' => {
                i += 2;
                continue;
            }
            _ => {}
        }
        if parens == 0 && braces == 0 && targets.contains(&c) {
            return Some(i);
        }
        match c {
            b'(' => parens += 1,
            b')' => parens = parens.saturating_sub(1),
            b'{' => braces += 1,
            b'}' => {
                if braces == 0 {
                    // End of the enclosing block: treat as the end of this statement.
                    return if targets.contains(&b';') {
                        Some(i)
                    } else {
                        None
                    };
                }
                braces -= 1
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the `}` closing the block opened at `open` (or `end` if unclosed).
fn matching_brace(s: &[u8], open: usize, end: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < end {
        match s[i] {
            b'/' if s.get(i + 1) == Some(&b'*') => {
                i = skip_comment(s, i);
                continue;
            }
            b'"' | b'\'' => {
                i = skip_string(s, i);
                continue;
            }
            b'\\' => {
                i += 2;
                continue;
            }
            b'{' => depth += 1,
            b'}' => {
                if depth <= 1 {
                    return i;
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fonts_and_beacons(css: &str, mode: Mode) -> (Option<String>, Vec<(UrlUse, String)>) {
        let mut seen = Vec::new();
        let out = rewrite(css, mode, &mut |u, url| {
            let hit = url.contains("fonts.g") || url.contains("beacon");
            if hit {
                seen.push((u, url.to_string()));
            }
            hit
        });
        (out, seen)
    }

    #[test]
    fn deeply_nested_rule_lists_are_judged_without_recursing_forever() {
        // Within the limit: the rule with the beacon goes, its neighbour stays.
        let nested = |levels: usize| {
            format!(
                "{}.a{{background:url(https://x.example/beacon.gif)}} .b{{color:red}}{}",
                "@media screen{".repeat(levels),
                "}".repeat(levels)
            )
        };
        let (out, seen) = fonts_and_beacons(&nested(MAX_RULE_NESTING), Mode::Stylesheet);
        let out = out.expect("rewritten");
        assert!(
            !out.contains("beacon") && out.contains(".b{color:red}"),
            "{out}"
        );
        assert_eq!(seen.len(), 1);
        // Deeper: the block holding it goes whole, the beacon with it.
        let (out, seen) = fonts_and_beacons(&nested(MAX_RULE_NESTING + 1), Mode::Stylesheet);
        assert!(!out.expect("rewritten").contains("beacon"));
        assert_eq!(seen.len(), 1);
        // 100 000 levels (1.5 MB): read on a 2 MiB stack, as the daemons' workers have.
        let css = nested(100_000);
        let judged = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || fonts_and_beacons(&css, Mode::Stylesheet).0)
            .expect("thread")
            .join()
            .expect("no stack overflow");
        assert!(!judged.expect("rewritten").contains("beacon"));
    }

    #[test]
    fn imports_in_every_form() {
        let css = "@import url(https://fonts.googleapis.com/css?family=Roboto);\n\
                   @import url('https://fonts.googleapis.com/css2?family=Lato&display=swap');\n\
                   @import \"https://fonts.googleapis.com/css?family=Open+Sans\" screen;\n\
                   @import url(local.css);\nbody{color:red}";
        let (out, seen) = fonts_and_beacons(css, Mode::Stylesheet);
        assert_eq!(
            out.as_deref(),
            Some("\n\n\n@import url(local.css);\nbody{color:red}")
        );
        assert_eq!(seen.len(), 3);
        assert_eq!(
            seen[1].1,
            "https://fonts.googleapis.com/css2?family=Lato&display=swap"
        );
    }

    #[test]
    fn font_face_rule_goes_rest_stays() {
        let css = "/* hi */ @font-face { font-family: 'R'; src: local('R'), url(https://fonts.gstatic.com/s/r.woff2) format('woff2'); }\n\
                   @media screen { .a { background: url(https://x.example/beacon.gif) no-repeat; color: blue } }\n\
                   p { font-family: R, Arial; }";
        let (out, seen) = fonts_and_beacons(css, Mode::Stylesheet);
        assert_eq!(
            out.as_deref(),
            Some("/* hi */ \n@media screen { .a { color: blue } }\np { font-family: R, Arial; }")
        );
        assert_eq!(seen[0].0, UrlUse::FontFace);
        assert_eq!(seen[1].0, UrlUse::Declaration);
    }

    #[test]
    fn declarations_and_strings() {
        let (out, _) = fonts_and_beacons(
            "color:red; background-image:url( \"https://t.example/beacon?a=1;b\" ); width:1px",
            Mode::Declarations,
        );
        assert_eq!(out.as_deref(), Some("color:red; width:1px"));
        let (out, _) = fonts_and_beacons("content:'url(beacon)'; color:red", Mode::Declarations);
        assert_eq!(out, None);
        let (out, _) = fonts_and_beacons("<!-- a{b:c} -->", Mode::Stylesheet);
        assert_eq!(out, None);
    }

    #[test]
    fn strings_cut_inside_a_character() {
        // An `@import "…` string cut inside a multi-byte character at the end of a `<style>`
        // block: the scanner once sliced the text there.
        for css in [
            "@import \"https://fonts.googleapis.com/\u{e9}",
            "@import \"\u{20ac}",
            "@import '\u{1f600}\n;",
            "@import \"a\\\u{e9}",
            "a{b:url(\"\u{e9}",
            "a{b:url('x\\\u{20ac}",
            "@font-face{src:url(\"https://fonts.gstatic.com/\u{e9}",
        ] {
            let _ = fonts_and_beacons(css, Mode::Stylesheet);
            let _ = fonts_and_beacons(css, Mode::Declarations);
        }
        let (out, seen) = fonts_and_beacons(
            "p{}@import \"https://fonts.googleapis.com/css?family=\u{e9}",
            Mode::Stylesheet,
        );
        assert_eq!(out.as_deref(), Some("p{}"));
        assert_eq!(seen[0].1, "https://fonts.googleapis.com/css?family=\u{e9}");
    }

    #[test]
    fn garbage_does_not_hang_or_panic() {
        for css in [
            "@",
            "@import",
            "@import url(",
            "{{{{",
            "}}}",
            "a{",
            "url(",
            "'",
            "/*",
            "@font-face{src:url(https://fonts.gstatic.com/x",
        ] {
            let _ = fonts_and_beacons(css, Mode::Stylesheet);
            let _ = fonts_and_beacons(css, Mode::Declarations);
        }
        let (out, _) = fonts_and_beacons(
            "@font-face{src:url(https://fonts.gstatic.com/x",
            Mode::Stylesheet,
        );
        assert_eq!(out.as_deref(), Some(""));
    }
}
