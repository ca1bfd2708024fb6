//! Amazon SES click links: `<id>.r.<region>.awstrack.me/L0/<pct-encoded URL>/<n>/<ses id>/<sig>`
//! and the custom-domain form `/CL0/…`. The destination is the percent-decoded segment.

use crate::mail::url::percent_decode_utf8;
use url::Url;

pub fn decode(raw: &str) -> Result<String, &'static str> {
    // Work on the raw string: the url crate would re-encode the segment.
    let pos = find_slashed(raw, "/L0/")
        .map(|p| p + 4)
        .or_else(|| find_slashed(raw, "/CL0/").map(|p| p + 5))
        .ok_or("no /L0/ or /CL0/ segment")?;
    let seg = &raw[pos..];
    let seg = &seg[..seg
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(seg.len())];
    let dest = percent_decode_utf8(seg).map_err(|_| "segment is not UTF-8")?;
    // An http(s) destination is parsed by the caller's check of every decoded destination;
    // anything else must at least be a URL.
    let web = dest
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        || dest
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
    if !web {
        let _ = Url::parse(&dest).map_err(|_| "segment is not a URL")?;
    }
    Ok(dest.into_owned())
}

/// Where `marker` (which starts with `/`) first occurs in `raw`. A link has a few slashes:
/// checking each costs less than setting up a substring search, on every SES link.
fn find_slashed(raw: &str, marker: &str) -> Option<usize> {
    let b = raw.as_bytes();
    memchr::memchr_iter(b'/', b).find(|&p| b[p..].starts_with(marker.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples() {
        let u = "https://tracking.marketingvici.com/CL0/https:%2F%2Fces4-static.example%2Fpage.html%3Fa=1%26b=2/1/01000186c03d9724-a1b2c3d4-0000-0000-0000-000000000000-000000/UUHAabc=291";
        assert_eq!(
            decode(u).unwrap(),
            "https://ces4-static.example/page.html?a=1&b=2"
        );
        let u = "http://qpvvmjwx.r.us-east-1.awstrack.me/L0/http:%2F%2Fmastercardidps.idprotectiononline.com%2Falerts%2Fhistory.html%3Flang=en_US/1/01000178626eb1e0-x-000000/27r5oe9sP7Z0DFVB_WeA7aWcx2Y=206";
        assert_eq!(
            decode(u).unwrap(),
            "http://mastercardidps.idprotectiononline.com/alerts/history.html?lang=en_US"
        );
    }

    #[test]
    fn nested_ses_decodes_one_level_at_a_time() {
        let u = "https://a.r.us-east-1.awstrack.me/L0/https:%2F%2Fv8lsv193.r.us-east-1.awstrack.me%2FL0%2Fhttps:%252F%252Fmarcs-346552.webshopapp.com%252Fssm%2F1%2Fid%2Fsig=1/1/id/sig=2";
        let once = decode(u).unwrap();
        assert_eq!(once, "https://v8lsv193.r.us-east-1.awstrack.me/L0/https:%2F%2Fmarcs-346552.webshopapp.com%2Fssm/1/id/sig=1");
        assert_eq!(
            decode(&once).unwrap(),
            "https://marcs-346552.webshopapp.com/ssm"
        );
    }

    #[test]
    fn junk_destination_is_rejected() {
        assert!(decode("https://t.example/CL0/%2520/1/x/y=1").is_err());
    }
}
