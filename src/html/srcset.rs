//! `srcset` attributes (`<img srcset>`, `<picture><source srcset>`): a list of image
//! candidates, each a URL and an optional descriptor (`2x`, `480w`). The browser fetches one of
//! them, so each is judged like an `src`.
//!
//! Parsed as the HTML standard's "parse a srcset attribute" splits it: a URL is a run of
//! non-whitespace (it may contain commas, as image-CDN URLs do), trailing commas end a
//! candidate without a descriptor, otherwise the descriptor runs to the next comma outside
//! parentheses.

/// One candidate: its URL and where the whole candidate (URL and descriptor) stands in the
/// attribute value, as byte offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub url: &'a str,
    pub start: usize,
    pub end: usize,
}

/// The candidates of a `srcset` value, in order.
pub fn candidates(value: &str) -> Vec<Candidate<'_>> {
    let b = value.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c');
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // Skip whitespace and commas between candidates.
        while i < b.len() && (is_space(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !is_space(b[i]) {
            i += 1;
        }
        let mut url_end = i;
        if b[start..url_end].ends_with(b",") {
            while url_end > start && b[url_end - 1] == b',' {
                url_end -= 1;
            }
            if url_end > start {
                out.push(Candidate {
                    url: &value[start..url_end],
                    start,
                    end: url_end,
                });
            }
            continue;
        }
        // The descriptor: up to a comma outside parentheses.
        let mut depth = 0usize;
        let mut end = i;
        while i < b.len() {
            match b[i] {
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => break,
                _ => {}
            }
            i += 1;
            if !is_space(b[i - 1]) {
                end = i;
            }
        }
        out.push(Candidate {
            url: &value[start..url_end],
            start,
            end,
        });
    }
    out
}

/// `value` without the candidates at `drop` (indexes into `candidates(value)`), joined the way
/// they were written where possible: the text between kept candidates stays as it was.
pub fn without(value: &str, cands: &[Candidate<'_>], drop: &[usize]) -> String {
    // A mask, not `drop.contains` per candidate: a srcset of 200 000 candidates, half of them
    // dropped, would be quadratic.
    let mut dropped = vec![false; cands.len()];
    for &i in drop {
        if let Some(d) = dropped.get_mut(i) {
            *d = true;
        }
    }
    let kept: Vec<&Candidate<'_>> = cands
        .iter()
        .zip(&dropped)
        .filter(|(_, d)| !**d)
        .map(|(c, _)| c)
        .collect();
    let mut out = String::with_capacity(value.len());
    for (n, c) in kept.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&value[c.start..c.end]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(v: &str) -> Vec<&str> {
        candidates(v).into_iter().map(|c| c.url).collect()
    }

    #[test]
    fn splits_like_a_browser() {
        assert_eq!(
            urls("a.png 1x, https://t.example/o/x.png 2x"),
            ["a.png", "https://t.example/o/x.png"]
        );
        assert_eq!(
            urls("https://res.example/w_100,h_50/a.jpg 100w,https://res.example/b.jpg 200w"),
            [
                "https://res.example/w_100,h_50/a.jpg",
                "https://res.example/b.jpg"
            ]
        );
        assert_eq!(urls("a.png,b.png"), ["a.png,b.png"]);
        assert_eq!(urls("a.png, b.png"), ["a.png", "b.png"]);
        assert_eq!(urls(" , ,, "), Vec::<&str>::new());
        assert_eq!(urls("a.png (x, y) 1x, b.png"), ["a.png", "b.png"]);
        assert_eq!(urls("\u{e9}.png 1x,\u{20ac}"), ["\u{e9}.png", "\u{20ac}"]);
    }

    #[test]
    fn drops_candidates() {
        let v = "a.png 1x, https://t.example/o/x.png 2x,c.png 3x";
        let c = candidates(v);
        assert_eq!(without(v, &c, &[1]), "a.png 1x, c.png 3x");
        assert_eq!(without(v, &c, &[0, 1, 2]), "");
    }
}
