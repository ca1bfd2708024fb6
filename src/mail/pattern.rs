//! How rules become regex patterns, in one place for the crate and for `build.rs` (which
//! includes this file to build the embedded rules' automata at compile time). Only `std`:
//! the build script has no other dependency in common with it.
//!
//! Both sides build the same patterns in the same order, with the same syntax (see
//! [`crate::mail::matcher`]); the crate uses an embedded automaton only when its pattern list
//! is exactly the one the build script compiled, so a user's rules can never run against a
//! stale one.

/// Regex metacharacters, escaped as the regex crate does.
#[cfg(test)]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    escape_into(text, &mut out);
    out
}

/// Regex metacharacters of `text` escaped (as the regex crate does), appended to `out`.
fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// One URL rule's pattern over "HOST/PATH?QUERY" subjects: the host (a host regex, or one of
/// the listed hosts or a sub-domain of one, or any host) followed by the path pattern (or the
/// end of the host). Built in one string: a process started per message builds ~130 of them.
pub fn url_pattern(host_re: Option<&str>, hosts: &[String], path: Option<&str>) -> String {
    let mut out = String::with_capacity(64 + hosts.iter().map(String::len).sum::<usize>());
    out.push('^');
    if let Some(re) = host_re {
        out.push_str("(?:");
        out.push_str(re);
        out.push(')');
    } else if hosts.is_empty() {
        out.push_str("[^/]*");
    } else {
        out.push_str("(?:[^/]*\\.)?(?:");
        for (i, h) in hosts.iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            let h = h.trim().trim_start_matches("*.");
            if h.bytes().any(|b| b.is_ascii_uppercase()) {
                escape_into(&h.to_ascii_lowercase(), &mut out);
            } else {
                escape_into(h, &mut out);
            }
        }
        out.push(')');
    }
    out.push_str("(?:");
    match path {
        Some(p) => out.push_str(p.strip_prefix('^').unwrap_or(p)),
        None => out.push_str("(?:[/?#]|$)"),
    }
    out.push(')');
    out
}

/// The order rules of a URL section are matched in: rules naming hosts (a list or a regex)
/// before path-only rules, file order otherwise (a stable sort), so a vendor's own host wins
/// over another vendor's path shape. `named_host[i]` says whether rule `i` names hosts.
pub fn url_order(named_host: &[bool]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..named_host.len()).collect();
    order.sort_by_key(|&i| !named_host[i]);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern as it was built before (several strings joined): the one-string version
    /// must give the very same text, or the embedded automata would no longer be used.
    fn reference(host_re: Option<&str>, hosts: &[String], path: Option<&str>) -> String {
        let host = if let Some(re) = host_re {
            format!("(?:{re})")
        } else if hosts.is_empty() {
            "[^/]*".to_string()
        } else {
            let alts: Vec<String> = hosts
                .iter()
                .map(|h| escape(&h.trim().trim_start_matches("*.").to_ascii_lowercase()))
                .collect();
            format!("(?:[^/]*\\.)?(?:{})", alts.join("|"))
        };
        let path = match path {
            Some(p) => p.strip_prefix('^').unwrap_or(p).to_string(),
            None => "(?:[/?#]|$)".to_string(),
        };
        format!("^{host}(?:{path})")
    }

    #[test]
    fn url_pattern_is_the_joined_form() {
        let hosts = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (re, hs, path) in [
            (None, hosts(&[]), None),
            (Some("[a-z]+\\.example"), hosts(&[]), Some("^/o/")),
            (
                None,
                hosts(&["*.Mail.Example", " t.example ", "a-b.example"]),
                Some("/c\\?x="),
            ),
            (None, hosts(&["x.example"]), None),
            (None, hosts(&["ÉX.example"]), Some("^")),
        ] {
            assert_eq!(
                url_pattern(re, &hs, path),
                reference(re, &hs, path),
                "{re:?} {hs:?} {path:?}"
            );
        }
    }
}
