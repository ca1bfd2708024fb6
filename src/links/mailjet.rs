//! Mailjet click links: `<x>.mjt.lu/lnk/<msg token>/<n>/<sig>/<base64url(URL)>` (optional `?b=N`).

use super::b64;
use url::Url;

pub fn decode(url: &Url) -> Result<String, &'static str> {
    let segs: Vec<&str> = url.path_segments().ok_or("no path")?.collect();
    if segs.first() != Some(&"lnk") || segs.len() < 3 {
        return Err("not a /lnk/ link");
    }
    let last = segs
        .iter()
        .rev()
        .find(|s| !s.is_empty())
        .ok_or("no payload")?;
    b64::decode_str(last).ok_or("payload is not base64url text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example() {
        let u = Url::parse("http://xmjhp.mjt.lu/lnk/AVcAAEfwI4kAAc4H/1/yMTu5i1P3gwRtLiVdj6AbA/aHR0cHM6Ly9saWJlcnR5aW5vdXJsaWZldGltZS5vcmcv").unwrap();
        assert_eq!(decode(&u).unwrap(), "https://libertyinourlifetime.org/");
        let u = Url::parse("http://xmjhp.mjt.lu/lnk/AVcAAEfw/1/sig/aHR0cHM6Ly9saWJlcnR5aW5vdXJsaWZldGltZS5vcmcv?b=3").unwrap();
        assert_eq!(decode(&u).unwrap(), "https://libertyinourlifetime.org/");
        assert!(decode(&Url::parse("http://x.mjt.lu/oo/abc/12345678/e.gif").unwrap()).is_err());
    }
}
