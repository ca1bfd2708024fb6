//! How rules become regex patterns, in one place for the crate and for `build.rs` (which
//! includes this file to build the embedded rules' automata at compile time). Only `std`:
//! the build script has no other dependency in common with it.
//!
//! Both sides build the same patterns in the same order, with the same syntax (see
//! [`crate::mail::matcher`]); the crate uses an embedded automaton only when its pattern list
//! is exactly the one the build script compiled, so a user's rules can never run against a
//! stale one.

/// Regex metacharacters, escaped as the regex crate does.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One URL rule's pattern over "HOST/PATH?QUERY" subjects: the host (a host regex, or one of
/// the listed hosts or a sub-domain of one, or any host) followed by the path pattern (or the
/// end of the host).
pub fn url_pattern(host_re: Option<&str>, hosts: &[String], path: Option<&str>) -> String {
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

/// The order rules of a URL section are matched in: rules naming hosts (a list or a regex)
/// before path-only rules, file order otherwise (a stable sort), so a vendor's own host wins
/// over another vendor's path shape. `named_host[i]` says whether rule `i` names hosts.
pub fn url_order(named_host: &[bool]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..named_host.len()).collect();
    order.sort_by_key(|&i| !named_host[i]);
    order
}
