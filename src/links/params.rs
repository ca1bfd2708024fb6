//! Tracking parameters (`utm_*`, `mc_eid`, `fbclid`, …) removed from the query and the
//! fragment. Every other parameter keeps its place and its exact encoding.

use serde::Deserialize;

/// Which parameter names are tracking parameters (from the rules file, `[params]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ParamRules {
    /// Exact names (compared case-insensitively).
    #[serde(default)]
    pub names: Vec<String>,
    /// Name prefixes (`utm_`, `__hs`, …).
    #[serde(default)]
    pub prefixes: Vec<String>,
}

impl ParamRules {
    pub fn merge(&mut self, other: ParamRules) {
        for n in other.names {
            if !self.names.iter().any(|m| m.eq_ignore_ascii_case(&n)) {
                self.names.push(n);
            }
        }
        for p in other.prefixes {
            if !self.prefixes.iter().any(|m| m.eq_ignore_ascii_case(&p)) {
                self.prefixes.push(p);
            }
        }
    }

    /// Is this (percent-decoded) parameter name a tracking parameter?
    pub fn is_tracking(&self, key: &str) -> bool {
        let key = key.as_bytes();
        self.names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(key))
            || self
                .prefixes
                .iter()
                .any(|p| key.len() >= p.len() && key[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
    }

    /// `url` without tracking parameters, and the names removed; `None` when nothing changes.
    pub fn strip(&self, url: &str) -> Option<(String, Vec<String>)> {
        filter_url(url, &|key| self.is_tracking(key))
    }
}

/// Remove from the query and the fragment of `url` every parameter whose percent-decoded name
/// `drop` accepts. Returns the new URL and the names removed; `None` when nothing changes.
pub fn filter_url(url: &str, drop: &dyn Fn(&str) -> bool) -> Option<(String, Vec<String>)> {
    let (before_frag, frag) = match url.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (url, None),
    };
    // Most URLs carry nothing to drop: answer that before building anything.
    let query = before_frag.split_once('?').map_or("", |(_, q)| q);
    if !any_dropped(query, drop) && !frag.is_some_and(|f| any_dropped(frag_params(f), drop)) {
        return None;
    }
    let mut removed = Vec::new();
    let mut out = String::with_capacity(url.len());
    match before_frag.split_once('?') {
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
    match frag.split_once('?') {
        Some((h, p)) => (Some(h), p),
        None if frag.contains('=') => (None, frag),
        None => (Some(frag), ""),
    }
}

fn frag_params(frag: &str) -> &str {
    split_frag(frag).1
}

/// Does any `&`-separated pair of `s` have a name `drop` accepts (what `filter_pairs` would
/// remove)?
fn any_dropped(s: &str, drop: &dyn Fn(&str) -> bool) -> bool {
    !s.is_empty()
        && s.split('&').any(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            !key.is_empty()
                && if key.contains('%') {
                    drop(&percent_encoding::percent_decode_str(key).decode_utf8_lossy())
                } else {
                    drop(key)
                }
        })
}

fn filter_pairs(s: &str, drop: &dyn Fn(&str) -> bool, removed: &mut Vec<String>) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for pair in s.split('&') {
        let key = pair.split('=').next().unwrap_or("");
        let decoded = if key.contains('%') {
            percent_encoding::percent_decode_str(key).decode_utf8_lossy()
        } else {
            std::borrow::Cow::Borrowed(key)
        };
        if !key.is_empty() && drop(&decoded) {
            removed.push(key.to_string());
        } else {
            kept.push(pair);
        }
    }
    kept.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ParamRules {
        ParamRules {
            names: vec!["mc_eid".into(), "fbclid".into(), "_hsenc".into()],
            prefixes: vec!["utm_".into(), "__hs".into()],
        }
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
