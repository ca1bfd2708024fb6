//! The link pipeline: unwrap nested wrappers in a loop, validate the destination, strip
//! tracking parameters, or recognise an opaque tracker.

use super::Decoder;
use super::LinkRules;
use crate::mail::link::LinkResult;
use crate::mail::outcome::Action;
use crate::mail::url::UrlView;

/// Wrappers nest (Mandrill→Postmark, SES→SES, Proofpoint→Safe Links→SES); this bounds it.
pub const MAX_DEPTH: usize = 8;

/// Process one link (HTML entities already decoded). `None` for links that are not absolute
/// http(s) URLs (mailto:, tel:, anchors, relative paths): those are not ours to touch.
///
/// The result is a fixed point: processing the new URL gives nothing new, so a second run
/// over a rewritten message changes nothing. One pass does not always get there (stripping a
/// parameter can leave a link a decoder now reads, or expose another parameter), so passes
/// repeat, a bounded number of times, until the URL stops changing.
pub fn process(link: &str, rules: &LinkRules<'_>) -> Option<LinkResult> {
    let (mut res, mut view) = process_once(link, None, rules)?;
    for _ in 0..MAX_DEPTH {
        let Some(current) = res.new_url.clone() else {
            break;
        };
        let Some((next, next_view)) = process_once(&current, view.take(), rules) else {
            break;
        };
        view = next_view;
        res.still_tracked = next.still_tracked;
        let Some(new) = next.new_url.filter(|n| *n != current) else {
            break;
        };
        res.new_url = Some(new);
        res.chain.extend(next.chain);
        if res.action == Action::Cleaned && next.action == Action::Unwrapped {
            res.action = Action::Unwrapped;
            res.rule = next.rule;
            res.vendor = next.vendor;
        }
        res.detail = match (res.detail.take(), next.detail) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
    }
    Some(res)
}

/// One pass over `link`. `parsed` is `link`'s view when the caller has it. Returns, beside the
/// result, the view of its new URL when the pass parsed it (the next pass starts from it).
fn process_once(
    link: &str,
    parsed: Option<UrlView>,
    rules: &LinkRules<'_>,
) -> Option<(LinkResult, Option<UrlView>)> {
    let trimmed = link.trim();
    // The view handed over was parsed from the untrimmed string (the same view, unless
    // trimming took something away).
    let link_view = match parsed {
        Some(view) if trimmed.len() == link.len() => view,
        _ => UrlView::parse(trimmed)?,
    };
    let link = trimmed;
    let mut current = link.to_string();
    let mut chain: Vec<String> = Vec::new();
    let mut first: Option<(String, Option<String>)> = None;
    let mut stopped: Option<(String, Option<String>, String)> = None;
    let mut pathonly_failed: Option<(String, Option<String>, String)> = None;
    for depth in 0.. {
        let parsed;
        let view = if depth == 0 {
            &link_view
        } else {
            parsed = UrlView::parse(&current);
            match &parsed {
                Some(v) => v,
                None => break,
            }
        };
        let Some(rule) = rules.decoder.first_match(&view.subject) else {
            // A user's ClearURLs catalog may know more redirectors.
            let Some((name, dest)) = rules.clearurls.and_then(|c| c.redirect(&current)) else {
                break;
            };
            let Some(dest) = valid_destination(&dest) else {
                break;
            };
            if depth == MAX_DEPTH || dest == current {
                break;
            }
            let id = format!("clearurls:{name}");
            if first.is_none() {
                first = Some((id.clone(), None));
            }
            chain.push(id);
            current = dest;
            continue;
        };
        if depth == MAX_DEPTH {
            stopped = Some((
                rule.id.clone(),
                rule.vendor.clone(),
                "too many nested wrappers".into(),
            ));
            break;
        }
        let Some(decoder) = rule.decoder.as_deref().and_then(Decoder::from_name) else {
            break;
        };
        let outcome = decoder.decode(&current, &rule.params).and_then(|d| {
            valid_destination(&d).ok_or("decoded destination is not an absolute http(s) URL")
        });
        match outcome {
            Ok(dest) => {
                if first.is_none() {
                    first = Some((rule.id.clone(), rule.vendor.clone()));
                }
                chain.push(rule.id.clone());
                current = dest;
            }
            // A path-only rule claims a link only by decoding it: on another host the same
            // path may be the site's own (inner wrappers, once one was read, stay claimed).
            Err(why) if depth == 0 && rule.hosts.is_empty() && rule.host_re.is_none() => {
                pathonly_failed = Some((rule.id.clone(), rule.vendor.clone(), why.to_string()));
                break;
            }
            Err(why) => {
                stopped = Some((rule.id.clone(), rule.vendor.clone(), why.to_string()));
                break;
            }
        }
    }

    if pathonly_failed.is_some() && opaque_rule_view(&link_view, link, rules).is_some() {
        stopped = pathonly_failed;
    }
    let mut final_url = current.clone();
    let mut removed = Vec::new();
    let has_params = final_url.contains(['?', '#']);
    if let Some((u, r)) = has_params.then(|| rules.params.strip(&final_url)).flatten() {
        final_url = u;
        removed.extend(r);
    }
    let mut cleaned = false;
    if let Some((u, r)) = rules.clearurls.and_then(|c| c.clean(&final_url)) {
        final_url = u;
        removed.extend(r);
        cleaned = true;
    }
    // Only an absolute URL is written into a link: parameters are not stripped from a string
    // that, once stripped, no longer parses as one (a broken link stays as the sender wrote it).
    // A decoded destination was checked already, and taking query parameters out of an
    // absolute http(s) URL leaves one.
    let checked = !chain.is_empty() && !cleaned;
    if !removed.is_empty() && !checked && valid_destination(&final_url).is_none() {
        final_url = current.clone();
        removed.clear();
    }
    let removed_note =
        (!removed.is_empty()).then(|| format!("removed parameters: {}", removed.join(", ")));

    if let Some((rule, vendor)) = first {
        let mut detail = removed_note;
        let mut still_tracked = true;
        let final_view = UrlView::parse(&final_url);
        let opaque = || {
            let view = final_view.as_ref()?;
            opaque_rule_view(view, &final_url, rules)
        };
        if let Some((_, _, why)) = stopped {
            detail = Some(format!("stopped at an inner wrapper: {why}"));
        } else if let Some(inner) = opaque() {
            detail = Some(format!("destination is an opaque tracker ({})", inner.0));
        } else {
            still_tracked = false;
        }
        let result = LinkResult {
            action: Action::Unwrapped,
            new_url: Some(final_url),
            chain,
            rule: Some(rule),
            vendor,
            detail,
            still_tracked,
        };
        return Some((result, final_view));
    }
    // A host-specific opaque rule names the vendor better than the decoder's format
    // (Klaviyo's ct.klclick.com uses SparkPost's link format).
    let opaque = opaque_rule_view(&link_view, link, rules);
    let kept = match (stopped, opaque) {
        (Some((rule, vendor, why)), opaque) => {
            let (rule, vendor) = match opaque {
                Some((r, v)) if v.is_some() && v != vendor => (r, v),
                _ => (rule, vendor),
            };
            Some((rule, vendor, Some(why)))
        }
        (None, Some((rule, vendor))) => Some((rule, vendor, None)),
        (None, None) => None,
    };
    let result = if let Some((rule, vendor, detail)) = kept {
        LinkResult {
            action: Action::KeptOpaque,
            new_url: None,
            chain,
            rule: Some(rule),
            vendor,
            detail,
            still_tracked: true,
        }
    } else if final_url != link {
        LinkResult {
            action: Action::Cleaned,
            new_url: Some(final_url),
            chain,
            rule: None,
            vendor: None,
            detail: removed_note,
            still_tracked: false,
        }
    } else {
        LinkResult {
            action: Action::Untouched,
            new_url: None,
            chain,
            rule: None,
            vendor: None,
            detail: None,
            still_tracked: false,
        }
    };
    Some((result, None))
}

fn opaque_rule_view(
    view: &UrlView,
    url: &str,
    rules: &LinkRules<'_>,
) -> Option<(String, Option<String>)> {
    if let Some(r) = rules.click.first_match(&view.subject) {
        return Some((r.id.clone(), r.vendor.clone()));
    }
    let name = rules.clearurls?.complete(url)?;
    Some((format!("clearurls:{name}"), None))
}

/// Accept a decoded destination only if it is an absolute http(s) URL with a host. Returns the
/// string to write: as decoded when it is plain ASCII without spaces or quotes, otherwise the
/// `url` crate's serialisation (percent-encoded, punycode host).
pub fn valid_destination(dest: &str) -> Option<String> {
    let dest = dest.trim();
    let starts = |p: &str| {
        dest.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    // Without an early exit: the compiler checks many bytes at a time.
    let plain = (starts("http://") || starts("https://"))
        && dest.bytes().fold(true, |ok, b| {
            ok & b.is_ascii_graphic() & !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'`')
        });
    // Most destinations are plain with a plain host name: the url crate would accept them and
    // the answer is the string itself. Anything else is the url crate's to judge.
    if plain && plain_authority(dest) {
        return Some(dest.to_string());
    }
    let parsed = url::Url::parse(dest).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return None;
    }
    Some(if plain {
        dest.to_string()
    } else {
        parsed.as_str().to_string()
    })
}

/// Is the authority of `url` (which starts with `http://` or `https://`) one the url crate
/// certainly accepts: a host name of ASCII letters, digits, `-` and `.` whose labels are not
/// empty, none an IDNA label (`xn--`), the last one starting with a letter (so it is not read
/// as an IPv4 address), with an optional port of 1 to 5 digits up to 65535; no user info.
fn plain_authority(url: &str) -> bool {
    let rest =
        memchr::memmem::find(url.as_bytes(), b"//").map_or(&b""[..], |i| &url.as_bytes()[i + 2..]);
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let (host, port) = match authority.iter().position(|&b| b == b':') {
        Some(i) => (&authority[..i], Some(&authority[i + 1..])),
        None => (authority, None),
    };
    if let Some(port) = port {
        let digits = !port.is_empty() && port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
        if !digits || port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) > 65535 {
            return false;
        }
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty()
        || !host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return false;
    }
    let mut last = &host[..0];
    for label in host.split(|&b| b == b'.') {
        if label.is_empty() || label.len() >= 4 && label[..4].eq_ignore_ascii_case(b"xn--") {
            return false;
        }
        last = label;
    }
    last[0].is_ascii_alphabetic()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `valid_destination` answered before its fast path: the url crate's judgement.
    fn by_the_url_crate(dest: &str) -> Option<String> {
        let dest = dest.trim();
        let parsed = url::Url::parse(dest).ok()?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none_or(str::is_empty)
        {
            return None;
        }
        let lower = dest.get(..8).unwrap_or(dest).to_ascii_lowercase();
        let plain = (lower.starts_with("http://") || lower.starts_with("https://"))
            && dest
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'`'));
        Some(if plain {
            dest.to_string()
        } else {
            parsed.as_str().to_string()
        })
    }

    #[test]
    fn fast_path_agrees_with_the_url_crate() {
        for d in [
            "https://a.example/x",
            "http://A.Example.:8080/x?y#z",
            "https://1.2.3.4/x",
            "https://1.2.3.999/x",
            "https://a.0x7f/",
            "https://a.b1/",
            "https://xn--nxasmq6b.example/",
            "https://xn--zz.example/",
            "https://a..b/",
            "https://.a/",
            "https://a.-b-/",
            "https://a.example:65535/",
            "https://a.example:65536/",
            "https://a.example:/",
            "https://u@a.example/",
            "https://a_b.example/",
            "https://a.example%2F/",
            &format!("https://{}.example/", "a".repeat(300)),
        ] {
            assert_eq!(valid_destination(d), by_the_url_crate(d), "{d}");
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/link");
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let d = String::from_utf8_lossy(&bytes);
            assert_eq!(valid_destination(&d), by_the_url_crate(&d), "{d}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_path_agrees_on_generated_hosts(
            host in "[a-zA-Z0-9.\\-_%@]{0,24}",
            port in proptest::option::of("[0-9]{0,6}"),
            tail in "[/?#a-z=&.%]{0,12}",
        ) {
            let d = match port {
                Some(p) => format!("https://{host}:{p}{tail}"),
                None => format!("http://{host}{tail}"),
            };
            proptest::prop_assert_eq!(valid_destination(&d), by_the_url_crate(&d), "{}", d);
        }
    }

    #[test]
    fn destinations_are_validated() {
        assert_eq!(
            valid_destination("https://a.example/x?y=1").as_deref(),
            Some("https://a.example/x?y=1")
        );
        assert_eq!(valid_destination("javascript:alert(1)"), None);
        assert_eq!(valid_destination("%20"), None);
        assert_eq!(valid_destination("/relative"), None);
        assert_eq!(valid_destination("https://"), None);
        assert_eq!(
            valid_destination("https://a.example/a b").as_deref(),
            Some("https://a.example/a%20b")
        );
    }
}
