//! Precision over the corpus, judged on the output itself rather than on the findings: for
//! every message, the images of its HTML parts before and after, and the links.
//!
//! - every image that the golden file does not list as removed (pixel or spacer) is still
//!   there after the rewrite (visible content is never removed), and where the golden file
//!   counts its visible images (`visible_images`) the count matches before and after;
//! - every listed beacon is gone from the output;
//! - every link the golden file says is decodable (`unwrapped`) appears as its destination and
//!   no longer as the wrapper; every link it says is opaque is still there as it was;
//! - where the golden file says `not_sent_through`, inspect names exactly those ESPs.
//!
//! The totals (beacons, spacers, visible images kept and removed, links unwrapped / opaque /
//! left wrapped) are printed for the issue notes.

mod common;

use lol_html::{element, HtmlRewriter, Settings};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use trackless::{neutralise, Policy};

fn corpus() -> Vec<PathBuf> {
    common::corpus_files()
}

/// Image sources and link targets of the text/html parts, entity-decoded by
/// lol_html's attribute reader (only `&amp;` matters in these URLs).
#[derive(Default, Debug)]
struct Html {
    images: Vec<String>,
    links: Vec<String>,
}

fn html_of(raw: &[u8]) -> Html {
    let mut out = Html::default();
    if let Some(msg) = MessageParser::new().parse(raw) {
        collect(&msg, &mut out, 0);
    }
    out
}

/// The HTML parts of a message and of the messages attached to it (forwards).
fn collect(msg: &mail_parser::Message<'_>, out: &mut Html, depth: usize) {
    for part in &msg.parts {
        if let (Some(inner), true) = (part.message(), depth < 4) {
            collect(inner, out, depth + 1);
            continue;
        }
        let is_html = part
            .content_type()
            .is_some_and(|ct| ct.ctype() == "text" && ct.subtype() == Some("html"));
        let Some(text) = is_html.then(|| part.text_contents()).flatten() else {
            continue;
        };
        let found = RefCell::new(Html::default());
        let settings = Settings {
            element_content_handlers: vec![
                element!("img[src], input[src]", |el| {
                    let src = el.get_attribute("src").unwrap_or_default();
                    found
                        .borrow_mut()
                        .images
                        .push(src.trim().replace("&amp;", "&"));
                    Ok(())
                }),
                element!("a[href], area[href]", |el| {
                    let href = el.get_attribute("href").unwrap_or_default();
                    found
                        .borrow_mut()
                        .links
                        .push(href.trim().replace("&amp;", "&"));
                    Ok(())
                }),
            ],
            ..Settings::new()
        };
        let mut rw = HtmlRewriter::new(settings, |_: &[u8]| {});
        rw.write(text.as_bytes()).expect("html");
        rw.end().expect("html");
        let found = found.into_inner();
        out.images.extend(found.images);
        out.links.extend(found.links);
    }
}

fn remote(url: &str) -> bool {
    let l = url.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://") || l.starts_with("//")
}

fn count(list: &[String], url: &str) -> usize {
    list.iter().filter(|u| *u == url).count()
}

#[test]
fn corpus_precision_on_the_output() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for eml in corpus() {
        let name = eml
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let raw = std::fs::read(&eml).expect("read");
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(eml.with_extension("json")).expect("json"),
        )
        .expect("json");
        let out = neutralise(&raw, &policy);
        let skipped_whole = out
            .skips()
            .any(|f| f.reason.is_some_and(|r| r.is_message_wide()));
        if skipped_whole {
            continue;
        }
        let before = html_of(&raw);
        let after = html_of(&out.bytes);

        // Images the golden file says go: beacons (pixel) and spacers, with multiplicity.
        let mut removed: BTreeMap<String, (usize, &str)> = BTreeMap::new();
        for f in want["expect"]["findings"].as_array().expect("findings") {
            let kind = f["kind"].as_str().unwrap_or("");
            if kind != "pixel" && kind != "spacer" {
                continue;
            }
            let url = f["url"].as_str().expect("url").to_string();
            let e = removed.entry(url).or_insert((0, kind));
            e.0 += 1;
        }
        for (url, (_, kind)) in &removed {
            if count(&after.images, url) > 0 {
                failures.push(format!("{name}: {kind} still in the output: {url}"));
            }
            let n = count(&before.images, url);
            *totals
                .entry(if *kind == "pixel" {
                    "beacons removed (img)"
                } else {
                    "spacers removed"
                })
                .or_default() += n;
        }
        // Every other remote image stays, as many times as it was there.
        let mut seen = std::collections::BTreeSet::new();
        let mut kept = 0;
        for src in before.images.iter().filter(|s| remote(s)) {
            if removed.contains_key(src) || !seen.insert(src.clone()) {
                continue;
            }
            let (b, a) = (count(&before.images, src), count(&after.images, src));
            kept += b;
            if a != b {
                failures.push(format!("{name}: image {src}: {b} before, {a} after"));
                *totals.entry("visible images removed").or_default() += b - a.min(b);
            }
        }
        *totals.entry("visible images kept").or_default() += kept;
        if let Some(v) = want["visible_images"].as_u64() {
            if kept as u64 != v {
                failures.push(format!(
                    "{name}: {kept} visible images, golden file says {v}"
                ));
            }
        }

        // Links as the golden file classifies them.
        for l in want["links"].as_array().into_iter().flatten() {
            let url = l["url"].as_str().expect("url");
            match l["expect"].as_str().expect("expect") {
                "unwrapped" => {
                    *totals.entry("links unwrapped").or_default() += 1;
                    if count(&after.links, url) > 0 {
                        failures.push(format!("{name}: still wrapped: {url}"));
                        *totals.entry("decodable links left wrapped").or_default() += 1;
                    }
                    if let Some(to) = l["to"].as_str() {
                        if count(&after.links, to) == 0 {
                            failures.push(format!("{name}: destination missing: {to}"));
                        }
                    }
                }
                "kept-opaque" | "marked" => {
                    *totals.entry("links opaque (kept)").or_default() += 1;
                    if count(&after.links, url) == 0 {
                        failures.push(format!("{name}: opaque link changed: {url}"));
                    }
                }
                _ => {}
            }
        }

        // Attribution: ESPs whose trackers were copied, not used to send.
        if let Some(names) = want["not_sent_through"].as_array() {
            let want: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            let rep = trackless::cli::inspect::report(&eml, &raw, &out, &policy);
            if rep.trackers_not_sent_through != want {
                failures.push(format!(
                    "{name}: not sent through {:?}, expected {want:?}",
                    rep.trackers_not_sent_through
                ));
            }
        }
    }
    eprintln!("precision over the corpus: {totals:#?}");
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(totals.get("spacers removed").copied().unwrap_or(0) > 0);
    assert!(totals.get("visible images kept").copied().unwrap_or(0) > 100);
}

/// The generated newsletters that benchmarks use as the hard case are rewritten the way a
/// real SES campaign is: pixel and remote font gone, every product image kept, every link
/// unwrapped to its destination without its `utm_*` parameters, the ESP named.
#[test]
fn generated_newsletters_are_rewritten_like_real_ones() {
    use common::newsletter::{newsletter, Spec};
    let policy = Policy::default();
    for seed in 0..12 {
        let spec = Spec::varied(seed);
        let raw = newsletter(spec);
        let ratio = raw.len() as f64 / spec.size as f64;
        assert!(
            (0.8..1.25).contains(&ratio),
            "{spec:?}: {} bytes",
            raw.len()
        );
        let out = neutralise(&raw, &policy);
        assert!(out.changed, "{spec:?} not rewritten");
        assert_eq!(out.skips().count(), 0, "{spec:?}: {:?}", out.findings);
        assert!(out.esp.iter().any(|a| a.name == "Amazon SES"), "{spec:?}");
        let (before, after) = (html_of(&raw), html_of(&out.bytes));
        let products = |h: &Html| {
            h.images
                .iter()
                .filter(|i| i.contains("/img/produit-"))
                .count()
        };
        assert!(products(&before) > 0);
        assert_eq!(products(&before), products(&after), "{spec:?}: images");
        assert_eq!(after.images.len(), products(&after), "{spec:?}: pixel left");
        assert_eq!(before.links.len(), after.links.len(), "{spec:?}");
        assert!(before.links.len() > spec.links, "{spec:?}");
        for l in &after.links {
            assert!(
                l.starts_with("https://www.maison-exemple.fr/") && !l.contains("utm_"),
                "{spec:?}: {l}"
            );
        }
        let text = String::from_utf8_lossy(&out.bytes);
        assert!(
            !text.contains("fonts.googleapis.com"),
            "{spec:?}: font left"
        );
    }
}
