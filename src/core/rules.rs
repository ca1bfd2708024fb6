//! The rules the pipeline runs with. Rules are data: `rules/default.toml` is compiled in, user files are merged on top.
//!
//! Each section of URL rules is compiled into one `RegexSet`, so a URL is checked against all
//! rules of a section in a single pass.

use crate::core::operators::OperatorEntry;
use crate::esp::providers::{EmbeddedProvider, Provider, ProviderFile, Providers};
use crate::esp::{EspRule, EspRules};
use crate::links::clearurls::ClearUrls;
pub use crate::links::params::ParamRules;
pub use crate::mail::rule::{Beacon, RulesError, UrlRule, UrlRuleSet};
use serde::Deserialize;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The rules files shipped with trackless (`rules/default.toml`: tracker URLs, `esp.toml`: ESP
/// fingerprints) as JSON, written by build.rs: a process started per message reads them ~10
/// times faster than the TOML. `providers.toml` is an index with one JSON entry per provider
/// (`EMBEDDED_PROVIDERS`).
const EMBEDDED_JSON: [(&str, &str); 2] = [
    (
        include_str!(concat!(env!("OUT_DIR"), "/default.json")),
        "<embedded rules/default.toml>",
    ),
    (
        include_str!(concat!(env!("OUT_DIR"), "/esp.json")),
        "<embedded rules/esp.toml>",
    ),
];

/// The shipped providers (`rules/providers.toml`), one JSON entry each, read on first use.
static EMBEDDED_PROVIDERS: &[EmbeddedProvider] =
    include!(concat!(env!("OUT_DIR"), "/providers_index.rs"));

/// A rules file as written (before merging and compiling).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub open: Vec<UrlRule>,
    #[serde(default)]
    pub font: Vec<UrlRule>,
    #[serde(default)]
    pub decoder: Vec<UrlRule>,
    #[serde(default)]
    pub click: Vec<UrlRule>,
    #[serde(default)]
    pub params: ParamRules,
    #[serde(default)]
    pub esp: Vec<EspRule>,
    #[serde(default)]
    pub provider: Vec<Provider>,
    /// Operators of remote hosts (`rules/operators.toml` is not merged here: its entries are
    /// read only by the reports, `Operators::with_user`).
    #[serde(default)]
    pub operator: Vec<OperatorEntry>,
    /// Starts from the shipped rules: their providers come with it (see `EMBEDDED_PROVIDERS`).
    #[serde(skip)]
    pub shipped: bool,
}

impl RuleFile {
    pub fn parse(text: &str, origin: &str) -> Result<RuleFile, RulesError> {
        let file: RuleFile = toml::from_str(text).map_err(|e| RulesError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        Ok(file.from(origin))
    }

    /// A shipped file, as build.rs converted it.
    fn parse_embedded(json: &str, origin: &str) -> Result<RuleFile, RulesError> {
        let file: RuleFile = serde_json::from_str(json).map_err(|e| RulesError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        Ok(file.from(origin))
    }

    /// Note where each URL rule came from (for error messages).
    fn from(mut self, origin: &str) -> RuleFile {
        let file = &mut self;
        for r in file
            .open
            .iter_mut()
            .chain(file.font.iter_mut())
            .chain(file.decoder.iter_mut())
            .chain(file.click.iter_mut())
        {
            r.origin = origin.to_string();
        }
        self
    }

    /// Merge `other` on top of `self`: same id replaces (or, with `disabled`, removes).
    pub fn merge(&mut self, other: RuleFile) {
        merge_rules(&mut self.open, other.open);
        merge_rules(&mut self.font, other.font);
        merge_rules(&mut self.decoder, other.decoder);
        merge_rules(&mut self.click, other.click);
        self.params.merge(other.params);
        for rule in other.esp {
            match self
                .esp
                .iter_mut()
                .find(|r| r.name.eq_ignore_ascii_case(&rule.name))
            {
                Some(existing) => *existing = rule,
                None => self.esp.push(rule),
            }
        }
        // In order: `Operators::with_user` applies them one after the other.
        self.operator.extend(other.operator);
        for p in other.provider {
            match self
                .provider
                .iter_mut()
                .find(|r| r.name.eq_ignore_ascii_case(&p.name))
            {
                Some(existing) => *existing = p,
                None => self.provider.push(p),
            }
        }
    }
}

fn merge_rules(base: &mut Vec<UrlRule>, extra: Vec<UrlRule>) {
    for rule in extra {
        if let Some(existing) = base.iter_mut().find(|r| r.id == rule.id) {
            *existing = rule;
        } else {
            base.push(rule);
        }
    }
}

/// All compiled rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Open-tracking beacons (images, backgrounds, CSS url()).
    pub open: UrlRuleSet,
    /// Remote font hosts.
    pub font: UrlRuleSet,
    /// Links whose destination can be read out of the link itself.
    pub decoder: UrlRuleSet,
    /// Click trackers that cannot be decoded offline (kept, recorded as opaque).
    pub click: UrlRuleSet,
    /// Tracking parameters stripped from every link.
    pub params: ParamRules,
    /// A ClearURLs catalog given with `--rules FILE.json`, applied after our own rules.
    pub clearurls: Option<Arc<ClearUrls>>,
    /// ESP fingerprints and provider facts.
    pub esp: EspRules,
    /// The `[[operator]]` entries of the user's rules files, in order, merged over
    /// `rules/operators.toml` by `Operators::with_user` (the reports' table).
    pub operators: Vec<OperatorEntry>,
}

impl Rules {
    pub fn compile(file: RuleFile, origin: &str) -> Result<Rules, RulesError> {
        let misplaced = file
            .font
            .iter()
            .chain(&file.decoder)
            .chain(&file.click)
            .find(|r| r.beacon.is_some());
        let pathless = file
            .open
            .iter()
            .find(|r| r.beacon == Some(Beacon::Path) && r.path.is_none());
        if let Some((r, message)) = misplaced
            .map(|r| (r, "`beacon` only applies to [[open]] rules"))
            .or(pathless.map(|r| (r, "beacon = \"path\" needs a `path`")))
        {
            return Err(RulesError::Pattern {
                path: r.origin.clone(),
                id: r.id.clone(),
                message: message.to_string(),
            });
        }
        for r in &file.decoder {
            let known = r
                .decoder
                .as_deref()
                .is_some_and(|d| crate::links::Decoder::from_name(d).is_some());
            if !known && !r.disabled {
                return Err(RulesError::Pattern {
                    path: r.origin.clone(),
                    id: r.id.clone(),
                    message: format!(
                        "unknown decoder {:?} (known: {})",
                        r.decoder.as_deref().unwrap_or(""),
                        crate::links::Decoder::NAMES.join(", ")
                    ),
                });
            }
        }
        Ok(Rules {
            open: UrlRuleSet::compile(file.open, origin)?,
            font: UrlRuleSet::compile(file.font, origin)?,
            decoder: UrlRuleSet::compile(file.decoder, origin)?,
            click: UrlRuleSet::compile(file.click, origin)?,
            params: file.params,
            clearurls: None,
            esp: EspRules::compile(
                file.esp,
                Providers::new(
                    if file.shipped {
                        EMBEDDED_PROVIDERS
                    } else {
                        &[]
                    },
                    ProviderFile {
                        provider: file.provider,
                    },
                ),
            )
            .map_err(|message| RulesError::Parse {
                path: origin.to_string(),
                message,
            })?,
            operators: file.operator,
        })
    }

    fn default_file() -> Result<RuleFile, RulesError> {
        let [first, rest @ ..] = EMBEDDED_JSON;
        let mut file = RuleFile::parse_embedded(first.0, first.1)?;
        for (json, origin) in rest {
            file.merge(RuleFile::parse_embedded(json, origin)?);
        }
        file.shipped = true;
        Ok(file)
    }

    /// The embedded rules, compiled once per process.
    pub fn embedded() -> Arc<Rules> {
        static EMBEDDED: OnceLock<Arc<Rules>> = OnceLock::new();
        EMBEDDED
            .get_or_init(|| {
                let compiled = Rules::default_file()
                    .and_then(|f| Rules::compile(f, "<embedded rules/default.toml>"));
                match compiled {
                    Ok(r) => Arc::new(r),
                    Err(e) => {
                        // Covered by a unit test; never expected at run time.
                        tracing::error!("embedded rules do not compile: {e}");
                        Arc::new(Rules::empty())
                    }
                }
            })
            .clone()
    }

    /// Embedded rules with user files merged on top, in order. A `.json` file is read as a
    /// ClearURLs catalog (the last one given is used).
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Rules, RulesError> {
        let mut file = Rules::default_file()?;
        let mut clearurls = None;
        for p in paths {
            let p = p.as_ref();
            let origin = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|source| RulesError::Read {
                path: origin.clone(),
                source,
            })?;
            let is_json = p
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
                || text.trim_start().starts_with('{');
            if is_json {
                let catalog = ClearUrls::parse(&text).map_err(|message| RulesError::Parse {
                    path: origin.clone(),
                    message,
                })?;
                if catalog.skipped_patterns > 0 {
                    tracing::warn!(
                        file = %origin,
                        skipped = catalog.skipped_patterns,
                        "ClearURLs patterns this regex engine cannot compile were left out"
                    );
                }
                clearurls = Some(Arc::new(catalog));
            } else {
                file.merge(RuleFile::parse(&text, &origin)?);
            }
        }
        let mut rules = Rules::compile(file, "rules")?;
        rules.clearurls = clearurls;
        // `[[operator]]` entries are read by the reports only; check them now all the same,
        // so that a broken one is reported where the other rules' errors are.
        if !rules.operators.is_empty() {
            crate::core::operators::Operators::with_user(&rules).map_err(|message| {
                RulesError::Parse {
                    path: paths
                        .iter()
                        .map(|p| p.as_ref().display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    message,
                }
            })?;
        }
        Ok(rules)
    }

    /// The sections the link engine reads.
    pub fn links(&self) -> crate::links::LinkRules<'_> {
        crate::links::LinkRules {
            decoder: &self.decoder,
            click: &self.click,
            params: &self.params,
            clearurls: self.clearurls.as_deref(),
        }
    }

    /// The legal facts `rules/providers.toml` gives a provider, found by name or alias
    /// (case-insensitive): its legal entity, parent and parent's jurisdiction, as written
    /// (`"unknown"` included). None for a provider the file does not list.
    pub fn provider_facts(&self, name: &str) -> Option<(String, Option<String>, Option<String>)> {
        self.esp.providers.get(name).map(|p| {
            (
                p.legal_entity.clone(),
                p.parent.clone(),
                p.parent_jurisdiction.clone(),
            )
        })
    }

    pub fn empty() -> Rules {
        Rules {
            open: empty_set(),
            font: empty_set(),
            decoder: empty_set(),
            click: empty_set(),
            params: ParamRules::default(),
            clearurls: None,
            esp: EspRules::empty(),
            operators: Vec::new(),
        }
    }
}

fn empty_set() -> UrlRuleSet {
    UrlRuleSet::empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::url::UrlView;

    /// What build.rs wrote is what the TOML files say.
    #[test]
    fn embedded_json_is_the_toml() {
        let tomls = [
            include_str!("../../rules/default.toml"),
            include_str!("../../rules/esp.toml"),
        ];
        for ((json, origin), toml) in EMBEDDED_JSON.iter().zip(tomls) {
            let a = RuleFile::parse_embedded(json, origin).expect("json");
            let b = RuleFile::parse(toml, origin).expect("toml");
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{origin}");
        }
    }

    /// Every shipped provider, read from its own JSON entry on first use, is the TOML's, under
    /// its name and each alias; a rules file's provider of the same name takes its place, and
    /// a new one is added.
    #[test]
    fn shipped_providers_are_the_toml_and_can_be_replaced() {
        let toml = RuleFile::parse(include_str!("../../rules/providers.toml"), "providers")
            .expect("toml")
            .provider;
        assert!(toml.len() >= 20, "{}", toml.len());
        assert_eq!(toml.len(), EMBEDDED_PROVIDERS.len());
        let lazy = Rules::embedded();
        for p in &toml {
            for name in std::iter::once(&p.name).chain(&p.aliases) {
                let got = lazy.esp.providers.get(&name.to_uppercase());
                assert_eq!(got, Some(p), "{name}");
            }
        }
        assert!(lazy.esp.providers.get("no such provider").is_none());
        assert_eq!(lazy.esp.providers.all().len(), toml.len());
        let user = RuleFile::parse(
            "[[provider]]\nname = \"sendgrid\"\nlegal_entity = \"X\"\njurisdiction = \"FR\"\n\
             [[provider]]\nname = \"Newco\"\nlegal_entity = \"Y\"\njurisdiction = \"DE\"\n",
            "user",
        )
        .expect("user");
        let mut file = Rules::default_file().expect("shipped");
        file.merge(user);
        let rules = Rules::compile(file, "rules").expect("compile");
        let p = &rules.esp.providers;
        assert_eq!(
            p.get("SendGrid").map(|p| p.jurisdiction.as_str()),
            Some("FR")
        );
        assert_eq!(p.get("Newco").map(|p| p.legal_entity.as_str()), Some("Y"));
        assert_eq!(p.get("Mailgun"), lazy.esp.providers.get("Mailgun"));
        assert_eq!(p.all().len(), toml.len() + 1);
    }

    #[test]
    fn embedded_rules_compile() {
        let file = Rules::default_file().expect("parse");
        let n = file.open.len() + file.font.len();
        let rules = Rules::compile(file, "test").expect("compile");
        assert_eq!(rules.open.len() + rules.font.len(), n);
        assert!(rules.open.len() > 30);
    }

    /// The shipped rules run on the automata build.rs made from them (no regex compiled at
    /// start-up); a user's file that adds a click rule recompiles that section only.
    #[test]
    fn embedded_rules_use_the_automata_built_with_the_crate() {
        let rules = Rules::embedded();
        for set in [&rules.open, &rules.font, &rules.decoder, &rules.click] {
            assert!(set.is_embedded(), "{set:?}");
        }
        assert!(rules.esp.is_embedded());
        let mut file = Rules::default_file().expect("parse");
        file.merge(
            RuleFile::parse(
                "[[click]]\nid = \"mine\"\nhosts = [\"click.example\"]\n",
                "user.toml",
            )
            .expect("user file"),
        );
        let rules = Rules::compile(file, "test").expect("compile");
        assert!(!rules.click.is_embedded());
        assert!(rules.open.is_embedded() && rules.decoder.is_embedded());
        assert!(rules.esp.is_embedded());
        let v = UrlView::parse("https://click.example/x").expect("url");
        assert_eq!(
            rules.click.first_match(&v.subject).map(|r| r.id.as_str()),
            Some("mine")
        );
    }

    fn open_id(url: &str) -> Option<String> {
        let v = UrlView::parse(url)?;
        Rules::embedded()
            .open
            .first_match(&v.subject)
            .map(|r| r.id.clone())
    }

    #[test]
    fn path_rules_catch_custom_domains() {
        assert_eq!(
            open_id("https://email.shop.example/o/eJwVjEsOgjAQQO9").as_deref(),
            Some("mailgun.open")
        );
        assert_eq!(
            open_id("http://url2508.brand.example/wf/open?upn=abc").as_deref(),
            Some("sendgrid.open")
        );
        assert_eq!(
            open_id("https://tracking.shop.example/CI0/0100-abc/xyz=331").as_deref(),
            Some("ses.open-custom")
        );
        assert_eq!(
            open_id("https://VK39FK6Q.r.eu-west-1.awstrack.me:443/I0/0102/sig=331").as_deref(),
            Some("ses.open")
        );
        assert_eq!(open_id("https://cdn.shop.example/img/logo.png"), None);
        assert_eq!(open_id("https://awstrack.me.evil.example/I0/x"), None);
        assert_eq!(open_id("cid:logo@x"), None);
    }

    #[test]
    fn user_file_overrides_and_disables() {
        let mut file = Rules::default_file().expect("parse");
        let user = RuleFile::parse(
            r#"
            [[open]]
            id = "mailgun.open"
            disabled = true
            [[open]]
            id = "local.beacon"
            vendor = "Local"
            hosts = ["beacon.example"]
            "#,
            "user",
        )
        .expect("user parse");
        file.merge(user);
        let rules = Rules::compile(file, "t").expect("compile");
        let v = UrlView::parse("https://email.shop.example/o/eJwVjEsOgjAQQO9").expect("url");
        assert!(rules.open.first_match(&v.subject).is_none());
        let v = UrlView::parse("https://x.beacon.example/p.gif").expect("url");
        assert_eq!(
            rules.open.first_match(&v.subject).map(|r| r.id.as_str()),
            Some("local.beacon")
        );
    }

    #[test]
    fn bad_rule_is_named() {
        let file = RuleFile::parse(
            "[[open]]\nid = \"broken\"\npath = '/(unclosed'\n",
            "user.toml",
        )
        .expect("toml");
        let err = Rules::compile(file, "user.toml").expect_err("must fail");
        assert!(err.to_string().contains("broken"), "{err}");
        assert!(RuleFile::parse("[[open]]\nid='x'\nbogus=1\n", "u.toml").is_err());
    }
}
