//! Proofpoint URL Defense, versions 1–3 (`urldefense.com` / `urldefense.proofpoint.com`).
//! - v1 `/v1/url?u=<percent-encoded>&k=…`: percent-decode `u`, then HTML-unescape.
//! - v2 `/v2/url?u=<enc>&d=…`: `-`→`%`, `_`→`/`, percent-decode, HTML-unescape.
//! - v3 `/v3/__<url>__;<base64>!!<org>!<id>$`: each `*` in the URL takes the next character of
//!   the base64-decoded replacement string; `**X` takes a run of N *bytes*, N from X in
//!   `A–Z a–z 0–9 - _` mapped to 2..65.

use super::b64;
use crate::mail::entities;

pub fn decode(raw: &str) -> Result<String, &'static str> {
    if let Some(pos) = raw.find("/v3/__") {
        return v3(&raw[pos + "/v3/__".len()..]);
    }
    let version = if raw.contains("/v2/url") {
        2
    } else if raw.contains("/v1/url") {
        1
    } else {
        return Err("unknown URL Defense version");
    };
    let query = raw.split_once('?').map(|(_, q)| q).ok_or("no query")?;
    let query = query.split('#').next().unwrap_or("");
    let u = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("u="))
        .ok_or("no u parameter")?;
    let pct = if version == 2 {
        u.replace('-', "%").replace('_', "/")
    } else {
        u.to_string()
    };
    let decoded = percent_encoding::percent_decode_str(&pct)
        .decode_utf8()
        .map_err(|_| "u is not UTF-8")?;
    Ok(entities::decode(&decoded).into_owned())
}

fn v3(rest: &str) -> Result<String, &'static str> {
    let (url, tail) = rest.split_once("__;").ok_or("no __; terminator")?;
    let encoded = tail.split("!!").next().unwrap_or("");
    let replacement = if encoded.is_empty() {
        Vec::new()
    } else {
        b64::decode(encoded).ok_or("replacement is not base64")?
    };
    let mut out: Vec<u8> = Vec::with_capacity(url.len() + replacement.len());
    let mut rep = replacement.as_slice();
    let bytes = url.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'*' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'*') {
            let code = *bytes.get(i + 2).ok_or("run without a length")?;
            let n = run_length(code).ok_or("bad run length")?;
            let (take, left) = rep.split_at_checked(n).ok_or("replacement too short")?;
            out.extend_from_slice(take);
            rep = left;
            i += 3;
        } else {
            let len = utf8_len(*rep.first().ok_or("replacement too short")?);
            let (take, left) = rep.split_at_checked(len).ok_or("replacement too short")?;
            out.extend_from_slice(take);
            rep = left;
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "decoded URL is not UTF-8")
}

fn run_length(c: u8) -> Option<usize> {
    let idx = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(idx as usize + 2)
}

fn utf8_len(lead: u8) -> usize {
    match lead {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1() {
        assert_eq!(
            decode("https://urldefense.proofpoint.com/v1/url?u=http://www.example.com/a%3Fb%3D1%26amp%3Bc%3D2&k=abc").unwrap(),
            "http://www.example.com/a?b=1&c=2"
        );
    }

    #[test]
    fn v2_test_vector() {
        assert_eq!(
            decode("https://urldefense.proofpoint.com/v2/url?u=https-3A__www.example.com_-23-23-23-23-23foobar&d=DwMFAg&c=x&r=y&m=z&s=w&e=").unwrap(),
            "https://www.example.com/#####foobar"
        );
    }

    #[test]
    fn v3_test_vectors() {
        assert_eq!(
            decode("https://urldefense.com/v3/__https://example.com/*newsletter__;Iw!!foo!bar$")
                .unwrap(),
            "https://example.com/#newsletter"
        );
        assert_eq!(
            decode("https://urldefense.com/v3/__http://www.example.com__;!!foo!bar$").unwrap(),
            "http://www.example.com"
        );
        assert_eq!(
            decode(
                "https://urldefense.com/v3/__http://www.example.com/**E.html__;5L2g5aW9!!foo!bar$"
            )
            .unwrap(),
            "http://www.example.com/\u{4f60}\u{597d}.html"
        );
        // Runs count bytes: "**A" takes 2 bytes (í), the rest stays literal.
        assert_eq!(
            decode("https://urldefense.com/v3/__https://x.example/**Aa__;w60j!!o!i$").unwrap(),
            "https://x.example/\u{ed}a"
        );
        assert!(decode("https://urldefense.com/v3/__https://x.example/**__;!!o!i$").is_err());
        assert!(decode("https://urldefense.com/v3/__https://x.example/*__;!!o!i$").is_err());
    }
}
