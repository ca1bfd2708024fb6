//! Mailgun click links: `http(s)://<any host>/c/eJ…`. The token is base64url (no padding) of
//! zlib data that inflates to a form-encoded string; the destination is key `l`.
//! Custom tracking domains (email.<sending domain> CNAMEd to mailgun.org) keep the path.

use super::b64;
use url::Url;

/// Largest inflated payload we accept.
const MAX_INFLATED: usize = 64 << 10;

pub fn decode(url: &Url) -> Result<String, &'static str> {
    let mut segs = url.path_segments().ok_or("no path")?;
    let token = loop {
        match segs.next() {
            Some("c") => break segs.next().ok_or("no token")?,
            Some(_) => continue,
            None => return Err("no /c/ segment"),
        }
    };
    let zipped = b64::decode(token).ok_or("token is not base64")?;
    let form = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&zipped, MAX_INFLATED)
        .map_err(|_| "token does not inflate")?;
    url::form_urlencoded::parse(&form)
        .find(|(k, _)| k == "l")
        .map(|(_, v)| v.into_owned())
        .ok_or("payload has no destination (l)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn token(form: &str) -> String {
        let z = miniz_oxide::deflate::compress_to_vec_zlib(form.as_bytes(), 6);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(z)
    }

    #[test]
    fn worked_example_from_esp_facts() {
        // The decoded real example in esp-facts.md (Mailgun section), re-encoded.
        let form = "e=1668427604&d=acf2a2&i=63722f53e7754_73bcca70267105b%40sidekiq-low-mail&h=b940eea6&l=https%3A%2F%2Ffacebook.com%2F&r=rodrigo-f-p%40hotmail.com&t=site_welcome_production";
        let url = Url::parse(&format!(
            "https://email.notify.thinkific.com/c/{}",
            token(form)
        ))
        .unwrap();
        assert_eq!(decode(&url).unwrap(), "https://facebook.com/");
    }

    #[test]
    fn key_order_does_not_matter_and_open_payloads_have_no_l() {
        let url = Url::parse(&format!(
            "http://email.shop.example/c/{}",
            token("l=https%3A%2F%2Fapp.noshow.io&e=1")
        ))
        .unwrap();
        assert_eq!(decode(&url).unwrap(), "https://app.noshow.io");
        let url = Url::parse(&format!("http://email.shop.example/c/{}", token("e=1&i=x"))).unwrap();
        assert!(decode(&url).is_err());
        let url = Url::parse("http://email.shop.example/c/eJnotzlib").unwrap();
        assert!(decode(&url).is_err());
    }
}
