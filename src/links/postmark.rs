//! Postmark click links: `click.pstmrk.it/<3s|2s|3ts…>/<pct-encoded URL without scheme>/…`.
//! The scheme is not in the link; like every public decoder we assume https.

pub fn decode(raw: &str) -> Result<String, &'static str> {
    let after_host = raw
        .find("pstmrk.it/")
        .map(|p| &raw[p + "pstmrk.it/".len()..])
        .ok_or("not a pstmrk.it link")?;
    let mut segs = after_host.splitn(3, '/');
    let version = segs.next().unwrap_or("");
    if !version.starts_with(['2', '3']) {
        return Err("unknown version token");
    }
    let seg = segs.next().ok_or("no destination segment")?;
    let seg = &seg[..seg.find(['?', '#']).unwrap_or(seg.len())];
    if seg.is_empty() {
        return Err("empty destination");
    }
    let dest = percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| "segment is not UTF-8")?;
    Ok(format!("https://{dest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples() {
        assert_eq!(
            decode("https://click.pstmrk.it/3s/connectas.catalog.yampi.io%2F/Ra0/tCiwAQ/AQ/51fccdb3/1/C91WScud2I").unwrap(),
            "https://connectas.catalog.yampi.io/"
        );
        // Postmark inside Postmark: one level per call.
        let once = decode("https://click.pstmrk.it/3s/click.pstmrk.it%2F3s%2Flaunchxmyfood.blogspot.com%252Feat%2Fabc/x/y").unwrap();
        assert_eq!(
            once,
            "https://click.pstmrk.it/3s/launchxmyfood.blogspot.com%2Feat/abc"
        );
        assert_eq!(
            decode(&once).unwrap(),
            "https://launchxmyfood.blogspot.com/eat"
        );
        assert!(decode("https://click.pstmrk.it/open?m=1").is_err());
    }
}
