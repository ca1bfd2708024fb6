//! Mandrill click links: `mandrillapp.com/track/click/<uid>/<host>?p=<base64>`. `p` is base64
//! (URL-safe characters occur) of `{"s":…,"v":1,"p":"<JSON string>"}`; the inner JSON carries
//! the destination in `url`.

use super::b64;
use url::Url;

pub fn decode(url: &Url) -> Result<String, &'static str> {
    let p = url
        .query_pairs()
        .find(|(k, _)| k == "p")
        .map(|(_, v)| v.into_owned())
        .ok_or("no p parameter")?;
    let outer = b64::decode(&p).ok_or("p is not base64")?;
    let outer: serde_json::Value = serde_json::from_slice(&outer).map_err(|_| "p is not JSON")?;
    let inner = match &outer["p"] {
        serde_json::Value::String(s) => {
            serde_json::from_str::<serde_json::Value>(s).map_err(|_| "inner p is not JSON")?
        }
        v @ serde_json::Value::Object(_) => v.clone(),
        _ => return Err("no inner p"),
    };
    inner["url"]
        .as_str()
        .map(str::to_string)
        .ok_or("no url in payload")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    pub fn link(dest: &str) -> String {
        let inner = serde_json::json!({"u": 30477602, "v": 1, "url": dest, "id": "ded5d0c1", "url_ids": ["abc"]}).to_string();
        let outer = serde_json::json!({"s": "sig", "v": 1, "p": inner}).to_string();
        let p = base64::engine::general_purpose::URL_SAFE.encode(outer);
        format!("https://mandrillapp.com/track/click/30477602/shop.example?p={p}")
    }

    #[test]
    fn decodes_nested_json() {
        // The real example in esp-facts.md: a Postmark link inside Mandrill.
        let dest = "https://click.pstmrk.it/3s/connectas.catalog.yampi.io%2F/Ra0/tCiwAQ/AQ/51fccdb3-0000/1/C91WScud2I";
        assert_eq!(decode(&Url::parse(&link(dest)).unwrap()).unwrap(), dest);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(
            decode(&Url::parse("https://mandrillapp.com/track/click/1/x?p=!!!").unwrap()).is_err()
        );
        assert!(
            decode(&Url::parse("https://mandrillapp.com/track/click/1/x?p=e30").unwrap()).is_err()
        );
    }
}
