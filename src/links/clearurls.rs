//! Import of a ClearURLs `data.min.json` catalog (given with `--rules FILE.json`), so users can
//! drop in a maintained list. Semantics follow the ClearURLs catalog format:
//! - `urlPattern`: the provider applies to URLs it matches (case-insensitive), unless one of its
//!   `exceptions` matches;
//! - `rules` and `referralMarketing`: regexes for whole parameter names (query and fragment)
//!   to remove;
//! - `rawRules`: regexes whose matches are cut out of the URL;
//! - `redirections`: regexes whose first capture group is the (percent-encoded) destination;
//! - `completeProvider`: the whole URL is a tracker (ClearURLs blocks it; we keep it and record
//!   it as opaque, since we never contact it anyway).
//!
//! Patterns Rust's regex engine cannot compile (look-around) are skipped with a count.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Catalog {
    providers: BTreeMap<String, RawProvider>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProvider {
    url_pattern: String,
    #[serde(default)]
    complete_provider: bool,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    raw_rules: Vec<String>,
    #[serde(default)]
    referral_marketing: Vec<String>,
    #[serde(default)]
    exceptions: Vec<String>,
    #[serde(default)]
    redirections: Vec<String>,
}

#[derive(Debug, Clone)]
struct Provider {
    name: String,
    complete: bool,
    /// Anchored, case-insensitive parameter-name patterns.
    params: Option<RegexSet>,
    raw_rules: Vec<Regex>,
    exceptions: Option<RegexSet>,
    redirections: Vec<Regex>,
}

/// A compiled catalog.
#[derive(Debug, Clone)]
pub struct ClearUrls {
    patterns: RegexSet,
    providers: Vec<Provider>,
    /// Patterns that did not compile and were left out.
    pub skipped_patterns: usize,
}

fn ci(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(16 << 20)
        .build()
}

fn ci_set(patterns: impl IntoIterator<Item = String>, skipped: &mut usize) -> Option<RegexSet> {
    let ok: Vec<String> = patterns
        .into_iter()
        .filter(|p| {
            let good = ci(p).is_ok();
            if !good {
                *skipped += 1;
            }
            good
        })
        .collect();
    if ok.is_empty() {
        return None;
    }
    RegexSetBuilder::new(&ok)
        .case_insensitive(true)
        .size_limit(64 << 20)
        .build()
        .ok()
}

impl ClearUrls {
    pub fn parse(json: &str) -> Result<ClearUrls, String> {
        let cat: Catalog =
            serde_json::from_str(json).map_err(|e| format!("not a ClearURLs catalog: {e}"))?;
        let mut skipped = 0;
        let mut patterns = Vec::new();
        let mut providers = Vec::new();
        for (name, p) in cat.providers {
            if ci(&p.url_pattern).is_err() {
                skipped += 1;
                continue;
            }
            let param_patterns = p
                .rules
                .iter()
                .chain(&p.referral_marketing)
                .map(|r| format!("^(?:{r})$"));
            let params = ci_set(param_patterns, &mut skipped);
            let raw_rules = p
                .raw_rules
                .iter()
                .filter_map(|r| ci(r).map_err(|_| skipped += 1).ok())
                .collect();
            let redirections = p
                .redirections
                .iter()
                .filter_map(|r| ci(r).map_err(|_| skipped += 1).ok())
                .filter(|r| r.captures_len() > 1)
                .collect();
            let exceptions = ci_set(p.exceptions.iter().cloned(), &mut skipped);
            patterns.push(p.url_pattern);
            providers.push(Provider {
                name,
                complete: p.complete_provider,
                params,
                raw_rules,
                exceptions,
                redirections,
            });
        }
        let patterns = RegexSetBuilder::new(&patterns)
            .case_insensitive(true)
            .size_limit(256 << 20)
            .build()
            .map_err(|e| format!("catalog patterns: {e}"))?;
        Ok(ClearUrls {
            patterns,
            providers,
            skipped_patterns: skipped,
        })
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    fn applicable<'a>(&'a self, url: &'a str) -> impl Iterator<Item = &'a Provider> + 'a {
        self.patterns
            .matches(url)
            .into_iter()
            .filter_map(|i| self.providers.get(i))
            .filter(move |p| !p.exceptions.as_ref().is_some_and(|e| e.is_match(url)))
    }

    /// A redirection destination written in the URL: `(provider, destination)`.
    pub fn redirect(&self, url: &str) -> Option<(String, String)> {
        for p in self.applicable(url) {
            for r in &p.redirections {
                if let Some(m) = r.captures(url).and_then(|c| c.get(1)) {
                    let dest = percent_encoding::percent_decode_str(m.as_str())
                        .decode_utf8()
                        .ok()?;
                    return Some((p.name.clone(), dest.into_owned()));
                }
            }
        }
        None
    }

    /// Name of a `completeProvider` that matches (the whole URL is a tracker).
    pub fn complete(&self, url: &str) -> Option<String> {
        self.applicable(url)
            .find(|p| p.complete)
            .map(|p| p.name.clone())
    }

    /// Remove the catalog's parameters and raw rules; `None` when nothing changes.
    pub fn clean(&self, url: &str) -> Option<(String, Vec<String>)> {
        let mut current = url.to_string();
        let mut removed = Vec::new();
        for p in self.applicable(url) {
            for r in &p.raw_rules {
                let next = r.replace_all(&current, "");
                if next != current {
                    removed.push(format!("raw:{}", r.as_str()));
                    current = next.into_owned();
                }
            }
            if let Some(params) = &p.params {
                if let Some((u, names)) =
                    super::params::filter_url(&current, &|key| params.is_match(key))
                {
                    current = u;
                    removed.extend(names);
                }
            }
        }
        (current != url).then_some((current, removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"{"providers":{
      "awstrack": {"urlPattern":"^https?:\\/\\/(?:[a-z0-9-]+\\.)*?awstrack\\.me","completeProvider":false,
                   "rules":[],"redirections":["^https?:\\/\\/(?:[a-z0-9-]+\\.)*?awstrack\\.me\\/.*\\/(https?.*?)\\/"]},
      "globalRules": {"urlPattern":".*","completeProvider":false,"rules":["utm(?:_[a-z_]*)?","ga_[a-z_]+"],
                   "referralMarketing":["ref_?"],"exceptions":["^https?:\\/\\/[^/]*keep\\.example"]},
      "amazon": {"urlPattern":"^https?:\\/\\/(?:[a-z0-9-]+\\.)*?amazon(?:\\.[a-z]{2,}){1,}","completeProvider":false,
                 "rules":["qid"],"rawRules":["\\/ref=[^/?]*"]},
      "doubleclick": {"urlPattern":"^https?:\\/\\/(?:[a-z0-9-]+\\.)*?doubleclick\\.net","completeProvider":true},
      "lookaround": {"urlPattern":"^https?://(?!x)y\\.example","completeProvider":true}
    }}"#;

    #[test]
    fn catalog_semantics() {
        let c = ClearUrls::parse(CATALOG).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c.skipped_patterns, 1);
        let (name, dest) = c
            .redirect(
                "https://x.r.us-east-1.awstrack.me/L0/https:%2F%2Fshop.example%2Fa/1/id/sig=1",
            )
            .unwrap();
        assert_eq!(name, "awstrack");
        assert_eq!(dest, "https://shop.example/a");
        assert_eq!(
            c.clean("https://shop.example/p?UTM_Source=x&id=2&ref=abc&ga_x=1")
                .unwrap()
                .0,
            "https://shop.example/p?id=2"
        );
        assert_eq!(c.clean("https://keep.example/p?utm_source=x"), None);
        assert_eq!(
            c.clean("https://www.amazon.de/dp/B00/ref=sr_1_1?qid=123&th=1")
                .unwrap()
                .0,
            "https://www.amazon.de/dp/B00?th=1"
        );
        assert_eq!(
            c.complete("https://ad.doubleclick.net/x").as_deref(),
            Some("doubleclick")
        );
        assert!(ClearUrls::parse("{}").is_err());
    }
}
