//! Substack `substack.com/redirect/2/<payload>.<sig>`: the payload is base64url JSON whose `e`
//! is the destination. (`/redirect/<uuid>?j=…` is looked up server-side: opaque.)

use super::b64;
use url::Url;

pub fn decode(url: &Url) -> Result<String, &'static str> {
    let segs: Vec<&str> = url.path_segments().ok_or("no path")?.collect();
    if segs.len() < 3 || segs[0] != "redirect" || segs[1] != "2" {
        return Err("not /redirect/2/");
    }
    let payload = segs[2].split('.').next().unwrap_or("");
    let json = b64::decode(payload).ok_or("payload is not base64url")?;
    let v: serde_json::Value = serde_json::from_slice(&json).map_err(|_| "payload is not JSON")?;
    v["e"].as_str().map(str::to_string).ok_or("no e in payload")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn decodes_e() {
        let json = r#"{"e":"https://www.example.org/post?ref=1","p":123,"s":456,"f":true,"u":789,"iat":1700000000,"exp":1702592000,"iss":"pub-1","sub":"link-redirect"}"#;
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let u = Url::parse(&format!("https://substack.com/redirect/2/{p}.sigSIGsig")).unwrap();
        assert_eq!(decode(&u).unwrap(), "https://www.example.org/post?ref=1");
        let u =
            Url::parse("https://substack.com/redirect/2c4f0d1e-0000-4000-8000-000000000000?j=eyJ1")
                .unwrap();
        assert!(decode(&u).is_err());
    }
}
