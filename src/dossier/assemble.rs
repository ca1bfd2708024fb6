//! A [`Dossier`] from what the log holds of one sender: the messages as
//! [`crate::log::dossier::messages`] reads them (evidence and remote rows), the operators of
//! remote hosts and the providers' legal facts. A pure function: the same input gives the same
//! dossier (no clock, no I/O, nothing iterated in hash order).
//!
//! How each part is filled:
//! - the sender is the address or domain asked for, its domain, and as organisation the display
//!   names of the From fields in the header blocks the log kept (`--keep-headers`; at most
//!   three, in message order, each cut at 100 characters): the sender's own words, said so on
//!   the page; none without kept headers;
//! - messages in the order given (the log reads them oldest first), each dated by its Date
//!   header, else by when trackless processed it; the period is the first and last of those;
//! - each tracker URL with its per-recipient token located by [`token_range`];
//! - each remote host with its operator, country and US exposure from `rules/operators.toml`
//!   (by host suffix, never DNS; unknown stays unknown);
//! - the ESPs once per name and layer over all messages, most messages first: the highest
//!   confidence they were named with, the country and US exposure the log recorded, the legal
//!   entity and parent from `rules/providers.toml`;
//! - the ESP evidence lines of a message as logged (`signal: detail`), prefixed with the
//!   provider's name when the message names more than one.

use super::model::{Dossier, EspEntry, MessageEntry, RemoteEntry, Sender, TrackerEntry};
use crate::core::operators::Operators;
use crate::log::dossier::LoggedMessage;
use std::collections::{BTreeMap, BTreeSet};

/// A provider's legal facts: legal entity, parent, parent's jurisdiction
/// (`Rules::provider_facts`).
pub type ProviderFacts = (String, Option<String>, Option<String>);

/// The dossier of `who` (an address or a domain) from its logged messages.
pub fn assemble(
    who: &str,
    messages: &[LoggedMessage],
    operators: &Operators,
    provider_facts: &dyn Fn(&str) -> Option<ProviderFacts>,
    generated_from: &str,
) -> Dossier {
    let address = who.trim().to_ascii_lowercase();
    let domain = address
        .rsplit_once('@')
        .map_or(address.as_str(), |(_, d)| d)
        .to_string();
    let entries: Vec<MessageEntry> = messages.iter().map(|m| message(m, operators)).collect();
    let period = entries
        .iter()
        .map(|m| m.date.as_str())
        .min()
        .zip(entries.iter().map(|m| m.date.as_str()).max())
        .map(|(a, b)| (a.to_string(), b.to_string()));
    Dossier {
        sender: Sender {
            address,
            domain,
            organisation: organisation(&entries),
        },
        period,
        esps: esps(messages, provider_facts),
        keep_headers: entries.iter().any(|m| m.headers.is_some()),
        messages: entries,
        generated_from: generated_from.to_string(),
    }
}

/// The display names of the From fields of the kept header blocks: distinct, at most three,
/// in message order, joined by " / ".
fn organisation(entries: &[MessageEntry]) -> Option<String> {
    let mut names: Vec<String> = Vec::new();
    for h in entries.iter().filter_map(|m| m.headers.as_deref()) {
        let parsed = mail_parser::MessageParser::new().parse_headers(h.as_bytes());
        let name = parsed
            .as_ref()
            .and_then(|p| p.from())
            .and_then(|a| a.first())
            .and_then(|a| a.name())
            .map(|n| n.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|n| !n.is_empty());
        if let Some(n) = name {
            let n: String = n.chars().take(100).collect();
            if !names.contains(&n) && names.len() < 3 {
                names.push(n);
            }
        }
    }
    (!names.is_empty()).then(|| names.join(" / "))
}

fn message(m: &LoggedMessage, operators: &Operators) -> MessageEntry {
    let e = &m.evidence;
    let several = e.esp.len() > 1;
    let esp_evidence = e
        .esp
        .iter()
        .flat_map(|p| {
            p.evidence.iter().map(move |line| {
                if several {
                    format!("{}: {line}", p.name)
                } else {
                    line.clone()
                }
            })
        })
        .collect();
    MessageEntry {
        date: e.date.clone().unwrap_or_else(|| e.processed.clone()),
        subject: e.subject.clone(),
        message_id: e.message_id.clone(),
        message_id_sha256: e.message_id_sha256.clone(),
        original_sha256: e.original_sha256.clone(),
        // Set by whoever copies the file beside the page (`report dossier`).
        original_file: None,
        trackers: e
            .trackers
            .iter()
            .map(|t| TrackerEntry {
                kind: t.kind.clone(),
                token: token_range(&t.url),
                url: t.url.clone(),
                rule: t.rule.clone(),
                vendor: t.vendor.clone(),
                action: t.action.clone(),
            })
            .collect(),
        remote: m
            .remote
            .iter()
            .map(|r| {
                let op = operators.of(&r.host.to_ascii_lowercase());
                RemoteEntry {
                    host: r.host.clone(),
                    kind: r.kind.clone(),
                    removed: r.removed,
                    operator: op.map(|o| o.name.clone()),
                    country: op.and_then(|o| o.jurisdiction.clone()),
                    us_exposure: op.and_then(|o| o.us_exposure),
                    token: r.token,
                    count: usize::try_from(r.count).unwrap_or(usize::MAX),
                }
            })
            .collect(),
        esp_evidence,
        headers: e.headers.clone(),
    }
}

fn known(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
        .map(str::to_string)
}

fn rank(confidence: &str) -> u8 {
    match confidence {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// The providers over all messages, one entry per name and layer.
fn esps(
    messages: &[LoggedMessage],
    provider_facts: &dyn Fn(&str) -> Option<ProviderFacts>,
) -> Vec<EspEntry> {
    struct Acc {
        confidence: String,
        jurisdiction: Option<String>,
        us_exposure: Option<bool>,
        messages: BTreeSet<usize>,
    }
    let mut by: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for (i, m) in messages.iter().enumerate() {
        for e in &m.evidence.esp {
            let acc = by
                .entry((e.name.clone(), e.layer.clone()))
                .or_insert_with(|| Acc {
                    confidence: e.confidence.clone(),
                    jurisdiction: None,
                    us_exposure: None,
                    messages: BTreeSet::new(),
                });
            if rank(&e.confidence) > rank(&acc.confidence) {
                acc.confidence = e.confidence.clone();
            }
            if acc.jurisdiction.is_none() {
                acc.jurisdiction = known(e.jurisdiction.as_deref());
            }
            if acc.us_exposure.is_none() {
                acc.us_exposure = e.us_exposure;
            }
            acc.messages.insert(i);
        }
    }
    let mut out: Vec<EspEntry> = by
        .into_iter()
        .map(|((name, layer), a)| {
            let facts = provider_facts(&name);
            let (legal_entity, parent, parent_jurisdiction) = match &facts {
                Some((entity, parent, pj)) => (
                    known(Some(entity)),
                    known(parent.as_deref()),
                    known(pj.as_deref()),
                ),
                None => (None, None, None),
            };
            EspEntry {
                name,
                layer,
                confidence: a.confidence,
                legal_entity,
                jurisdiction: a.jurisdiction,
                parent,
                parent_jurisdiction,
                us_exposure: a.us_exposure,
                messages: a.messages.len(),
            }
        })
        .collect();
    // Most messages first; then platform before carrier, then by name.
    out.sort_by(|a, b| {
        b.messages
            .cmp(&a.messages)
            .then_with(|| b.layer.cmp(&a.layer))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// The byte range of the per-recipient token in a tracker URL, if it has one: the part the
/// filter judged by (`html::pixel::per_recipient_token`), located. The rule is
/// [`crate::mail::token`]'s.
pub use crate::mail::token::token_range;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::dossier::RemoteRow;
    use crate::log::evidence::{EspEvidence, MessageEvidence, TrackerEvidence};

    fn logged(date: &str, esp: Vec<EspEvidence>, remote: Vec<RemoteRow>) -> LoggedMessage {
        LoggedMessage {
            id: 1,
            tracked: true,
            evidence: MessageEvidence {
                processed: "2026-12-01 10:00 UTC".into(),
                date: Some(date.into()),
                from: Some("news@shop.example".into()),
                envelope_sender: None,
                message_id: None,
                message_id_sha256: Some("ab".into()),
                subject: None,
                mode: "filter".into(),
                original_sha256: None,
                esp,
                trackers_not_sent_through: Vec::new(),
                trackers: vec![TrackerEvidence {
                    kind: "pixel".into(),
                    action: "removed".into(),
                    host: "u1.ct.sendgrid.net".into(),
                    vendor: Some("SendGrid".into()),
                    rule: Some("sendgrid.open".into()),
                    url: "https://u1.ct.sendgrid.net/wf/open?upn=a1b2c3d4e5f6a7b8c9d0".into(),
                }],
                headers: None,
            },
            remote,
        }
    }

    fn esp(name: &str, layer: &str, confidence: &str) -> EspEvidence {
        EspEvidence {
            name: name.into(),
            layer: layer.into(),
            confidence: confidence.into(),
            jurisdiction: Some("US".into()),
            us_exposure: Some(true),
            evidence: vec!["dkim: d=sendgrid.net".into()],
        }
    }

    #[test]
    fn assembles_sender_period_esps_and_operators() {
        let remote = vec![
            RemoteRow {
                host: "u1.ct.sendgrid.net".into(),
                kind: "image".into(),
                removed: true,
                token: true,
                count: 1,
            },
            RemoteRow {
                host: "cdn.shop.example".into(),
                kind: "image".into(),
                removed: false,
                token: false,
                count: 4,
            },
        ];
        let messages = vec![
            logged(
                "2026-03-01 09:00 UTC",
                vec![esp("SendGrid", "carrier", "medium")],
                remote,
            ),
            logged(
                "2026-04-02 09:00 UTC",
                vec![
                    esp("SendGrid", "carrier", "high"),
                    esp("Klaviyo", "platform", "low"),
                ],
                Vec::new(),
            ),
        ];
        let facts = |name: &str| {
            (name == "SendGrid").then(|| ("Twilio Inc.".to_string(), None, Some("unknown".into())))
        };
        let d = assemble(
            " News@Shop.example ",
            &messages,
            Operators::embedded(),
            &facts,
            "trackless test",
        );
        assert_eq!(d.sender.address, "news@shop.example");
        assert_eq!(d.sender.domain, "shop.example");
        assert_eq!(
            d.period,
            Some((
                "2026-03-01 09:00 UTC".to_string(),
                "2026-04-02 09:00 UTC".to_string()
            ))
        );
        assert!(!d.keep_headers);
        assert_eq!(d.esps.len(), 2);
        let sg = &d.esps[0];
        assert_eq!(
            (sg.name.as_str(), sg.confidence.as_str(), sg.messages),
            ("SendGrid", "high", 2)
        );
        assert_eq!(sg.legal_entity.as_deref(), Some("Twilio Inc."));
        assert_eq!(sg.parent_jurisdiction, None, "unknown reads as not known");
        assert_eq!(d.esps[1].legal_entity, None);
        let m = &d.messages[0];
        assert_eq!(m.remote[0].operator.as_deref(), Some("SendGrid"));
        assert_eq!(m.remote[0].country.as_deref(), Some("US"));
        assert_eq!(m.remote[1].operator, None);
        assert_eq!(m.esp_evidence, ["dkim: d=sendgrid.net"]);
        assert_eq!(
            d.messages[1].esp_evidence,
            [
                "SendGrid: dkim: d=sendgrid.net",
                "Klaviyo: dkim: d=sendgrid.net"
            ]
        );
        let t = &m.trackers[0];
        let (s, e) = t.token.expect("token");
        assert_eq!(&t.url[s..e], "a1b2c3d4e5f6a7b8c9d0");
    }

    #[test]
    fn organisation_is_the_from_display_name_of_the_kept_headers() {
        let ops = Operators::embedded();
        let facts = |_: &str| None;
        let with = |from: Option<&str>| {
            let mut m = logged("2026-11-02", Vec::new(), Vec::new());
            m.evidence.headers = from.map(|f| format!("From: {f}\r\nSubject: x\r\n\r\n"));
            m
        };
        let org = |msgs: &[LoggedMessage]| {
            assemble("news@shop.example", msgs, ops, &facts, "test")
                .sender
                .organisation
        };
        assert_eq!(org(&[with(None)]), None, "no kept headers: not known");
        assert_eq!(
            org(&[with(Some("news@shop.example"))]),
            None,
            "no display name"
        );
        assert_eq!(
            org(&[with(Some("\"Shop   Example\" <news@shop.example>"))]),
            Some("Shop Example".into())
        );
        let many: Vec<LoggedMessage> = [
            "A <a@x.example>",
            "B <b@x.example>",
            "A <a@x.example>",
            "C <c@x.example>",
            "D <d@x.example>",
        ]
        .iter()
        .map(|f| with(Some(f)))
        .collect();
        assert_eq!(
            org(&many),
            Some("A / B / C".into()),
            "distinct, in order, three at most"
        );
        let long = format!("{} <a@x.example>", "N".repeat(300));
        assert_eq!(org(&[with(Some(&long))]).map(|o| o.len()), Some(100));
    }
}
