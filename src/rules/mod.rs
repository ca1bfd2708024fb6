//! Rules are data: `rules/default.toml` is compiled in, user files are merged on top.
//!
//! Each section of URL rules is compiled into one `RegexSet`, so a URL is checked against all
//! rules of a section in a single pass.

use crate::esp::providers::{Provider, ProviderFile, Providers};
use crate::esp::{EspRule, EspRules};
use crate::links::clearurls::ClearUrls;
use crate::links::params::ParamRules;
use regex::{RegexSet, RegexSetBuilder};
use serde::Deserialize;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The rules files shipped with trackless: tracker URLs, ESP fingerprints, provider facts.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");
pub const DEFAULT_ESP: &str = include_str!("../../rules/esp.toml");
pub const DEFAULT_PROVIDERS: &str = include_str!("../../rules/providers.toml");

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("rules file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("rules file {path}: rule {id}: bad pattern: {message}")]
    Pattern {
        path: String,
        id: String,
        message: String,
    },
}

/// One URL rule as written in a rules file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UrlRule {
    pub id: String,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub host_re: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub note: Option<String>,
    /// `[[decoder]]` rules: which decoder reads the destination out of the link.
    #[serde(default)]
    pub decoder: Option<String>,
    /// `[[decoder]]` rules with `decoder = "query"`: the parameters holding the destination.
    #[serde(default)]
    pub params: Vec<String>,
    /// `[[open]]` rules: which images on a matching URL are beacons (see [`Beacon`]). Left
    /// out: `path` for a rule with a path, `invisible` for a host-only rule.
    #[serde(default)]
    pub beacon: Option<Beacon>,
    /// The file this rule came from (for error messages).
    #[serde(skip)]
    pub origin: String,
}

/// When an image whose URL matches an `[[open]]` rule is a beacon.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Beacon {
    /// The rule's path is an open-tracking endpoint: every image there is a beacon, whatever
    /// its size. Needs a `path`.
    Path,
    /// The host also serves the newsletter's own images: only an image nobody can see, or one
    /// whose URL carries a per-recipient token, is a beacon. A visible image with a static URL
    /// stays (it tells the host at most that someone opened a copy, not who).
    Invisible,
    /// Every image on the host is a beacon (a host that serves nothing else).
    Any,
}

impl UrlRule {
    /// How an image matching this rule is judged (`[[open]]` rules).
    pub fn beacon(&self) -> Beacon {
        self.beacon.unwrap_or(if self.path.is_some() {
            Beacon::Path
        } else {
            Beacon::Invisible
        })
    }

    /// The regex for "HOST/PATH?QUERY" subjects.
    fn pattern(&self) -> String {
        let host = if let Some(re) = &self.host_re {
            format!("(?:{re})")
        } else if self.hosts.is_empty() {
            "[^/]*".to_string()
        } else {
            let alts: Vec<String> = self
                .hosts
                .iter()
                .map(|h| regex::escape(&h.trim().trim_start_matches("*.").to_ascii_lowercase()))
                .collect();
            format!("(?:[^/]*\\.)?(?:{})", alts.join("|"))
        };
        let path = match &self.path {
            Some(p) => p.strip_prefix('^').unwrap_or(p).to_string(),
            None => "(?:[/?#]|$)".to_string(),
        };
        format!("^{host}(?:{path})")
    }
}

/// A compiled section of URL rules.
#[derive(Debug, Clone)]
pub struct UrlRuleSet {
    rules: Vec<UrlRule>,
    set: RegexSet,
}

impl UrlRuleSet {
    /// Compile a section. Rules that name hosts come before path-only rules (a stable sort),
    /// so a vendor's own host wins over another vendor's path shape: Klaviyo's
    /// `trk.klclick.com/ls/click?upn=` is Klaviyo, not SendGrid whose link format it uses.
    pub fn compile(rules: Vec<UrlRule>, origin: &str) -> Result<UrlRuleSet, RulesError> {
        let mut rules: Vec<UrlRule> = rules.into_iter().filter(|r| !r.disabled).collect();
        rules.sort_by_key(|r| r.hosts.is_empty() && r.host_re.is_none());
        let patterns: Vec<String> = rules.iter().map(UrlRule::pattern).collect();
        let set = RegexSetBuilder::new(&patterns)
            .size_limit(64 << 20)
            .build()
            .map_err(|e| {
                // Report the bad rule by name (compiling each pattern alone only on this path:
                // doing it always would double the start-up cost of every `trackless filter`).
                rules
                    .iter()
                    .zip(&patterns)
                    .find_map(|(rule, pat)| {
                        regex::Regex::new(pat).err().map(|err| RulesError::Pattern {
                            path: if rule.origin.is_empty() {
                                origin.to_string()
                            } else {
                                rule.origin.clone()
                            },
                            id: rule.id.clone(),
                            message: err.to_string(),
                        })
                    })
                    .unwrap_or_else(|| RulesError::Parse {
                        path: origin.to_string(),
                        message: e.to_string(),
                    })
            })?;
        Ok(UrlRuleSet { rules, set })
    }

    /// Every rule that matches the subject, in the order of [`UrlRuleSet::first_match`].
    pub fn matching<'a>(&'a self, subject: &str) -> impl Iterator<Item = &'a UrlRule> + 'a {
        let hits = if self.rules.is_empty() || !self.set.is_match(subject) {
            Vec::new()
        } else {
            self.set.matches(subject).into_iter().collect()
        };
        hits.into_iter().filter_map(|i| self.rules.get(i))
    }

    /// The first rule (in file order) that matches the URL's "HOST/PATH?QUERY" subject.
    pub fn first_match(&self, subject: &str) -> Option<&UrlRule> {
        if self.rules.is_empty() {
            return None;
        }
        // Most URLs match nothing: a plain is_match answers that without computing the set.
        if !self.set.is_match(subject) {
            return None;
        }
        let m = self.set.matches(subject);
        m.iter().next().and_then(|i| self.rules.get(i))
    }

    pub fn rules(&self) -> &[UrlRule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

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
}

impl RuleFile {
    pub fn parse(text: &str, origin: &str) -> Result<RuleFile, RulesError> {
        let mut file: RuleFile = toml::from_str(text).map_err(|e| RulesError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        for r in file
            .open
            .iter_mut()
            .chain(file.font.iter_mut())
            .chain(file.decoder.iter_mut())
            .chain(file.click.iter_mut())
        {
            r.origin = origin.to_string();
        }
        Ok(file)
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
                Providers::new(ProviderFile {
                    provider: file.provider,
                }),
            )
            .map_err(|message| RulesError::Parse {
                path: origin.to_string(),
                message,
            })?,
        })
    }

    fn default_file() -> Result<RuleFile, RulesError> {
        let mut file = RuleFile::parse(DEFAULT_RULES, "<embedded rules/default.toml>")?;
        file.merge(RuleFile::parse(DEFAULT_ESP, "<embedded rules/esp.toml>")?);
        file.merge(RuleFile::parse(
            DEFAULT_PROVIDERS,
            "<embedded rules/providers.toml>",
        )?);
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
        Ok(rules)
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
        }
    }
}

fn empty_set() -> UrlRuleSet {
    UrlRuleSet {
        rules: Vec::new(),
        set: RegexSet::empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::url::UrlView;

    #[test]
    fn embedded_rules_compile() {
        let file = Rules::default_file().expect("parse");
        let n = file.open.len() + file.font.len();
        let rules = Rules::compile(file, "test").expect("compile");
        assert_eq!(rules.open.len() + rules.font.len(), n);
        assert!(rules.open.len() > 30);
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
