//! SparkPost click links: `<host>/f/a/<sig>~~/<acct>~/<payload>~`. The account segment's last
//! byte says whether the payload is plaintext (0x00) or encrypted (0x10, opaque). A plaintext
//! payload is a TLV list: `F 04 <time>`, `?` (click marker, no length), `D <len> <URL>`, …
//! (facts inferred from sample links). How a URL over 255 bytes is length-encoded is not
//! known, so a payload is read only if the whole TLV list parses to its last byte, every tag a
//! letter or `?`: a long URL under some other length encoding then fails the parse and the
//! link is reported opaque, never cut short.

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
    const UNREADABLE: &str =
        "payload does not parse to its end (a URL over 255 bytes? its length encoding is not known)";
    let mut i = 0;
    let mut dest = None;
    while i < bytes.len() {
        let tag = bytes[i];
        i += 1;
        if tag == b'?' {
            continue;
        }
        if !tag.is_ascii_alphabetic() {
            return Err(UNREADABLE);
        }
        let len = *bytes.get(i).ok_or(UNREADABLE)? as usize;
        i += 1;
        let value = bytes.get(i..i + len).ok_or(UNREADABLE)?;
        i += len;
        if tag == b'D' && dest.is_none() {
            dest = Some(value);
        }
    }
    let dest = dest.ok_or("no destination in payload (encrypted?)")?;
    String::from_utf8(dest.to_vec()).map_err(|_| "destination is not UTF-8")
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

    fn plaintext_link(tlv: &[u8]) -> String {
        format!(
            "https://go.shop.example/f/a/abcdefghijklmnopqrstuv~~/{}~/{}~",
            b64u(&[0x41, 0x41, 0x00]),
            b64u(tlv)
        )
    }

    #[test]
    fn long_url_is_never_cut_short() {
        // A 300-byte URL under a guessed two-byte length: the one-byte reading would take 1
        // byte, then find garbage where the next tag should be.
        let dest = format!("https://shop.example/p?{}", "a".repeat(277));
        assert_eq!(dest.len(), 300);
        let mut tlv = vec![b'F', 4, 1, 2, 3, 4, b'?', b'D', 0x01, 0x2c];
        tlv.extend_from_slice(dest.as_bytes());
        tlv.extend_from_slice(&[b'W', 3]);
        tlv.extend_from_slice(b"spc");
        assert!(decode(&plaintext_link(&tlv)).unwrap_err().contains("255"));
        // Varint-style (0xac 0x02): the one-byte reading takes 172 bytes starting at 0x02.
        let mut tlv = vec![b'?', b'D', 0xac, 0x02];
        tlv.extend_from_slice(dest.as_bytes());
        assert!(decode(&plaintext_link(&tlv)).is_err());
        // A length byte that wrapped around (300 mod 256 = 44) would cut the URL to its first
        // 44 bytes, which is itself a URL: the rest of the payload then does not parse.
        let mut tlv = vec![b'?', b'D', (dest.len() % 256) as u8];
        tlv.extend_from_slice(dest.as_bytes());
        tlv.extend_from_slice(&[b'W', 3]);
        tlv.extend_from_slice(b"spc");
        assert!(decode(&plaintext_link(&tlv)).is_err());
        // Trailing bytes after a well-formed list are not accepted either.
        let mut tlv = vec![b'D', 20];
        tlv.extend_from_slice(b"https://shop.example");
        tlv.push(0xff);
        assert!(decode(&plaintext_link(&tlv)).is_err());
        tlv.pop();
        assert_eq!(
            decode(&plaintext_link(&tlv)).unwrap(),
            "https://shop.example"
        );
    }
}
