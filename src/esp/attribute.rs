//! Attribution of one message: read its header fields once, collect the evidence for each
//! provider, weigh claims against infrastructure, and decide platform and carrier.

use super::compile::EspRules;
use super::rule::Role;
use crate::mail::attribution::{Attribution, Confidence, Evidence, Layer, Signal};
use crate::mail::trace::{self as headers, domain_matches, Headers, Hop};
use crate::mail::trust::{trusted_hop, Trust};

fn truncate(s: &str) -> String {
    const MAX: usize = 240;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// ESPs whose tracker URLs the message carries but which its headers do not name as a sender
/// (at any confidence): "tracker links of Selligent, not sent through Selligent". Phishing
/// copies an ESP's HTML with its trackers; a complaint must not name the wrong company.
/// Vendors that are not ESPs (Safe Links, Google, fonts) are left out. Sorted, no duplicates.
pub fn not_sent_through<'a>(
    tracker_vendors: impl IntoIterator<Item = &'a str>,
    attributed: &[&str],
    rules: &EspRules,
) -> Vec<String> {
    let mut out: Vec<String> = tracker_vendors
        .into_iter()
        .filter(|v| !attributed.iter().any(|a| a.eq_ignore_ascii_case(v)))
        .filter_map(|v| {
            rules
                .rules
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(v))
                .map(|r| r.name.clone())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Evidence lines kept per provider and kind of signal (real messages show a few).
const EVIDENCE_PER_SIGNAL: usize = 16;

/// Attribute a message from its top-level header block and the vendors of the trackers the
/// core found in its body. One pass over the header fields; each kind of signal is one
/// `RegexSet` over all providers.
pub fn attribute(
    headers: &Headers,
    tracker_vendors: &[(String, String)],
    rules: &EspRules,
    trust: &Trust,
) -> Vec<Attribution> {
    if rules.rules.is_empty() {
        return Vec::new();
    }
    let (fields, names) = (&headers.fields, &headers.names);
    let (our_hop, verified) = trusted_hop(headers, trust);

    let mut ev: Vec<Vec<Evidence>> = vec![Vec::new(); rules.rules.len()];
    // At most EVIDENCE_PER_SIGNAL lines of one kind of signal for one provider: the list is
    // searched for duplicates at each line, and a forged header block of 100 000 fields
    // claimed by one provider made that quadratic (57 s), outside any time limit.
    let mut add = |rule: usize, signal: Signal, detail: String| {
        let list = &mut ev[rule];
        let mut same = 0;
        for e in list.iter() {
            if e.signal == signal {
                if e.detail == detail {
                    return;
                }
                same += 1;
            }
        }
        if same < EVIDENCE_PER_SIGNAL {
            list.push(Evidence { signal, detail });
        }
    };
    for (i, (f, name)) in fields.iter().zip(names).enumerate() {
        let line = || truncate(&format!("{}: {}", f.name, f.value));
        let mut claimed: Vec<usize> = rules.header_names.get(name).cloned().unwrap_or_default();
        claimed.extend(
            rules
                .header_prefixes
                .iter()
                .filter(|(p, _)| name.starts_with(p.as_str()))
                .map(|(_, r)| *r),
        );
        if let Some(vals) = rules.values.get(name) {
            let hits = rules.value_set.matches(f.value.as_bytes());
            claimed.extend(
                vals.iter()
                    .filter(|(_, p)| hits.contains(p))
                    .map(|(r, _)| *r),
            );
        }
        for r in claimed {
            add(r, Signal::Header, line());
        }
        let shaped = match name.as_str() {
            "feedback-id" | "x-feedback-id" => Some((&rules.feedback_id, Signal::FeedbackId)),
            "return-path" => Some((&rules.return_path, Signal::ReturnPath)),
            "message-id" => Some((&rules.message_id, Signal::MessageId)),
            "list-unsubscribe" => Some((&rules.list_unsubscribe, Signal::ListUnsubscribe)),
            _ => None,
        };
        if let Some((set, signal)) = shaped {
            for r in set.matches(&f.value) {
                add(r, signal, line());
            }
        }
        match name.as_str() {
            "received" => {
                let ours = our_hop.as_ref().is_some_and(|(oi, _)| *oi == i);
                let before_us = our_hop.as_ref().is_none_or(|(oi, _)| i > *oi);
                if !ours && !before_us {
                    continue; // written on our side after the hop (a local relay)
                }
                let hop = Hop::parse(&f.value);
                let mut hit = rules.received.matches(&hop.from);
                if !ours {
                    hit.extend(rules.received.matches(&hop.by));
                }
                let signal = if ours {
                    Signal::ReceivedByUs
                } else {
                    Signal::Received
                };
                for r in hit {
                    add(r, signal, line());
                }
            }
            "dkim-signature" => {
                let (d, s) = headers::dkim_tags(&f.value);
                let Some(d) = d else { continue };
                let mut own = false;
                for (domain, r) in &rules.dkim {
                    if domain_matches(&d, domain) {
                        own = true;
                        if verified.iter().any(|v| v == &d) {
                            add(
                                *r,
                                Signal::DkimVerified,
                                format!("DKIM d={d} (verified by Authentication-Results)"),
                            );
                        } else {
                            add(
                                *r,
                                Signal::Dkim,
                                format!("DKIM d={d} s={}", s.as_deref().unwrap_or("")),
                            );
                        }
                    }
                }
                if let (false, Some(s)) = (own, &s) {
                    for r in rules.selector.matches(s) {
                        add(
                            r,
                            Signal::Dkim,
                            format!("DKIM d={d} s={s} (selector shape)"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    // Verified domains of an ESP even without a matching DKIM-Signature line (the signature
    // header may have been removed on the way in).
    for d in &verified {
        for (domain, r) in &rules.dkim {
            if domain_matches(d, domain) {
                add(
                    *r,
                    Signal::DkimVerified,
                    format!("DKIM d={d} (verified by Authentication-Results)"),
                );
            }
        }
    }
    // One tracker example per provider adds weight.
    for (r, rule) in rules.rules.iter().enumerate() {
        if let Some((_, url)) = tracker_vendors
            .iter()
            .find(|(v, _)| v.eq_ignore_ascii_case(&rule.name))
        {
            add(r, Signal::Tracker, truncate(url));
        }
    }
    // Tracker links alone do not name the sender's ESP (anyone can paste one, as a person
    // forwarding a newsletter in the body of their own mail does); they only add weight.
    let found: Vec<(usize, Vec<Evidence>)> = ev
        .into_iter()
        .enumerate()
        .filter(|(_, e)| e.iter().any(|e| e.signal != Signal::Tracker))
        .collect();
    layer(found, rules)
}

/// How sure we are, from the kinds of evidence:
/// - high: infrastructure we can trust agrees with at least one claim; or, for a provider layered
///   with another one that has such infrastructure, at least two kinds of claims (Klaviyo's
///   headers and Return-Path on mail our MX received from SendGrid);
/// - medium: infrastructure alone, or three or more kinds of claims agreeing;
/// - low: anything less (a lone ESP header is what forged spam looks like).
fn confidence(ev: &[Evidence], other_has_infra: bool) -> Confidence {
    let infra = ev.iter().any(|e| e.signal.is_infrastructure());
    let mut kinds: Vec<Signal> = ev
        .iter()
        .map(|e| e.signal)
        .filter(|s| !s.is_infrastructure())
        .collect();
    kinds.sort();
    kinds.dedup();
    let claims = kinds.len();
    if infra && claims >= 1 || !infra && other_has_infra && claims >= 2 {
        Confidence::High
    } else if infra || claims >= 3 {
        Confidence::Medium
    } else {
        Confidence::Low
    }
}

/// Decide platform and carrier among the providers found.
fn layer(found: Vec<(usize, Vec<Evidence>)>, rules: &EspRules) -> Vec<Attribution> {
    let infra: Vec<bool> = found
        .iter()
        .map(|(_, ev)| ev.iter().any(|e| e.signal.is_infrastructure()))
        .collect();
    let mut scored: Vec<(usize, Vec<Evidence>, Confidence, bool)> = found
        .into_iter()
        .enumerate()
        .map(|(k, (ri, ev))| {
            let other_has_infra = infra.iter().enumerate().any(|(j, &i)| i && j != k);
            let conf = confidence(&ev, other_has_infra);
            let hop = ev.iter().any(|e| e.signal == Signal::ReceivedByUs);
            (ri, ev, conf, hop)
        })
        .collect();
    // Best first: the hop we recorded, then confidence, then the amount of evidence.
    scored.sort_by(|a, b| {
        b.3.cmp(&a.3)
            .then(b.2.cmp(&a.2))
            .then(b.1.len().cmp(&a.1.len()))
            .then(a.0.cmp(&b.0))
    });
    let carrier_idx = scored
        .iter()
        .position(|(ri, ..)| rules.rules[*ri].role != Role::Platform);
    scored
        .into_iter()
        .enumerate()
        .map(|(i, (ri, evidence, confidence, _))| {
            let rule = &rules.rules[ri];
            // The best non-platform provider carries; a second pure carrier is still a carrier
            // (e.g. two relays), anything else found alongside it is a platform.
            let layer = if Some(i) == carrier_idx || rule.role == Role::Carrier {
                Layer::Carrier
            } else {
                Layer::Platform
            };
            let facts = rules.providers.get(&rule.name);
            Attribution {
                name: rule.name.clone(),
                layer,
                confidence,
                jurisdiction: facts
                    .map(|f| f.jurisdiction.clone())
                    .unwrap_or_else(|| "unknown".into()),
                legal_entity: facts.map(|f| f.legal_entity.clone()),
                parent: facts.and_then(|f| f.parent.clone()),
                us_exposure: facts.and_then(|f| f.us_exposure),
                evidence,
            }
        })
        .collect()
}

/// Short form for the `X-Trackless` header: `Klaviyo/SendGrid` (platform/carrier); a `?`
/// marks a low-confidence attribution.
pub fn summary(attrs: &[Attribution]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for layer in [Layer::Platform, Layer::Carrier] {
        for a in attrs.iter().filter(|a| a.layer == layer) {
            let mut n = a.name.replace([' ', ';', ','], "-");
            if a.confidence == Confidence::Low {
                n.push('?');
            }
            names.push(n);
        }
    }
    if names.is_empty() {
        return Vec::new();
    }
    vec![names.join("/")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::Rules;

    const SES_CUSTOMER_DKIM: &str = "Authentication-Results: mx.example.net; dkim=pass header.d=amazonses.com\r\n\
Received: from a8-12.smtp-out.amazonses.com (a8-12.smtp-out.amazonses.com [54.240.8.12]) by mx.example.net (Postfix) with ESMTPS id 1\r\n\
Authentication-Results: evil.example; dkim=pass header.d=sendgrid.info\r\n\
X-SES-Outgoing: 2026.11.02-54.240.8.12\r\n\
Feedback-ID: 1.eu-west-1.abc=:AmazonSES\r\n\
DKIM-Signature: v=1; d=amazonses.com; s=abcdefghijklmnopqrstuvwxyz123456; b=x\r\n\
DKIM-Signature: v=1; d=sendgrid.info; s=smtpapi; b=y\r\n\
From: a@shop.example\r\n\r\n";

    fn attr(block: &str, trust: &Trust) -> Vec<Attribution> {
        attribute(
            &Headers::parse(block.as_bytes()),
            &[],
            &Rules::embedded().esp,
            trust,
        )
    }

    #[test]
    fn trusted_authentication_results_verify_dkim() {
        let a = attr(SES_CUSTOMER_DKIM, &Trust::default());
        let ses = a.iter().find(|a| a.name == "Amazon SES").expect("SES");
        assert_eq!(ses.confidence, Confidence::High);
        assert!(ses
            .evidence
            .iter()
            .any(|e| e.signal == Signal::DkimVerified));
        assert!(ses
            .evidence
            .iter()
            .any(|e| e.signal == Signal::ReceivedByUs));
        // The A-R below our hop (written by someone else) does not verify sendgrid.info.
        let sg = a
            .iter()
            .find(|a| a.name == "SendGrid")
            .expect("SendGrid claim");
        assert!(sg.evidence.iter().all(|e| e.signal != Signal::DkimVerified));
        assert_eq!(sg.confidence, Confidence::Low);
    }

    #[test]
    fn configured_authserv_id_replaces_the_default() {
        let trust = Trust {
            authserv_ids: vec!["other.example.net".into()],
            own_hosts: Vec::new(),
        };
        let a = attr(SES_CUSTOMER_DKIM, &trust);
        let ses = a.iter().find(|a| a.name == "Amazon SES").expect("SES");
        assert!(ses
            .evidence
            .iter()
            .all(|e| e.signal != Signal::DkimVerified));
        // Still high: the hop our MX recorded is SES infrastructure.
        assert_eq!(ses.confidence, Confidence::High);
    }

    #[test]
    fn evidence_of_one_kind_is_bounded() {
        // 5 000 distinct fields claimed by SendGrid (a forged block): SendGrid still named,
        // with EVIDENCE_PER_SIGNAL lines of that kind and the other kinds kept.
        let mut block = String::from(
            "Received: from o1.ptr.sendgrid.net (o1.ptr.sendgrid.net [149.72.1.1]) by mx.example.net with ESMTPS id 1\r\n",
        );
        for i in 0..5_000 {
            block.push_str(&format!("X-SG-EID: id{i}\r\n"));
        }
        block.push_str("\r\n");
        let a = attr(&block, &Trust::default());
        let sg = a.iter().find(|a| a.name == "SendGrid").expect("SendGrid");
        let mut kinds: Vec<Signal> = sg.evidence.iter().map(|e| e.signal).collect();
        kinds.sort();
        kinds.dedup();
        assert!(kinds.len() >= 2, "{:?}", sg.evidence);
        for k in kinds {
            let n = sg.evidence.iter().filter(|e| e.signal == k).count();
            assert!(n <= EVIDENCE_PER_SIGNAL, "{k:?}: {n}");
        }
        assert!(sg.evidence.len() > EVIDENCE_PER_SIGNAL / 2);
    }

    #[test]
    fn own_hosts_are_skipped_to_find_the_handover_hop() {
        let block = "Received: from filter.example.net (filter.example.net [10.0.0.5]) by mx2.example.net with LMTP id 2\r\n\
Received: from o1.ptr.sendgrid.net (o1.ptr.sendgrid.net [149.72.1.1]) by mx.example.net with ESMTPS id 1\r\n\
X-SG-EID: abc\r\n\r\n";
        let none = attr(block, &Trust::default());
        assert_eq!(
            none[0].confidence,
            Confidence::Low,
            "the filter hop is taken as ours by default"
        );
        let trust = Trust {
            authserv_ids: Vec::new(),
            own_hosts: vec!["filter.example.net".into()],
        };
        let a = attr(block, &trust);
        assert_eq!(a[0].name, "SendGrid");
        assert_eq!(a[0].confidence, Confidence::High);
    }

    #[test]
    fn summary_names_platform_then_carrier_and_flags_low_confidence() {
        let mk = |name: &str, layer, confidence| Attribution {
            name: name.into(),
            layer,
            confidence,
            jurisdiction: "US".into(),
            legal_entity: None,
            parent: None,
            us_exposure: None,
            evidence: Vec::new(),
        };
        let s = summary(&[
            mk("SendGrid", Layer::Carrier, Confidence::High),
            mk("Klaviyo", Layer::Platform, Confidence::Low),
        ]);
        assert_eq!(s, vec!["Klaviyo?/SendGrid".to_string()]);
    }
}
