//! Golden tests over `corpus/`: every `NAME.eml` is neutralised and its findings compared with
//! `NAME.json`; the output must re-parse with the same structure, keep every byte outside the
//! rewritten parts, and be a fixed point (a second run changes nothing). The inventory of
//! remote hosts (`inspect --json`'s `remote`) is compared with `expect.remote`, exactly.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trackless::{neutralise, Finding, Kind, Policy, Remote};

fn corpus() -> Vec<PathBuf> {
    common::corpus_files()
}

fn expected(eml: &Path) -> Value {
    let json = eml.with_extension("json");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", json.display()))
}

/// (kind, action or skip reason, url) with a count, for order-insensitive comparison.
type Bag = BTreeMap<(String, String, String), usize>;

fn actual_bag(findings: &[Finding]) -> Bag {
    let mut bag = Bag::new();
    for f in findings {
        let key = match f.kind {
            Kind::Pixel | Kind::Spacer | Kind::Font => (
                f.kind.as_str().to_string(),
                f.action.as_str().to_string(),
                f.url.clone().unwrap_or_default(),
            ),
            Kind::Skip => (
                "skip".to_string(),
                f.reason.map(|r| r.as_str()).unwrap_or_default().to_string(),
                String::new(),
            ),
            Kind::Link => continue,
        };
        *bag.entry(key).or_default() += 1;
    }
    bag
}

fn expected_bag(v: &Value) -> Bag {
    let mut bag = Bag::new();
    for f in v["expect"]["findings"].as_array().expect("expect.findings") {
        let kind = f["kind"].as_str().expect("kind").to_string();
        let key = if kind == "skip" {
            (
                kind,
                f["reason"].as_str().expect("reason").to_string(),
                String::new(),
            )
        } else {
            (
                kind,
                f["action"].as_str().expect("action").to_string(),
                f["url"].as_str().expect("url").to_string(),
            )
        };
        *bag.entry(key).or_default() += 1;
    }
    bag
}

#[test]
fn corpus_matches_golden_files() {
    let files = corpus();
    assert!(files.len() >= 30, "corpus has {} messages", files.len());
    let policy = Policy::default();
    let mut failures = Vec::new();
    for eml in &files {
        let name = eml
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let raw = std::fs::read(eml).expect("read");
        let want = expected(eml);
        let out = neutralise(&raw, &policy);
        if let Err(e) = common::invariants::check_outcome(&raw, &out, &policy) {
            failures.push(format!("{name}: {e}"));
        }
        let got = actual_bag(&out.findings);
        let exp = expected_bag(&want);
        if got != exp {
            let missing: Vec<_> = exp.iter().filter(|(k, n)| got.get(*k) != Some(n)).collect();
            let extra: Vec<_> = got.iter().filter(|(k, n)| exp.get(*k) != Some(n)).collect();
            failures.push(format!(
                "{name}: missing {missing:?}\n    unexpected {extra:?}"
            ));
        }
        let want_changed = want["expect"]["changed"].as_bool().expect("expect.changed");
        if out.changed != want_changed {
            failures.push(format!(
                "{name}: changed={} expected {want_changed}",
                out.changed
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_line_endings_are_kept() {
    let policy = Policy::default();
    for eml in corpus() {
        let raw = std::fs::read(&eml).expect("read");
        let out = neutralise(&raw, &policy);
        let crlf_in = raw.windows(2).filter(|w| w == b"\r\n").count();
        let lf_in = raw.iter().filter(|&&b| b == b'\n').count();
        let crlf_out = out.bytes.windows(2).filter(|w| w == b"\r\n").count();
        let lf_out = out.bytes.iter().filter(|&&b| b == b'\n').count();
        if crlf_in == lf_in {
            assert_eq!(crlf_out, lf_out, "{}: bare LF introduced", eml.display());
        }
        if crlf_in == 0 {
            assert_eq!(crlf_out, 0, "{}: CRLF introduced", eml.display());
        }
    }
}

#[test]
fn corpus_links_match_golden_files() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for eml in corpus() {
        let name = eml
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let raw = std::fs::read(&eml).expect("read");
        let want = expected(&eml);
        let Some(links) = want["links"].as_array() else {
            continue;
        };
        let out = neutralise(&raw, &policy);
        let html_links: Vec<&Finding> = out
            .findings
            .iter()
            .filter(|f| f.kind == Kind::Link && matches!(f.context, Some("a") | Some("area")))
            .collect();
        let mut expected_urls = std::collections::BTreeSet::new();
        for l in links {
            let url = l["url"].as_str().expect("links[].url");
            expected_urls.insert(url.to_string());
            let expect = l["expect"].as_str().expect("links[].expect");
            *totals.entry(expect.to_string()).or_default() += 1;
            let Some(f) = html_links.iter().find(|f| f.url.as_deref() == Some(url)) else {
                failures.push(format!("{name}: link not found: {url}"));
                continue;
            };
            if f.action.as_str() != expect {
                failures.push(format!(
                    "{name}: {url}\n    action {} expected {expect} ({:?})",
                    f.action.as_str(),
                    f.detail
                ));
            }
            if let Some(to) = l["to"].as_str() {
                if f.new_url.as_deref() != Some(to) {
                    failures.push(format!(
                        "{name}: {url}\n    -> {:?}\n    expected {to}",
                        f.new_url
                    ));
                }
            }
            if let Some(v) = l["vendor"].as_str() {
                if f.vendor.as_deref() != Some(v) {
                    failures.push(format!(
                        "{name}: {url}\n    vendor {:?} expected {v}",
                        f.vendor
                    ));
                }
            }
        }
        for f in &html_links {
            let url = f.url.clone().unwrap_or_default();
            if !expected_urls.contains(&url) {
                failures.push(format!(
                    "{name}: unexpected link finding {} {url}",
                    f.action.as_str()
                ));
            }
        }
    }
    eprintln!("corpus link expectations: {totals:?}");
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_esp_attribution_matches_golden_files() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for eml in corpus() {
        let name = eml
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let raw = std::fs::read(&eml).expect("read");
        let want = expected(&eml);
        let Some(esp) = want["esp"].as_array() else {
            continue;
        };
        let out = neutralise(&raw, &policy);
        let mut exp: Vec<(String, String, String)> = esp
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().expect("esp.name").to_string(),
                    e["layer"].as_str().expect("esp.layer").to_string(),
                    e["confidence"]
                        .as_str()
                        .expect("esp.confidence")
                        .to_string(),
                )
            })
            .collect();
        let mut got: Vec<(String, String, String)> = out
            .esp
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    a.layer.as_str().to_string(),
                    a.confidence.as_str().to_string(),
                )
            })
            .collect();
        exp.sort();
        got.sort();
        table.push(format!("{name:<42} {got:?}"));
        if exp != got {
            let evidence: Vec<String> = out
                .esp
                .iter()
                .map(|a| {
                    format!(
                        "{}: {:?}",
                        a.name,
                        a.evidence
                            .iter()
                            .map(|e| format!("{:?} {}", e.signal, e.detail))
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            failures.push(format!(
                "{name}:\n    got      {got:?}\n    expected {exp:?}\n    evidence {evidence:#?}"
            ));
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One inventory entry as `inspect --json` writes it: host, kind, removed, token, count.
type Inventory = Vec<(String, String, bool, bool, usize)>;

fn actual_inventory(remote: &[Remote]) -> Inventory {
    let mut v: Inventory = remote
        .iter()
        .map(|r| {
            (
                r.host.clone(),
                r.kind.as_str().to_string(),
                r.removed,
                r.token,
                r.count,
            )
        })
        .collect();
    v.sort();
    v
}

fn expected_inventory(v: &Value) -> Inventory {
    let mut inv: Inventory = v["expect"]["remote"]
        .as_array()
        .expect("expect.remote (every corpus message lists its remote hosts, [] for none)")
        .iter()
        .map(|e| {
            (
                e["host"].as_str().expect("remote.host").to_string(),
                e["kind"].as_str().expect("remote.kind").to_string(),
                e["removed"].as_bool().expect("remote.removed"),
                e["token"].as_bool().expect("remote.token"),
                e["count"].as_u64().expect("remote.count") as usize,
            )
        })
        .collect();
    inv.sort();
    inv
}

/// The inventory as it is to be written in `expect.remote`, one entry per line.
fn inventory_json(inv: &Inventory) -> String {
    if inv.is_empty() {
        return "\"remote\": []".to_string();
    }
    let lines: Vec<String> = inv
        .iter()
        .map(|(host, kind, removed, token, count)| {
            format!(
                "      {{\"host\": {}, \"kind\": \"{kind}\", \"removed\": {removed}, \"token\": {token}, \"count\": {count}}}",
                Value::from(host.as_str())
            )
        })
        .collect();
    format!("\"remote\": [\n{}\n    ]", lines.join(",\n"))
}

#[test]
fn corpus_remote_inventory_matches_golden_files() {
    let policy = Policy::default();
    let mut failures = Vec::new();
    let mut entries = 0;
    for eml in corpus() {
        let name = eml
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let raw = std::fs::read(&eml).expect("read");
        let want = expected_inventory(&expected(&eml));
        let got = actual_inventory(&neutralise(&raw, &policy).remote);
        entries += want.len();
        if got != want {
            let missing: Vec<_> = want.iter().filter(|e| !got.contains(e)).collect();
            let extra: Vec<_> = got.iter().filter(|e| !want.contains(e)).collect();
            failures.push(format!(
                "{name}: missing {missing:?}\n    unexpected {extra:?}\n    \
                 (after a deliberate change, with the counts checked in the HTML:\n{})",
                inventory_json(&got)
            ));
        }
    }
    eprintln!("corpus remote inventory: {entries} entries");
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
