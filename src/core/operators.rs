//! Who operates a remote host, from its name alone (`rules/operators.toml`, embedded): CDNs,
//! clouds, font services, social networks and ESPs, with the legal entity and country where
//! public sources tell. Never a DNS lookup. Reports and the dossier read it; `neutralise` does
//! not (the log stores hosts, so a newer table names the operators of old messages too).

use crate::core::rules::Rules;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// One operator: legal facts are `None` where the sources did not tell ("unknown").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    /// cdn, cloud, fonts, esp, analytics, social, image-proxy, hosting.
    pub kind: String,
    pub legal_entity: Option<String>,
    pub jurisdiction: Option<String>,
    pub parent: Option<String>,
    pub parent_jurisdiction: Option<String>,
    /// The legal entity or its parent is a US company.
    pub us_exposure: Option<bool>,
    pub sources: Vec<String>,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    operator: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    kind: String,
    #[serde(default)]
    provider: Option<String>,
    suffixes: Vec<String>,
    #[serde(default)]
    legal_entity: Option<String>,
    #[serde(default)]
    jurisdiction: Option<String>,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default)]
    parent_jurisdiction: Option<String>,
    #[serde(default)]
    us_exposure: Option<bool>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    note: Option<String>,
}

/// The table: host suffix → operator, the longest suffix winning.
#[derive(Debug, Clone, Default)]
pub struct Operators {
    list: Vec<Operator>,
    by_suffix: HashMap<String, usize>,
}

fn known(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty() && !s.trim().eq_ignore_ascii_case("unknown"))
}

impl Operators {
    /// Parse an operators file. An entry naming a `provider` takes its legal facts from
    /// `rules`' ESP provider facts where it gives none itself.
    pub fn parse(text: &str, rules: &Rules) -> Result<Operators, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.version != 1 {
            return Err(format!("unknown operators file version {}", file.version));
        }
        let mut ops = Operators::default();
        for e in file.operator {
            let facts = e
                .provider
                .as_deref()
                .and_then(|p| rules.esp.providers.get(p));
            let op = Operator {
                legal_entity: known(e.legal_entity)
                    .or_else(|| facts.and_then(|f| known(Some(f.legal_entity.clone())))),
                jurisdiction: known(e.jurisdiction)
                    .or_else(|| facts.and_then(|f| known(Some(f.jurisdiction.clone())))),
                parent: known(e.parent).or_else(|| facts.and_then(|f| known(f.parent.clone()))),
                parent_jurisdiction: known(e.parent_jurisdiction)
                    .or_else(|| facts.and_then(|f| known(f.parent_jurisdiction.clone()))),
                us_exposure: e.us_exposure.or_else(|| facts.and_then(|f| f.us_exposure)),
                name: e.name,
                kind: e.kind,
                sources: e.sources,
                note: e.note,
            };
            let idx = ops.list.len();
            for s in e.suffixes {
                let s = s.trim().trim_start_matches('.').to_ascii_lowercase();
                if s.is_empty() {
                    return Err(format!("operator {}: an empty suffix", op.name));
                }
                if let Some(&other) = ops.by_suffix.get(&s) {
                    return Err(format!(
                        "suffix {s} is given for {} and for {}",
                        ops.list[other].name, op.name
                    ));
                }
                ops.by_suffix.insert(s, idx);
            }
            ops.list.push(op);
        }
        Ok(ops)
    }

    /// The shipped table, parsed on first use. Empty (and logged) if it does not parse: a unit
    /// test keeps that from happening.
    pub fn embedded() -> &'static Operators {
        static EMBEDDED: OnceLock<Operators> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            let text = include_str!("../../rules/operators.toml");
            Operators::parse(text, &Rules::embedded()).unwrap_or_else(|e| {
                tracing::error!("embedded operators table does not parse: {e}");
                Operators::default()
            })
        })
    }

    /// The operator of `host` (lowercased, no port): the longest listed suffix it equals or
    /// ends with after a dot.
    pub fn of(&self, host: &str) -> Option<&Operator> {
        let host = host.trim_end_matches('.');
        let mut rest = host;
        loop {
            if let Some(&i) = self.by_suffix.get(rest) {
                return self.list.get(i);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    pub fn all(&self) -> &[Operator] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_names_hosts_by_their_longest_suffix() {
        let ops = Operators::parse(
            include_str!("../../rules/operators.toml"),
            &Rules::embedded(),
        )
        .expect("operators.toml");
        assert!(ops.all().len() >= 60, "{}", ops.all().len());
        let name = |h: &str| ops.of(h).map(|o| o.name.as_str());
        assert_eq!(
            name("d111111abcdef8.cloudfront.net"),
            Some("Amazon Web Services")
        );
        assert_eq!(name("fonts.googleapis.com"), Some("Google Fonts"));
        assert_eq!(name("storage.googleapis.com"), Some("Google Cloud"));
        assert_eq!(name("mcusercontent.com"), Some("Mailchimp"));
        assert_eq!(name("shop.example"), None);
        assert_eq!(
            name("notcloudfront.net"),
            None,
            "a suffix matches at a dot only"
        );
        // An ESP entry takes the legal facts of providers.toml.
        let sg = ops.of("u123.ct.sendgrid.net").expect("SendGrid");
        assert_eq!(sg.legal_entity.as_deref(), Some("Twilio Inc."));
        assert_eq!(sg.jurisdiction.as_deref(), Some("US"));
        assert_eq!(sg.us_exposure, Some(true));
        // Every entry says something about who runs it, or names its sources for it.
        for o in ops.all() {
            assert!(!o.sources.is_empty(), "{} has no sources", o.name);
        }
        assert_eq!(Operators::embedded().all().len(), ops.all().len());
    }

    #[test]
    fn unknown_is_none_and_bad_files_are_refused() {
        let rules = Rules::embedded();
        let ops = Operators::parse(
            "version = 1\n[[operator]]\nname = \"X\"\nkind = \"cdn\"\nsuffixes = [\"x.example\"]\nlegal_entity = \"unknown\"\n",
            &rules,
        )
        .expect("parse");
        assert_eq!(
            ops.of("a.x.example").and_then(|o| o.legal_entity.clone()),
            None
        );
        let twice = "version = 1\n[[operator]]\nname = \"A\"\nkind = \"cdn\"\nsuffixes = [\"x.example\"]\n[[operator]]\nname = \"B\"\nkind = \"cdn\"\nsuffixes = [\"X.example\"]\n";
        assert!(Operators::parse(twice, &rules).is_err());
        assert!(Operators::parse("version = 2\n", &rules).is_err());
    }
}
