//! The allow-list: senders whose mail is not rewritten at all. Matched on the From address;
//! by default only when one of our trusted Authentication-Results headers shows `dkim=pass`
//! for the From domain (or a parent of it), since anyone can write any From header.

use crate::core::policy::AllowList;
use crate::mail::trace::{domain_matches, Headers};
use crate::mail::trust::{trusted_hop, Trust};

/// The allow-list entry this message matches (`sender:ADDR` or `domain:DOMAIN`), if any.
pub fn check(headers: &Headers, allow: &AllowList, trust: &Trust) -> Option<String> {
    if allow.is_empty() {
        return None;
    }
    let fields = &headers.fields;
    // Several From fields: the message is ambiguous, never allow-listed.
    let mut froms = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("from"));
    let from = froms.next()?;
    if froms.next().is_some() {
        return None;
    }
    let addr = address(&from.value)?;
    let domain = addr.rsplit_once('@')?.1.to_string();
    let entry = if let Some(s) = allow.senders.iter().find(|s| s.eq_ignore_ascii_case(&addr)) {
        format!("sender:{}", s.to_ascii_lowercase())
    } else {
        let d = allow
            .domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .find(|d| domain_matches(&domain, d))?;
        format!("domain:{d}")
    };
    if allow.require_dkim {
        let (_, verified) = trusted_hop(headers, trust);
        let aligned = verified
            .iter()
            .any(|v| domain_matches(&domain, v) || domain_matches(v, &domain));
        if !aligned {
            return None;
        }
    }
    Some(entry)
}

/// The address of a From value: inside the last `<…>`, or the bare token with an `@`.
/// Lowercased; `None` when there is no plausible address.
fn address(value: &str) -> Option<String> {
    let inner = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value
            .split_whitespace()
            .find(|t| t.contains('@'))
            .unwrap_or(""),
    };
    let addr = inner
        .trim()
        .trim_matches(|c| c == '"' || c == '(' || c == ')' || c == ',');
    let (local, domain) = addr.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.contains(['@', ' ', '<', '>']) {
        return None;
    }
    Some(addr.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(senders: &[&str], domains: &[&str], require_dkim: bool) -> AllowList {
        AllowList {
            senders: senders.iter().map(|s| s.to_string()).collect(),
            domains: domains.iter().map(|s| s.to_string()).collect(),
            require_dkim,
        }
    }

    const SIGNED: &str = "Received: from mail.shop.example (mail.shop.example [192.0.2.1])\r\n\
        \tby mx.example.net (Postfix) with ESMTPS id 4A; Mon, 2 Nov 2026 10:00:00 +0000\r\n\
        Authentication-Results: mx.example.net; dkim=pass header.d=shop.example\r\n\
        From: \"Shop\" <News@News.Shop.Example>\r\n\
        Subject: hi\r\n\r\n";

    #[test]
    fn addresses() {
        assert_eq!(
            address("\"A, B\" <a@b.example>").as_deref(),
            Some("a@b.example")
        );
        assert_eq!(address("a@b.example (A)").as_deref(), Some("a@b.example"));
        assert_eq!(address("undisclosed"), None);
        assert_eq!(address("<@b.example>"), None);
    }

    #[test]
    fn domain_needs_trusted_dkim() {
        let t = Trust::default();
        let allow = list(&[], &["shop.example"], true);
        assert_eq!(
            check(&Headers::parse(SIGNED.as_bytes()), &allow, &t).as_deref(),
            Some("domain:shop.example")
        );
        // The same From without our verification: forged as far as we know.
        let forged = SIGNED.replace("dkim=pass", "dkim=fail");
        assert_eq!(check(&Headers::parse(forged.as_bytes()), &allow, &t), None);
        // An Authentication-Results written by another host is not ours to believe.
        let other = SIGNED.replace(
            "Authentication-Results: mx.example.net",
            "Authentication-Results: mx.attacker.example",
        );
        assert_eq!(check(&Headers::parse(other.as_bytes()), &allow, &t), None);
        // Without require_dkim the From header decides.
        let lax = list(&[], &["shop.example"], false);
        assert!(check(&Headers::parse(forged.as_bytes()), &lax, &t).is_some());
    }

    #[test]
    fn senders_and_non_matches() {
        let t = Trust::default();
        let allow = list(&["news@news.shop.example"], &[], true);
        assert_eq!(
            check(&Headers::parse(SIGNED.as_bytes()), &allow, &t).as_deref(),
            Some("sender:news@news.shop.example")
        );
        assert_eq!(
            check(
                &Headers::parse(SIGNED.as_bytes()),
                &list(&["x@shop.example"], &["other.example"], false),
                &t
            ),
            None
        );
        // notshop.example is not a sub-domain of shop.example.
        let near = SIGNED.replace("News.Shop.Example", "notshop.example");
        assert_eq!(
            check(
                &Headers::parse(near.as_bytes()),
                &list(&[], &["shop.example"], false),
                &t
            ),
            None
        );
        // Two From fields: never allow-listed.
        let two = SIGNED.replace("Subject: hi", "From: evil@else.example\r\nSubject: hi");
        assert_eq!(
            check(
                &Headers::parse(two.as_bytes()),
                &list(&[], &["shop.example"], false),
                &t
            ),
            None
        );
    }
}
