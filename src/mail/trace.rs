//! Reading the trace and authentication headers ESP attribution needs: Received hops,
//! DKIM-Signature tags, Authentication-Results. Headers only, no lookups.

/// One header field: name as written and unfolded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// Split a raw header block into fields (unfolded, whitespace runs collapsed).
pub fn fields(block: &[u8]) -> Vec<Field> {
    crate::mail::header::fields(block)
        .into_iter()
        .filter_map(|(a, b)| {
            let raw = String::from_utf8_lossy(&block[a..b]);
            let (name, value) = raw.split_once(':')?;
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            Some(Field {
                name: name.trim().to_string(),
                value,
            })
        })
        .collect()
}

/// A header block split into fields once, for everything that reads it (allow-list, trust,
/// attribution): the fields in order and their names lowercased.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pub fields: Vec<Field>,
    /// `fields[i].name`, lowercased.
    pub names: Vec<String>,
}

impl Headers {
    pub fn parse(block: &[u8]) -> Headers {
        let fields = fields(block);
        let names = fields.iter().map(|f| f.name.to_ascii_lowercase()).collect();
        Headers { fields, names }
    }
}

/// A Received hop: the `from` clause (HELO, rDNS, IP) and the `by` host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hop {
    pub from: String,
    pub by: String,
}

impl Hop {
    pub fn parse(value: &str) -> Hop {
        let lower = value.to_ascii_lowercase();
        let body = lower.split(';').next().unwrap_or("");
        let from = match body.find("from ") {
            Some(i) if i == 0 || body[..i].ends_with(' ') => {
                let rest = &body[i + 5..];
                let end = rest.find(" by ").unwrap_or(rest.len());
                rest[..end].trim().to_string()
            }
            _ => String::new(),
        };
        let by = body
            .find("by ")
            .filter(|&i| i == 0 || body[..i].ends_with(' '))
            .map(|i| {
                body[i + 3..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches(|c| c == '(' || c == ')')
                    .to_string()
            })
            .unwrap_or_default();
        Hop { from, by }
    }

    /// Did the hop come from this machine (a local re-injection)?
    pub fn is_local(&self) -> bool {
        self.from.is_empty()
            || self.from.contains("localhost")
            || self.from.contains("127.0.0.1")
            || self.from.contains("[::1]")
            || self.from.contains("ipv6:::1")
    }
}

/// `d=` and `s=` of a DKIM-Signature.
pub fn dkim_tags(value: &str) -> (Option<String>, Option<String>) {
    let mut d = None;
    let mut s = None;
    for tag in value.split(';') {
        let Some((k, v)) = tag.split_once('=') else {
            continue;
        };
        let v: String = v.split_whitespace().collect();
        match k.trim() {
            "d" => d = Some(v.to_ascii_lowercase()),
            "s" => s = Some(v),
            _ => {}
        }
    }
    (d, s)
}

/// Authentication-Results: the authserv-id and the domains with `dkim=pass`.
pub fn auth_results(value: &str) -> (String, Vec<String>) {
    let mut parts = value.split(';');
    let authserv = parts
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut pass = Vec::new();
    for res in parts {
        let res = res.trim().to_ascii_lowercase();
        if !res.starts_with("dkim=pass") {
            continue;
        }
        for tok in res.split_whitespace() {
            if let Some(d) = tok.strip_prefix("header.d=") {
                pass.push(d.trim_matches(|c| c == '"' || c == ';').to_string());
            } else if let Some(i) = tok.strip_prefix("header.i=") {
                if let Some((_, d)) = i.rsplit_once('@') {
                    pass.push(d.trim_matches(|c| c == '"' || c == ';').to_string());
                }
            }
        }
    }
    (authserv, pass)
}

/// Is `domain` equal to or a sub-domain of `suffix`?
pub fn domain_matches(domain: &str, suffix: &str) -> bool {
    let domain = domain.trim_end_matches('.');
    domain
        .strip_suffix(suffix)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_hops() {
        let h = Hop::parse("from o73.email.shop.example (o73.email.shop.example [149.72.1.2]) by mx.example.net (Postfix) with ESMTPS id 4Xyz; Mon, 2 Nov 2026 10:00:00 +0000");
        assert_eq!(
            h.from,
            "o73.email.shop.example (o73.email.shop.example [149.72.1.2])"
        );
        assert_eq!(h.by, "mx.example.net");
        let h =
            Hop::parse("by filterdrecv-7bc86b958d-abc with SMTP id filterdrecv-1; Mon, 2 Nov 2026");
        assert_eq!(h.from, "");
        assert_eq!(h.by, "filterdrecv-7bc86b958d-abc");
        assert!(Hop::parse("from localhost (localhost [127.0.0.1]) by mx.example.net").is_local());
    }

    #[test]
    fn dkim_and_auth_results() {
        assert_eq!(
            dkim_tags("v=1; a=rsa-sha256; c=relaxed/relaxed; d=SendGrid.info; s=smtpapi; h=from:to; bh=x; b=y"),
            (Some("sendgrid.info".into()), Some("smtpapi".into()))
        );
        let (id, pass) = auth_results("mx.example.net; dkim=pass (2048-bit key) header.d=shop.example header.i=@shop.example header.b=abc; dkim=pass header.d=sendgrid.info; spf=pass smtp.mailfrom=x; dkim=fail header.d=evil.example");
        assert_eq!(id, "mx.example.net");
        assert_eq!(pass, ["shop.example", "shop.example", "sendgrid.info"]);
        assert!(domain_matches("em123.shop.sendgrid.net", "sendgrid.net"));
        assert!(!domain_matches("notsendgrid.net", "sendgrid.net"));
    }
}
