//! URLs as rules see them: host and path of an absolute http(s) URL.

/// An absolute http(s) URL reduced to what rules look at. Split by hand rather than with the
/// `url` crate: rules only need the host and the path and query, and this runs for every image
/// and link of every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlView {
    /// "host/path?query": host lowercased, without user info or port; no fragment.
    pub subject: String,
    host_len: usize,
}

impl UrlView {
    /// Parse a remote URL as found in a message (entities already decoded). Accepts
    /// `http:`, `https:` and protocol-relative `//host/…`; anything else is `None`.
    pub fn parse(raw: &str) -> Option<UrlView> {
        let s = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        let rest = if let Some(r) = s.strip_prefix("//") {
            r
        } else {
            let (scheme, r) = s.split_once(':')?;
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return None;
            }
            // Browsers accept http:/x, http:\\x and extra slashes; so do we.
            r.trim_start_matches(['/', '\\'])
        };
        let auth_end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => &host_port[..v6.find(']').map_or(host_port.len(), |i| i + 2)],
            None => host_port.split(':').next().unwrap_or(""),
        };
        let host = host.trim_end_matches('.');
        if host.is_empty() || host.contains(|c: char| c.is_ascii_whitespace()) {
            return None;
        }
        let tail = &rest[auth_end..];
        let tail = &tail[..tail.find('#').unwrap_or(tail.len())];
        let mut subject = String::with_capacity(host.len() + tail.len() + 1);
        subject.push_str(&host.to_ascii_lowercase());
        let host_len = subject.len();
        if !tail.starts_with('/') {
            subject.push('/');
        }
        subject.push_str(&tail.replace('\\', "/"));
        Some(UrlView { subject, host_len })
    }

    pub fn host(&self) -> &str {
        &self.subject[..self.host_len]
    }
}
