//! Tracking parameters (`utm_*`, `mc_eid`, `fbclid`, …) removed from the query and the
//! fragment. Every other parameter keeps its place and its exact encoding.

use serde::Deserialize;

/// The `[params]` table as written in a rules file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamLists {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
}

impl From<ParamLists> for ParamRules {
    fn from(l: ParamLists) -> ParamRules {
        ParamRules::new(l.names, l.prefixes)
    }
}

/// Which parameter names are tracking parameters (from the rules file, `[params]`): exact
/// names and name prefixes, both compared case-insensitively.
///
/// Every parameter of every link is asked about: the entries are kept grouped by their first
/// byte (lowercased), so that a name is compared only with the few entries that start like it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "ParamLists")]
pub struct ParamRules {
    names: Vec<String>,
    prefixes: Vec<String>,
    /// Lowercased entries sorted by first byte, with whether each is a prefix.
    entries: Vec<(Box<[u8]>, bool)>,
    /// `entries[start[b]..start[b + 1]]` begin with byte `b`.
    start: Vec<u16>,
    /// An empty prefix: every non-empty name is a tracking parameter.
    all: bool,
    /// An empty exact name.
    empty: bool,
}

impl PartialEq for ParamRules {
    fn eq(&self, other: &ParamRules) -> bool {
        self.names == other.names && self.prefixes == other.prefixes
    }
}

impl Eq for ParamRules {}

impl ParamRules {
    pub fn new(names: Vec<String>, prefixes: Vec<String>) -> ParamRules {
        let mut entries: Vec<(Box<[u8]>, bool)> = names
            .iter()
            .map(|n| (n, false))
            .chain(prefixes.iter().map(|p| (p, true)))
            .filter(|(e, _)| !e.is_empty())
            .map(|(e, prefix)| (e.to_ascii_lowercase().into_bytes().into(), prefix))
            .collect();
        entries.sort_by_key(|(e, _)| e[0]);
        // A rules file with more than 65 535 entries keeps the first ones.
        entries.truncate(usize::from(u16::MAX));
        let start = (0..=256)
            .map(|b| {
                let n = entries.partition_point(|(e, _)| usize::from(e[0]) < b);
                u16::try_from(n).unwrap_or(u16::MAX)
            })
            .collect();
        ParamRules {
            all: prefixes.iter().any(String::is_empty),
            empty: names.iter().any(String::is_empty),
            names,
            prefixes,
            entries,
            start,
        }
    }

    /// Exact names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Name prefixes (`utm_`, `__hs`, …).
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.prefixes.is_empty()
    }

    pub fn merge(&mut self, other: ParamRules) {
        let mut names = std::mem::take(&mut self.names);
        let mut prefixes = std::mem::take(&mut self.prefixes);
        for n in other.names {
            if !names.iter().any(|m| m.eq_ignore_ascii_case(&n)) {
                names.push(n);
            }
        }
        for p in other.prefixes {
            if !prefixes.iter().any(|m| m.eq_ignore_ascii_case(&p)) {
                prefixes.push(p);
            }
        }
        *self = ParamRules::new(names, prefixes);
    }

    /// Is this (percent-decoded) parameter name a tracking parameter?
    pub fn is_tracking(&self, key: &str) -> bool {
        let key = key.as_bytes();
        let Some(&first) = key.first() else {
            return self.empty || self.all;
        };
        if self.all {
            return true;
        }
        let b = usize::from(first.to_ascii_lowercase());
        let (Some(&from), Some(&to)) = (self.start.get(b), self.start.get(b + 1)) else {
            return false;
        };
        let group = self
            .entries
            .get(usize::from(from)..usize::from(to))
            .unwrap_or(&[]);
        group.iter().any(|(e, prefix)| {
            if *prefix {
                key.len() >= e.len() && key[..e.len()].eq_ignore_ascii_case(e)
            } else {
                key.eq_ignore_ascii_case(e)
            }
        })
    }

    /// `url` without tracking parameters, and the names removed; `None` when nothing changes.
    pub fn strip(&self, url: &str) -> Option<(String, Vec<String>)> {
        filter_url(url, &|key| self.is_tracking(key))
    }
}

/// Remove from the query and the fragment of `url` every parameter whose percent-decoded name
/// `drop` accepts. Returns the new URL and the names removed; `None` when nothing changes.
pub fn filter_url(url: &str, drop: &dyn Fn(&str) -> bool) -> Option<(String, Vec<String>)> {
    let (before_frag, frag) = match split_at(url, b'#') {
        Some((a, f)) => (a, Some(f)),
        None => (url, None),
    };
    let base_query = split_at(before_frag, b'?');
    // Most URLs carry nothing to drop: answer that before building anything.
    let query = base_query.map_or("", |(_, q)| q);
    if !any_dropped(query, drop) && !frag.is_some_and(|f| any_dropped(frag_params(f), drop)) {
        return None;
    }
    let mut removed = Vec::new();
    let mut out = String::with_capacity(url.len());
    match base_query {
        Some((base, query)) => {
            out.push_str(base);
            let kept = filter_pairs(query, drop, &mut removed);
            if !kept.is_empty() {
                out.push('?');
                out.push_str(&kept);
            }
        }
        None => out.push_str(before_frag),
    }
    if let Some(frag) = frag {
        let (head, params) = split_frag(frag);
        let before = removed.len();
        let kept = if params.is_empty() {
            String::new()
        } else {
            filter_pairs(params, drop, &mut removed)
        };
        if removed.len() == before {
            out.push('#');
            out.push_str(frag);
        } else {
            let mut new_frag = head.unwrap_or("").to_string();
            if !kept.is_empty() {
                if head.is_some() {
                    new_frag.push('?');
                }
                new_frag.push_str(&kept);
            }
            if !new_frag.is_empty() {
                out.push('#');
                out.push_str(&new_frag);
            }
        }
    }
    (!removed.is_empty()).then_some((out, removed))
}

/// Fragments carry parameters as `#a=b&c=d` or `#/route?a=b`: (the part before them, them).
fn split_frag(frag: &str) -> (Option<&str>, &str) {
    match split_at(frag, b'?') {
        Some((h, p)) => (Some(h), p),
        None if memchr::memchr(b'=', frag.as_bytes()).is_some() => (None, frag),
        None => (Some(frag), ""),
    }
}

fn frag_params(frag: &str) -> &str {
    split_frag(frag).1
}

/// `s.split_once(c)` for an ASCII byte, found with memchr (a `char` pattern builds a searcher
/// per call, and this runs on every link).
fn split_at(s: &str, c: u8) -> Option<(&str, &str)> {
    let i = memchr::memchr(c, s.as_bytes())?;
    // `c` is ASCII: both slices are on char boundaries.
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The `&`-separated pairs of `s`, each with its name (up to its first `=`), as
/// `s.split('&')` gives them (an empty `s` is one empty pair). A byte loop: it runs for every
/// parameter of every link, and the pairs are short.
fn pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut pos = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let rest = s.as_bytes().get(pos..).unwrap_or(&[]);
        let len = match rest.iter().position(|&b| b == b'&') {
            Some(len) => len,
            None => {
                done = true;
                rest.len()
            }
        };
        // '&' and '=' are ASCII: every slice is on a char boundary.
        let pair = s.get(pos..pos + len).unwrap_or("");
        pos += len + 1;
        let key_len = pair.bytes().position(|b| b == b'=').unwrap_or(pair.len());
        Some((pair, pair.get(..key_len).unwrap_or("")))
    })
}

/// A pair's name, percent-decoded.
fn decoded(key: &str) -> std::borrow::Cow<'_, str> {
    // Most keys hold neither: one look at each byte.
    if !key
        .bytes()
        .any(|b| matches!(b, b'%' | b'\t' | b'\r' | b'\n'))
    {
        return std::borrow::Cow::Borrowed(key);
    }
    // Browsers take tabs and line breaks out of a URL before reading it (WHATWG URL): a key
    // written `_hsenc<CR><TAB>` is `_hsenc` to them, and to us (otherwise the trimming of a
    // rewritten link could bring such a key to the end and a second pass would remove it).
    if key.bytes().any(|b| matches!(b, b'\t' | b'\r' | b'\n')) {
        let key: String = key
            .chars()
            .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
            .collect();
        return std::borrow::Cow::Owned(decoded(&key).into_owned());
    }
    percent_encoding::percent_decode_str(key).decode_utf8_lossy()
}

/// Does any `&`-separated pair of `s` have a name `drop` accepts (what `filter_pairs` would
/// remove)?
fn any_dropped(s: &str, drop: &dyn Fn(&str) -> bool) -> bool {
    !s.is_empty() && pairs(s).any(|(_, key)| !key.is_empty() && drop(&decoded(key)))
}

fn filter_pairs(s: &str, drop: &dyn Fn(&str) -> bool, removed: &mut Vec<String>) -> String {
    let mut kept = String::with_capacity(s.len());
    let mut first = true;
    for (pair, key) in pairs(s) {
        if !key.is_empty() && drop(&decoded(key)) {
            removed.push(key.to_string());
        } else {
            if !first {
                kept.push('&');
            }
            kept.push_str(pair);
            first = false;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ParamRules {
        ParamRules::new(
            vec!["mc_eid".into(), "fbclid".into(), "_hsenc".into()],
            vec!["utm_".into(), "__hs".into()],
        )
    }

    /// What `is_tracking` answered before the entries were grouped: every entry compared.
    fn linear(names: &[&str], prefixes: &[&str], key: &str) -> bool {
        let key = key.as_bytes();
        names.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(key))
            || prefixes
                .iter()
                .any(|p| key.len() >= p.len() && key[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
    }

    #[test]
    fn grouped_lookup_agrees_with_comparing_every_entry() {
        let lists: [(&[&str], &[&str]); 4] = [
            (
                &["mc_eid", "fbclid", "_hsenc", "MKT_tok", "é_id", "z"],
                &["utm_", "__hs", "Pk_", "ÿ"],
            ),
            (&[], &[]),
            (&[""], &["x"]),
            (&["a"], &["", "b"]),
        ];
        let keys = [
            "",
            "a",
            "b",
            "x",
            "z",
            "Z",
            "zz",
            "utm_",
            "UTM_source",
            "utm",
            "ut",
            "mc_eid",
            "MC_EID",
            "mc_eidx",
            "mkt_tok",
            "Mkt_Tok",
            "fbclid",
            "_hsenc",
            "__hsfp",
            "__h",
            "pk_campaign",
            "é_id",
            "É_id",
            "ÿ",
            "ÿx",
            "id",
            "rid",
            "page",
            "\u{0}",
            "\u{7f}x",
        ];
        for (names, prefixes) in lists {
            let rules = ParamRules::new(
                names.iter().map(|s| s.to_string()).collect(),
                prefixes.iter().map(|s| s.to_string()).collect(),
            );
            for key in keys {
                assert_eq!(
                    rules.is_tracking(key),
                    linear(names, prefixes, key),
                    "{key:?} with names {names:?} and prefixes {prefixes:?}"
                );
            }
        }
    }

    /// `filter_pairs` as it was written first, with `str::split`.
    fn filter_pairs_by_split(s: &str, drop: &dyn Fn(&str) -> bool) -> (String, Vec<String>) {
        let mut removed = Vec::new();
        let mut kept: Vec<&str> = Vec::new();
        for pair in s.split('&') {
            let key = pair.split('=').next().unwrap_or("");
            let decoded = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            if !key.is_empty() && drop(&decoded) {
                removed.push(key.to_string());
            } else {
                kept.push(pair);
            }
        }
        (kept.join("&"), removed)
    }

    #[test]
    fn a_key_is_read_without_its_tabs_and_line_breaks() {
        let r = rules();
        let drop = |k: &str| r.is_tracking(k);
        let url = "https://shop.example/a?id=1&utm_\r\n\tsource=news&_hs\tenc=x";
        let (kept, removed) = filter_url(url, &drop).expect("two keys to drop");
        assert_eq!(kept, "https://shop.example/a?id=1");
        assert_eq!(removed, ["utm_\r\n\tsource", "_hs\tenc"]);
        assert_eq!(filter_url("https://shop.example/a?i\td=1", &drop), None);
    }

    proptest::proptest! {
        #[test]
        fn split_at_splits_as_split_once(s in "[a-zé?#=]{0,12}") {
            for c in ['?', '#', '='] {
                proptest::prop_assert_eq!(split_at(&s, c as u8), s.split_once(c));
            }
        }

        #[test]
        fn byte_loop_splits_as_str_split(s in "[a-zé&=%_2Fu]{0,24}") {
            let r = rules();
            let drop = |k: &str| k.starts_with('u') || k.starts_with('é') || r.is_tracking(k);
            let mut removed = Vec::new();
            let kept = filter_pairs(&s, &drop, &mut removed);
            proptest::prop_assert_eq!((kept, removed), filter_pairs_by_split(&s, &drop));
            let any = s.split('&').any(|p| {
                let k = p.split('=').next().unwrap_or("");
                !k.is_empty() && drop(&percent_encoding::percent_decode_str(k).decode_utf8_lossy())
            });
            proptest::prop_assert_eq!(any_dropped(&s, &drop), any);
        }
    }

    #[test]
    fn merge_keeps_the_lookup_in_step() {
        let mut rules = rules();
        assert!(!rules.is_tracking("rb_clickid"));
        rules.merge(ParamRules::new(
            vec!["RB_clickid".into()],
            vec!["sc_".into()],
        ));
        assert!(rules.is_tracking("rb_clickid") && rules.is_tracking("SC_x"));
        assert!(rules.is_tracking("utm_source") && rules.is_tracking("fbclid"));
        assert_eq!(rules.names().len(), 4);
        assert_eq!(rules.prefixes().len(), 3);
    }

    #[test]
    fn strips_and_keeps_order_and_encoding() {
        let (u, removed) = rules()
            .strip(
                "https://shop.example/p?id=7&utm_source=mail&q=a%20b&UTM_Medium=x&mc_eid=123&z=%2F",
            )
            .unwrap();
        assert_eq!(u, "https://shop.example/p?id=7&q=a%20b&z=%2F");
        assert_eq!(removed, ["utm_source", "UTM_Medium", "mc_eid"]);
    }

    #[test]
    fn drops_empty_query_and_fragment_params() {
        assert_eq!(
            rules().strip("https://a.example/?utm_source=x").unwrap().0,
            "https://a.example/"
        );
        assert_eq!(
            rules().strip("https://a.example/#utm_source=x").unwrap().0,
            "https://a.example/"
        );
        assert_eq!(
            rules()
                .strip("https://a.example/p?x=1#/route?__hssc=1&tab=2")
                .unwrap()
                .0,
            "https://a.example/p?x=1#/route?tab=2"
        );
        assert_eq!(rules().strip("https://a.example/p#section"), None);
        assert_eq!(rules().strip("https://a.example/p?utm=1&mc_eidx=2"), None);
    }
}
