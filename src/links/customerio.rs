//! Customer.io click links: `…/e/c/<base64 JSON>/<64 hex>` on e.customeriomail.com or a custom
//! host. The JSON's `href` is the destination.

use super::b64;
use url::Url;

pub fn decode(url: &Url) -> Result<String, &'static str> {
    let segs: Vec<&str> = url.path_segments().ok_or("no path")?.collect();
    let i = segs
        .windows(2)
        .position(|w| w == ["e", "c"])
        .ok_or("no /e/c/")?;
    let payload = segs.get(i + 2).ok_or("no payload")?;
    let json = b64::decode(payload).ok_or("payload is not base64")?;
    let v: serde_json::Value = serde_json::from_slice(&json).map_err(|_| "payload is not JSON")?;
    v["href"]
        .as_str()
        .map(str::to_string)
        .ok_or("no href in payload")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrack_test_vector() {
        // {"email_id":"…","href":"http://example.com","internal":"…","link_id":1}
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            r#"{"email_id":"dgSN0wUAAYUoWjXJgYFg1hV4Nqs=","href":"http://example.com","internal":"4dbc0503","link_id":1}"#,
        );
        let u = Url::parse(&format!(
            "https://e.customeriomail.com/e/c/{payload}/{}",
            "a".repeat(64)
        ))
        .unwrap();
        assert_eq!(decode(&u).unwrap(), "http://example.com");
    }
}
