//! SparkPost click links: `<host>/f/a/<sig>~~/<acct>~/<payload>~`. The account segment's last
//! byte says whether the payload is plaintext (0x00) or encrypted (0x10, opaque). A plaintext
//! payload is a TLV list: `F 04 <time>`, `?` (click marker, no length), `D <len> <URL>`, …
//! (facts inferred from sample links; URLs over 255 bytes are not verified and not decoded).

use super::b64;

pub fn decode(raw: &str) -> Result<String, &'static str> {
    let start = raw.find("/f/a/").ok_or("not /f/a/")? + 5;
    let rest = &raw[start..];
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let (_sig, rest) = rest.split_once("~~/").ok_or("no signature")?;
    let (acct, rest) = rest.split_once("~/").ok_or("no account segment")?;
    let payload = rest.trim_end_matches('/').trim_end_matches('~');
    if let Some(flag) = b64::decode(acct).and_then(|a| a.last().copied()) {
        if flag == 0x10 {
            return Err("encrypted payload");
        }
    }
    let bytes = b64::decode(payload).ok_or("payload is not base64url")?;
    let mut i = 0;
    while i < bytes.len() {
        let tag = bytes[i];
        i += 1;
        if tag == b'?' {
            continue;
        }
        let len = *bytes.get(i).ok_or("truncated TLV")? as usize;
        i += 1;
        let value = bytes.get(i..i + len).ok_or("truncated TLV")?;
        i += len;
        if tag == b'D' {
            return String::from_utf8(value.to_vec()).map_err(|_| "destination is not UTF-8");
        }
    }
    Err("no destination in payload (encrypted?)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64u(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn worked_example_prefix() {
        // esp-facts: payload "RgRnYAH3P0RMaHR0cHM6Ly9zd2lzc3BvcnRnbG9iYWwuaWNpbXMu…" decodes to
        // https://swissportglobal.icims.com/icims2/?r=C7C243412&contactId=92674&pid=17
        let dest = b"https://swissportglobal.icims.com/icims2/?r=C7C243412&contactId=92674&pid=17";
        let mut tlv = vec![
            b'F',
            4,
            0x67,
            0x60,
            0x01,
            0xf7,
            b'?',
            b'D',
            dest.len() as u8,
        ];
        tlv.extend_from_slice(dest);
        tlv.extend_from_slice(&[b'W', 3]);
        tlv.extend_from_slice(b"spc");
        assert!(b64u(&tlv).starts_with("RgRnYAH3P0RMaHR0cHM6Ly9zd2lzc3BvcnRnbG9iYWwuaWNpbXMu"));
        let url = format!(
            "https://go.shop.example/f/a/abcdefghijklmnopqrstuv~~/{}~/{}~",
            b64u(&[0x41, 0x41, 0x00]),
            b64u(&tlv)
        );
        assert_eq!(
            decode(&url).unwrap(),
            String::from_utf8(dest.to_vec()).unwrap()
        );
    }

    #[test]
    fn encrypted_is_opaque() {
        let url = format!(
            "https://go.shop.example/f/a/abcdefghijklmnopqrstuv~~/{}~/{}~",
            b64u(&[0x41, 0x41, 0x10]),
            b64u(&[7; 64])
        );
        assert_eq!(decode(&url), Err("encrypted payload"));
    }
}
