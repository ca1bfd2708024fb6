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
        let (host, tail) = split(raw)?;
        let tail = &tail[..memchr::memchr(b'#', tail.as_bytes()).unwrap_or(tail.len())];
        let mut subject = String::with_capacity(host.len() + tail.len() + 1);
        subject.push_str(host);
        subject.make_ascii_lowercase();
        let host_len = subject.len();
        if !tail.starts_with('/') {
            subject.push('/');
        }
        if memchr::memchr(b'\\', tail.as_bytes()).is_some() {
            subject.push_str(&tail.replace('\\', "/"));
        } else {
            subject.push_str(tail);
        }
        Some(UrlView { subject, host_len })
    }

    pub fn host(&self) -> &str {
        &self.subject[..self.host_len]
    }
}

/// The host of a remote URL, lowercased, as [`UrlView::parse`] gives it (without building the
/// rest): the tracking log names each tracker's host.
pub fn host_of(raw: &str) -> Option<String> {
    split(raw).map(|(host, _)| host.to_ascii_lowercase())
}

/// A remote URL's host (as written) and what follows its authority (path, query, fragment).
fn split(raw: &str) -> Option<(&str, &str)> {
    let s = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    let rest = if let Some(r) = s.strip_prefix("//") {
        r
    } else {
        let colon = s.bytes().position(|b| b == b':')?;
        let scheme = &s.as_bytes()[..colon];
        if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
            return None;
        }
        // Browsers accept http:/x, http:\\x and extra slashes; so do we.
        let after = &s.as_bytes()[colon + 1..];
        let slashes = after
            .iter()
            .take_while(|&&b| b == b'/' || b == b'\\')
            .count();
        &s[colon + 1 + slashes..]
    };
    // Byte positions of ASCII delimiters: every slice below is on a char boundary.
    let bytes = rest.as_bytes();
    // The authority ends at the first delimiter; the host starts after its last '@'.
    let mut auth_end = bytes.len();
    let mut host_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'/' | b'?' | b'#' | b'\\' => {
                auth_end = i;
                break;
            }
            b'@' => host_start = i + 1,
            _ => {}
        }
    }
    let host_port = &bytes[host_start..auth_end];
    let host_len = if host_port.first() == Some(&b'[') {
        host_port[1..]
            .iter()
            .position(|&b| b == b']')
            .map_or(host_port.len(), |i| i + 2)
    } else {
        host_port
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(host_port.len())
    };
    let host = rest[host_start..host_start + host_len].trim_end_matches('.');
    if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some((host, &rest[auth_end..]))
}

/// Percent-decode `s` (`%` and two hex digits; any other `%` stays as it is), as the
/// `percent-encoding` crate does, but copying the runs between escapes whole: decoders run it
/// on every wrapped link.
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, [u8]> {
    let b = s.as_bytes();
    let Some(first) = memchr::memchr(b'%', b) else {
        return std::borrow::Cow::Borrowed(b);
    };
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            out.push(b'%');
            i += 1;
            continue;
        }
        let run = memchr::memchr(b'%', &b[i..]).unwrap_or(b.len() - i);
        out.extend_from_slice(&b[i..i + run]);
        i += run;
    }
    std::borrow::Cow::Owned(out)
}

/// [`percent_decode`] read as UTF-8.
pub fn percent_decode_utf8(s: &str) -> Result<std::borrow::Cow<'_, str>, std::str::Utf8Error> {
    Ok(match percent_decode(s) {
        std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(std::str::from_utf8(b)?),
        std::borrow::Cow::Owned(v) => {
            std::borrow::Cow::Owned(String::from_utf8(v).map_err(|e| e.utf8_error())?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The former `parse` (char searches, three allocations), kept to prove the byte version
    /// gives the same views.
    fn reference(raw: &str) -> Option<(String, String)> {
        let s = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        let rest = if let Some(r) = s.strip_prefix("//") {
            r
        } else {
            let (scheme, r) = s.split_once(':')?;
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return None;
            }
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
        let mut subject = host.to_ascii_lowercase();
        let host = subject.clone();
        if !tail.starts_with('/') {
            subject.push('/');
        }
        subject.push_str(&tail.replace('\\', "/"));
        Some((subject, host))
    }

    fn same(raw: &str) {
        let got = UrlView::parse(raw).map(|v| (v.subject.clone(), v.host().to_string()));
        assert_eq!(got, reference(raw), "{raw:?}");
        assert_eq!(host_of(raw), got.map(|(_, host)| host), "host_of({raw:?})");
    }

    #[test]
    fn worked_examples() {
        let v = UrlView::parse(" HTTPS://User:pw@Track.Example.:8080\\a/b?c=1#frag").unwrap();
        assert_eq!(v.subject, "track.example//a/b?c=1");
        assert_eq!(v.host(), "track.example");
        let v = UrlView::parse("//[2001:DB8::1]:443/p").unwrap();
        assert_eq!(v.host(), "[2001:db8::1]");
        assert_eq!(
            UrlView::parse("http:///Ünï.example?x").unwrap().subject,
            "Ünï.example/?x"
        );
        assert_eq!(UrlView::parse("mailto:a@b.example"), None);
        assert_eq!(UrlView::parse("https://./x"), None);
        assert_eq!(UrlView::parse("https://a b/"), None);
    }

    #[test]
    fn same_views_as_the_char_version_on_the_link_seeds() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/link");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            same(&String::from_utf8_lossy(&bytes));
            n += 1;
        }
        assert!(n > 1000, "{n} seeds");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(&*percent_decode("a%2Fb%2fc%zz%4%"), b"a/b/c%zz%4%");
        assert_eq!(&*percent_decode("plain"), b"plain");
        assert!(percent_decode_utf8("%FF").is_err());
        assert_eq!(percent_decode_utf8("%C3%A9t%C3%A9").unwrap(), "été");
    }

    proptest! {
        #[test]
        fn percent_decoding_is_the_crate_s(s in "[%0-9a-fA-FzZ/é]{0,30}") {
            let ours = percent_decode(&s).into_owned();
            let crate_s: Vec<u8> = percent_encoding::percent_decode_str(&s).collect();
            prop_assert_eq!(ours, crate_s);
        }

        #[test]
        fn same_views_as_the_char_version(raw in "[hHtTpPsS:/\\\\@\\[\\]#?. a-zA-Z0-9Üé\t]{0,40}") {
            same(&raw);
        }
    }
}
