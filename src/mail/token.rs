//! Does a URL carry a per-recipient token, and where? One function, [`token_in`], decides it for
//! the HTML engine (`html::pixel::per_recipient_token`: the remote inventory, and images on a
//! tracker host) and locates it for the dossier ([`token_range`], the highlighted part).
//!
//! # How we decide
//!
//! A token is a value that differs from one recipient to the next. We look for it in three
//! places, and a part counts when it is *opaque*: a run of URL-safe characters with both
//! letters and digits, at least so long.
//!
//! - **A query value**, after `=` or bare (`open.aspx?<hex>&d=1`): from 16 characters, or any
//!   value holding an e-mail address (`e=jane%40example.net`).
//! - **A path segment**, anywhere in the path (`/t/<token>/o.gif`, `/oo/<token>/<8 hex>/e.gif`,
//!   `/open/<token>`): from 20 characters of letters, digits and `-_.~=+`. A segment that is only
//!   hexadecimal (digits, `a`–`f` and `-`) counts only as the last one, not a file name:
//!   elsewhere it is how a CDN names folders (an account id, a content hash, a UUID), the same
//!   for everyone.
//! - **An image's file name** before its first dot (`/v/<token>.gif`): from 20 characters,
//!   letters and digits only and not only hexadecimal. A name with `-`, `_` or `.` in it is a
//!   name a person gave (`2f6d1c8e-glowco-logo.png`) or a hashed asset (`logo.3f9a2c1b.png`);
//!   a hexadecimal one is a content hash or a UUID (8 to 64 characters: no length tells them
//!   from a token).
//!
//! The folders in front of an image count only when its name is a placeholder of at most 3
//! characters (`o.gif`, `e.gif`, `ho.gif`): a named picture (`/<asset id>/hero.jpg`) is stored
//! content, the same in every copy. Nothing in the path of a font or a stylesheet counts: they
//! are named by their content's hash. Percent-escapes (`%2F`) in a path segment make it a name
//! or an address, not a token.
//!
//! So `/images/2026/11/banner-summer-sale.jpg`, `/files/123456/logo.png`,
//! `css2?family=Inter:wght@400;700` and `/image/upload/c_fill,w_600/v1699999999/abc.jpg` carry
//! none. When several parts count, the longest is the token (the first of equal ones). A guess
//! from one message: it marks what differs between recipients in practice, and can mark an
//! account id of the same shape, or miss a token that is all letters.

/// Shortest opaque query value.
const QUERY_MIN: usize = 16;
/// Shortest opaque path segment or file name.
const PATH_MIN: usize = 20;
/// Longest image name (before the dot) that is a placeholder, not a picture's name.
const PLACEHOLDER_MAX: usize = 3;

/// Does a (still percent-encoded) parameter value hold an e-mail address: something, `@` (or
/// `%40`), then a domain with a dot? (`wght@400;700` in a font URL holds none.)
pub fn email_address(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let Some((local, domain)) = lower.split_once('@').or_else(|| lower.split_once("%40")) else {
        return false;
    };
    let dot = domain.find('.');
    !local.is_empty() && dot.is_some_and(|d| d > 0 && d + 1 < domain.len())
}

/// A run of URL-safe characters (letters, digits, `-_.~=%+`) at least `min` long with both
/// letters and digits: how a query value is judged.
pub fn opaque(s: &str, min: usize) -> bool {
    opaque_with(s, min, b"-_.~=%+")
}

/// At least `min` bytes, each a letter, a digit or one of `extra`, with both letters and digits.
fn opaque_with(s: &str, min: usize, extra: &[u8]) -> bool {
    s.len() >= min
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Only hexadecimal digits and `-`: a content hash, an account id, a UUID.
fn hexadecimal(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// What a file name ends with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum File {
    Image,
    /// A font or a stylesheet.
    FontOrCss,
}

fn file_kind(segment: &str) -> Option<File> {
    const IMAGE: [&str; 8] = [
        ".gif", ".png", ".jpg", ".jpeg", ".webp", ".svg", ".bmp", ".avif",
    ];
    const FONT_CSS: [&str; 6] = [".woff", ".woff2", ".ttf", ".otf", ".eot", ".css"];
    let ends = |exts: &[&str]| {
        exts.iter().any(|ext| {
            let b = segment.as_bytes();
            b.len() >= ext.len() && b[b.len() - ext.len()..].eq_ignore_ascii_case(ext.as_bytes())
        })
    };
    if ends(&IMAGE) {
        Some(File::Image)
    } else if ends(&FONT_CSS) {
        Some(File::FontOrCss)
    } else {
        None
    }
}

/// The byte range of the per-recipient token in `path_query`, the part of a URL after its host
/// (`/path?query`, no fragment; `\` is read as `/`), if it has one: see the module
/// documentation for the rule.
pub fn token_in(path_query: &str) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let mut consider = |s: usize, e: usize| {
        if best.is_none_or(|(bs, be)| e - s > be - bs) {
            best = Some((s, e));
        }
    };
    let query_at = path_query.find('?').unwrap_or(path_query.len());
    let path = &path_query[..query_at];
    // The last non-empty segment, and the folders in front of it.
    let trimmed = path.trim_end_matches(['/', '\\']);
    let last_at = trimmed.rfind(['/', '\\']).map_or(0, |i| i + 1);
    let last = &trimmed[last_at..];
    match file_kind(last) {
        Some(File::FontOrCss) => {}
        Some(File::Image) => {
            let stem = &last[..last.find('.').unwrap_or(last.len())];
            if opaque_with(stem, PATH_MIN, b"") && !hexadecimal(stem) {
                consider(last_at, last_at + stem.len());
            }
            if stem.len() <= PLACEHOLDER_MAX {
                folder_tokens(&path[..last_at], &mut consider);
            }
        }
        None => {
            folder_tokens(&path[..last_at], &mut consider);
            if path_token(last) {
                consider(last_at, last_at + last.len());
            }
        }
    }
    if query_at < path_query.len() {
        let mut s = query_at + 1;
        for item in path_query[query_at + 1..].split('&') {
            let value_at = item.find('=').map_or(0, |eq| eq + 1);
            let value = &item[value_at..];
            if email_address(value) || opaque(value, QUERY_MIN) {
                consider(s + value_at, s + item.len());
            }
            s += item.len() + 1;
        }
    }
    best
}

/// Each folder of `folders` (the path in front of its last segment) that is an opaque path
/// segment and not only hexadecimal.
fn folder_tokens(folders: &str, consider: &mut impl FnMut(usize, usize)) {
    let mut at = 0;
    for segment in folders.split(['/', '\\']) {
        if path_token(segment) && !hexadecimal(segment) {
            consider(at, at + segment.len());
        }
        at += segment.len() + 1;
    }
}

/// An opaque path segment: no percent-escape (an escaped segment is a name or an address).
fn path_token(segment: &str) -> bool {
    opaque_with(segment, PATH_MIN, b"-_.~=+")
}

/// The byte range of the per-recipient token in a URL as written (`https://host/path?query`,
/// `//host/…`, with or without a fragment), if it has one: [`token_in`] on what follows the
/// host, located in `url`. What the dossier highlights.
pub fn token_range(url: &str) -> Option<(usize, usize)> {
    let end = url.find('#').unwrap_or(url.len());
    let url = &url[..end];
    // After a scheme (letters before the first `:`) and the slashes, the host runs to the
    // first `/`, `\` or `?`, as `UrlView::parse` reads it.
    let scheme_end = url
        .find(':')
        .filter(|&i| i > 0 && url[..i].bytes().all(|b| b.is_ascii_alphabetic()))
        .map_or(0, |i| i + 1);
    let host_at = url.len() - url[scheme_end..].trim_start_matches(['/', '\\']).len();
    let path_at = url[host_at..]
        .find(['/', '\\', '?'])
        .map_or(url.len(), |i| host_at + i);
    token_in(&url[path_at..]).map(|(s, e)| (path_at + s, path_at + e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token of a URL, as the dossier marks it.
    fn token(url: &str) -> Option<&str> {
        token_range(url).map(|(s, e)| &url[s..e])
    }

    /// As the HTML engine decides it: on what follows the host of the parsed URL.
    fn carries(url: &str) -> bool {
        let view = crate::mail::url::UrlView::parse(url).expect("url");
        token_in(&view.subject[view.host().len()..]).is_some()
    }

    /// Both readings agree: a token is found by one exactly when by the other.
    fn check(url: &str, expected: Option<&str>) {
        assert_eq!(token(url), expected, "{url}");
        assert_eq!(carries(url), expected.is_some(), "{url}");
    }

    // Corpus pixels the rule must mark, one test per way a token is found.

    #[test]
    fn opaque_folders() {
        // sendgrid-ss-receipt, a click: a folder longer than the last segment, no file name.
        check(
            "https://u28549525.ct.sendgrid.net/ss/c/u001.cZzMQ4UZBs0gRF2bB089b6OFwOt8_b9m6SPY1LVZ7OQ3r7TjlqVp7yrcMOIwTPVaRIAHQCoYSGOPcxFoamzvis6R0_FyXzd3WHA99mLrYOMuXLxGLwZeT-ATaYSEiOCJ/tas/YcY5tikZ1g-AAe0aggdKxg/",
            Some("u001.cZzMQ4UZBs0gRF2bB089b6OFwOt8_b9m6SPY1LVZ7OQ3r7TjlqVp7yrcMOIwTPVaRIAHQCoYSGOPcxFoamzvis6R0_FyXzd3WHA99mLrYOMuXLxGLwZeT-ATaYSEiOCJ"),
        );
        // campaign-monitor-newsletter: the token is a folder, with hyphens.
        check(
            "https://citymuseum.cmail20.com/t/d-o-pm5cz6e-xmasugympe/o.gif",
            Some("d-o-pm5cz6e-xmasugympe"),
        );
        // mailjet-newsletter: in front of an 8-hex folder.
        check(
            "https://x5k2p.mjt.lu/oo/GcUGCvsCyIEe5AP7v3BX0LX2VtGTPEBmSbU4MhuuqDm1IG5odluEOJHHf5FnHOUwqOcUvzjs-uCmGzYi/6861dbfc/e.gif",
            Some("GcUGCvsCyIEe5AP7v3BX0LX2VtGTPEBmSbU4MhuuqDm1IG5odluEOJHHf5FnHOUwqOcUvzjs-uCmGzYi"),
        );
        // sendgrid-ss-receipt: two tokens, the longer is marked.
        check(
            "https://u28549525.ct.sendgrid.net/ss/o/u001.IhTHrcG7kECQKltAHUqqVQ/07y/zfkguseoJfc1-hoGSMmS0A/ho.gif",
            Some("u001.IhTHrcG7kECQKltAHUqqVQ"),
        );
    }

    #[test]
    fn opaque_image_name() {
        // hidden-wrapper-beacons.
        check(
            "https://t.news.velo-club.example/v/OasEq6KbIHDnFCoYvmizbWJMiW60.gif",
            Some("OasEq6KbIHDnFCoYvmizbWJMiW60"),
        );
    }

    #[test]
    fn bare_query_value() {
        // sfmc-newsletter: `open.aspx?<hex>&d=…&bmt=0`.
        check(
            "http://click.e.globetrek.example/open.aspx?ff9944c5cb2cb33b02fe-feff20fdaf471b10be-fea943ae-ff1f41e4ff9f21075273-fe2d8911-fecf338098382ca1eba3&d=70228&bmt=0",
            Some(
                "ff9944c5cb2cb33b02fe-feff20fdaf471b10be-fea943ae-ff1f41e4ff9f21075273-fe2d8911-fecf338098382ca1eba3",
            ),
        );
    }

    #[test]
    fn query_values_and_last_segment_as_before() {
        check(
            "https://u1.ct.sendgrid.net/ls/click?upn=u001.7o1HT2LBLKK8rwOk8shny4O-2B2M&x=1",
            Some("u001.7o1HT2LBLKK8rwOk8shny4O-2B2M"),
        );
        check(
            "https://t.example/o?e=jane.doe%40example.net&c=12",
            Some("jane.doe%40example.net"),
        );
        check(
            "https://h.example/i.gif?e=jane@example.net&x=1",
            Some("jane@example.net"),
        );
        // A hexadecimal last segment that is no file name: an endpoint's argument.
        check(
            "https://t.example/open/a1b2c3d4e5f6a7b8c9d0e1f2?c=1#frag",
            Some("a1b2c3d4e5f6a7b8c9d0e1f2"),
        );
        check(
            "https://t.example/open/a1b2c3d4e5f6a7b8c9d0e1f2/",
            Some("a1b2c3d4e5f6a7b8c9d0e1f2"),
        );
        // klaviyo-own-mta.
        check(
            "https://ctrk.klclick.com/o/N9XX29C1RYQ2XA4VAPJN3BB2QJ",
            Some("N9XX29C1RYQ2XA4VAPJN3BB2QJ"),
        );
        // The longer of a query value and a path segment.
        check(
            "https://t.example/p/a1b2c3d4e5f6a7b8c9d0e1f2a3b4?u=0a1b2c3d4e5f6a7b8c9",
            Some("a1b2c3d4e5f6a7b8c9d0e1f2a3b4"),
        );
        // Protocol-relative, and backslashes read as slashes by both.
        check(
            "//t.example/open/a1b2c3d4e5f6a7b8c9d0e1f2",
            Some("a1b2c3d4e5f6a7b8c9d0e1f2"),
        );
        check(
            "https://t.example\\t\\d-o-pm5cz6e-xmasugympe\\o.gif",
            Some("d-o-pm5cz6e-xmasugympe"),
        );
        // Multi-byte text around does not break the range.
        let url = "https://t.exémple/o?é=1&e=a1b2c3d4e5f6a7b8c9d0";
        assert_eq!(token(url), Some("a1b2c3d4e5f6a7b8c9d0"));
    }

    #[test]
    fn cdn_and_static_urls_carry_none() {
        for url in [
            "https://cdn.example/images/2026/11/banner-summer-sale.jpg",
            "https://cdn.example/files/123456/logo.png",
            "https://fonts.googleapis.com/css2?family=Inter:wght@400;700",
            "https://res.cloudinary.com/demo/image/upload/c_fill,w_600/v1699999999/abc.jpg",
            "https://www.shop.example/fit-guide?utm_source=sendgrid&utm_medium=email",
            "https://t.example/o?id=12345",
            "https://t.example/abcdefghijklmnopqrstuvwxyz",
            "https://t.example/o#x?e=0a1b2c3d4e5f6a7b8c9d",
            "https://h.example/i.gif?at=@&x=a@b",
            "https://h.example/img/hero.jpg?w=600&h=300",
            "not a url",
            "",
        ] {
            assert_eq!(token(url), None, "{url}");
        }
    }

    #[test]
    fn hashed_and_uuid_names_carry_none() {
        for url in [
            // Hashed assets: short, dotted, or hexadecimal however long.
            "https://cdn.example/_next/static/media/logo.3f9a2c1b.png",
            "https://cdn.example/assets/logo.3f9a2c1b4d5e6f7a8b9c0d1e.png",
            "https://cdn.example/img/0a1b2c3d4e5f6a7b8c9d0e1f2.png",
            // constant-contact-newsletter, forward-rfc822-7bit: UUID names.
            "https://files.constantcontact.com/d8188f3a4/5791e7ca-5eed-42d1-a845-7586327f8110.png?rdr=true",
            "https://mcusercontent.com/ab257a5a0ccc67d40721e31cd/images/0b3bbd2d-966b-4223-bb62-620750a84e9e.png",
            // klaviyo-over-sendgrid: a hash in front of a name a person gave.
            "https://d3k81ch9hvuctc.cloudfront.net/company/XyZ9aB/images/2f6d1c8e-glowco-logo.png",
            // substack-post: an escaped URL as the name.
            "https://substackcdn.com/image/fetch/w_300,h_300,c_fill,f_png/https%3A%2F%2Fsubstack-post-media.s3.amazonaws.com%2Fpublic%2Fimages%2F2d23052e-59d5-475a-9d24-98ef1b6758ec_600x600.png",
        ] {
            check(url, None);
        }
    }

    #[test]
    fn asset_folders_carry_none() {
        for url in [
            // mailchimp-mctx-system: an asset id and a hash in front of a named picture.
            "https://eep.io/images/yzco4xsimv0y/5Ec5P1GrRuQSemsQ8mseoy/5cb0ac3d4a8e4f2f2e0f5b5c0a3a4f7b/mc-freddie-logo.png",
            // campaign-monitor-newsletter: a hexadecimal folder.
            "https://i1.createsend1.com/ei/d/F67304/9C29F0811B063E571DDD584F989EB9F1/img/logo-citymuseum.png",
            // mailjet-newsletter: a UUID folder, no file name.
            "https://x5k2p.mjt.lu/img2/x5k2p/152f6d74-a8d4-43dd-a23b-2da8ba458ed6/content",
            // A hexadecimal folder in front of a placeholder is not enough either.
            "https://h.example/9f8e7d6c-1234-4abc-8def-0123456789ab/p.gif",
            // postmark-invoice: an escaped destination is no token.
            "https://click.pstmrk.it/3s/ledgerly.example%2Fhelp/vAb1/UBgOTT/AQ/4",
        ] {
            check(url, None);
        }
    }

    #[test]
    fn fonts_and_stylesheets_carry_none() {
        for url in [
            "https://fonts.gstatic.com/s/inter/v13/UcCO3FwrK3iLTeHuS_fvQtMwCp50KnMw2boKoduKmMEVuLyfAZ9hiA.woff2",
            "https://fonts.gstatic.com/s/a1b2c3d4e5f6a7b8c9d0e1f2a3b4.woff2",
            "https://cdn.example/Ab3dEf6hIj9kLm2nOp5qRs8t/o.css",
        ] {
            check(url, None);
        }
    }
}
