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

/// The shipped table.
const EMBEDDED: &str = include_str!("../../rules/operators.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    operator: Vec<OperatorEntry>,
}

/// One `[[operator]]` entry as written, in `rules/operators.toml` or in a user's rules file
/// (`--rules`, `[policy] rules`), where it adds an operator, replaces the shipped one of the
/// same `name` (case-insensitive) or, with `disabled = true`, removes it; and takes over from
/// the shipped entries every suffix it lists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    pub name: String,
    /// Required unless `disabled`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub provider: Option<String>,
    /// Required unless `disabled`.
    #[serde(default)]
    pub suffixes: Vec<String>,
    #[serde(default)]
    pub legal_entity: Option<String>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub parent_jurisdiction: Option<String>,
    #[serde(default)]
    pub us_exposure: Option<bool>,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// Only in a user's file: drop the shipped operator of this name.
    #[serde(default)]
    pub disabled: bool,
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

fn suffix(s: &str) -> String {
    s.trim().trim_start_matches('.').to_ascii_lowercase()
}

fn read(text: &str) -> Result<Vec<OperatorEntry>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.version != 1 {
        return Err(format!("unknown operators file version {}", file.version));
    }
    Ok(file.operator)
}

impl Operators {
    /// Parse an operators file. An entry naming a `provider` takes its legal facts from
    /// `rules`' ESP provider facts where it gives none itself. A suffix given twice is an
    /// error.
    pub fn parse(text: &str, rules: &Rules) -> Result<Operators, String> {
        let entries = read(text)?;
        if let Some(e) = entries.iter().find(|e| e.suffixes.is_empty() || e.disabled) {
            return Err(format!("operator {}: no suffixes, or disabled", e.name));
        }
        Operators::build(entries, rules)
    }

    /// The shipped table with the `[[operator]]` entries of the user's rules files merged on
    /// top, in order (`rules.operators`): an entry replaces the shipped operator of the same
    /// name (case-insensitive) in place, or is added; `disabled = true` removes that operator;
    /// every suffix an entry lists is taken from whichever operator had it. Legal facts of a
    /// `provider` come from `rules` (so from the user's `[[provider]]` entries too). With the
    /// shipped rules, the table [`Operators::embedded`] holds.
    pub fn with_user(rules: &Rules) -> Result<Operators, String> {
        if std::ptr::eq(rules, Rules::embedded().as_ref()) {
            return Ok(Operators::embedded().clone());
        }
        let mut entries = read(EMBEDDED)?;
        for user in rules.operators.iter() {
            if user.name.trim().is_empty() {
                return Err("an [[operator]] without a name".into());
            }
            if !user.disabled && (user.kind.trim().is_empty() || user.suffixes.is_empty()) {
                return Err(format!(
                    "operator {}: needs a kind and suffixes (or disabled = true)",
                    user.name
                ));
            }
            let taken: Vec<String> = user.suffixes.iter().map(|s| suffix(s)).collect();
            for e in &mut entries {
                e.suffixes.retain(|s| !taken.contains(&suffix(s)));
            }
            let same = entries
                .iter()
                .position(|e| e.name.trim().eq_ignore_ascii_case(user.name.trim()));
            match (same, user.disabled) {
                (Some(i), true) => {
                    entries.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => entries[i] = user.clone(),
                (None, false) => entries.push(user.clone()),
            }
        }
        Operators::build(entries, rules)
    }

    fn build(entries: Vec<OperatorEntry>, rules: &Rules) -> Result<Operators, String> {
        let mut ops = Operators::default();
        for e in entries {
            if e.disabled {
                continue;
            }
            if e.kind.trim().is_empty() {
                return Err(format!("operator {}: no kind", e.name));
            }
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
                let s = suffix(&s);
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
        static TABLE: OnceLock<Operators> = OnceLock::new();
        TABLE.get_or_init(|| {
            Operators::parse(EMBEDDED, &Rules::embedded()).unwrap_or_else(|e| {
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

    fn user(text: &str) -> Result<Operators, String> {
        let file =
            crate::core::rules::RuleFile::parse(text, "user.toml").map_err(|e| e.to_string())?;
        let mut rules = (*Rules::embedded()).clone();
        rules.operators = file.operator;
        Operators::with_user(&rules)
    }

    #[test]
    fn a_user_file_adds_replaces_takes_suffixes_and_disables() {
        let ops = user(
            r#"
            [[operator]]
            name = "Shop CDN"
            kind = "cdn"
            suffixes = ["cdn.shop.example", "storage.googleapis.com"]
            legal_entity = "Shop SARL"
            jurisdiction = "FR"
            us_exposure = false

            [[operator]]
            name = "cloudflare"
            kind = "hosting"
            suffixes = ["cloudflare.com"]
            legal_entity = "Someone else"

            [[operator]]
            name = "Google Fonts"
            disabled = true
            "#,
        )
        .expect("user operators");
        let embedded = Operators::embedded();
        let name = |h: &str| ops.of(h).map(|o| o.name.as_str());
        // Added, with a suffix taken from Google Cloud.
        assert_eq!(name("img.cdn.shop.example"), Some("Shop CDN"));
        assert_eq!(name("storage.googleapis.com"), Some("Shop CDN"));
        assert_eq!(
            ops.of("cdn.shop.example")
                .and_then(|o| o.jurisdiction.as_deref()),
            Some("FR")
        );
        // Replaced by name (case-insensitive), in place: its other suffixes are gone with it.
        let cf = ops.of("www.cloudflare.com").expect("replaced");
        assert_eq!(
            (cf.kind.as_str(), cf.legal_entity.as_deref()),
            ("hosting", Some("Someone else"))
        );
        assert_eq!(name("imagedelivery.net"), None);
        assert_eq!(
            ops.all().iter().position(|o| o.name == "cloudflare"),
            embedded.all().iter().position(|o| o.name == "Cloudflare")
        );
        // Disabled.
        assert_eq!(
            name("fonts.googleapis.com"),
            Some("Google"),
            "the shorter suffix now"
        );
        assert!(ops.all().iter().all(|o| o.name != "Google Fonts"));
        // The rest as shipped.
        assert_eq!(name("d1.cloudfront.net"), Some("Amazon Web Services"));
        assert_eq!(ops.all().len(), embedded.all().len());
    }

    #[test]
    fn a_bad_user_entry_is_refused() {
        assert!(
            user("[[operator]]\nname = \"X\"\nkind = \"cdn\"\n").is_err(),
            "no suffixes"
        );
        assert!(
            user("[[operator]]\nname = \"X\"\nsuffixes = [\"x.example\"]\n").is_err(),
            "no kind"
        );
        assert!(user("[[operator]]\nname = \"X\"\nkind = \"cdn\"\nsuffixes = [\"\"]\n").is_err());
        assert!(user(
            "[[operator]]\nname = \"X\"\nkind = \"cdn\"\nsuffixes = [\"x.example\"]\nbogus = 1\n"
        )
        .is_err());
        // Two user entries for one suffix: the later one has it.
        let ops = user(
            "[[operator]]\nname = \"A\"\nkind = \"cdn\"\nsuffixes = [\"x.example\"]\n\
             [[operator]]\nname = \"B\"\nkind = \"cdn\"\nsuffixes = [\"x.example\"]\n",
        )
        .expect("parse");
        assert_eq!(ops.of("x.example").map(|o| o.name.as_str()), Some("B"));
    }
}
