//! URL rules: one `[[open]]`, `[[font]]`, `[[decoder]]` or `[[click]]` entry of a rules file as
//! written, and a section compiled into one pattern set matched against "HOST/PATH?QUERY"
//! subjects ([`crate::mail::url::UrlView`]). The engines match with these; the pipeline loads
//! and merges the files (`core::rules`).

use crate::mail::matcher::{PatternSet, Syntax};
use crate::mail::pattern;
use serde::Deserialize;

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
        pattern::url_pattern(self.host_re.as_deref(), &self.hosts, self.path.as_deref())
    }
}

/// A compiled section of URL rules.
#[derive(Debug, Clone)]
pub struct UrlRuleSet {
    rules: Vec<UrlRule>,
    set: PatternSet,
}

/// URL subjects start with the host: every pattern is anchored there.
const URL_SYNTAX: Syntax = Syntax {
    case_insensitive: false,
    anchored: true,
};

impl UrlRuleSet {
    /// Compile a section. Rules that name hosts come before path-only rules (a stable sort),
    /// so a vendor's own host wins over another vendor's path shape: Klaviyo's
    /// `trk.klclick.com/ls/click?upn=` is Klaviyo, not SendGrid whose link format it uses.
    pub fn compile(rules: Vec<UrlRule>, origin: &str) -> Result<UrlRuleSet, RulesError> {
        let rules: Vec<UrlRule> = rules.into_iter().filter(|r| !r.disabled).collect();
        let named: Vec<bool> = rules
            .iter()
            .map(|r| !r.hosts.is_empty() || r.host_re.is_some())
            .collect();
        let mut slots: Vec<Option<UrlRule>> = rules.into_iter().map(Some).collect();
        let rules: Vec<UrlRule> = pattern::url_order(&named)
            .into_iter()
            .filter_map(|i| slots[i].take())
            .collect();
        let patterns: Vec<String> = rules.iter().map(UrlRule::pattern).collect();
        let set = PatternSet::new(&patterns, URL_SYNTAX).map_err(|e| {
            // Report the bad rule by name (compiling each pattern alone only on this path).
            rules
                .iter()
                .zip(&patterns)
                .find_map(|(rule, pat)| {
                    PatternSet::new(std::slice::from_ref(pat), URL_SYNTAX)
                        .err()
                        .map(|err| RulesError::Pattern {
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

    /// Built from the automaton embedded at compile time (the shipped rules).
    pub fn is_embedded(&self) -> bool {
        self.set.is_embedded()
    }

    /// Every rule that matches the subject, in the order of [`UrlRuleSet::first_match`].
    pub fn matching<'a>(&'a self, subject: &str) -> impl Iterator<Item = &'a UrlRule> + 'a {
        let hits = if self.rules.is_empty() || !self.set.is_match(subject.as_bytes()) {
            Vec::new()
        } else {
            self.set.matches(subject.as_bytes())
        };
        hits.into_iter().filter_map(|i| self.rules.get(i))
    }

    /// The first rule (in file order) that matches the URL's "HOST/PATH?QUERY" subject.
    pub fn first_match(&self, subject: &str) -> Option<&UrlRule> {
        if self.rules.is_empty() {
            return None;
        }
        // Most URLs match nothing: a plain is_match answers that without computing the set.
        if !self.set.is_match(subject.as_bytes()) {
            return None;
        }
        let m = self.set.matches(subject.as_bytes());
        m.first().and_then(|&i| self.rules.get(i))
    }

    /// A section without rules.
    pub fn empty() -> UrlRuleSet {
        UrlRuleSet {
            rules: Vec::new(),
            set: PatternSet::empty(),
        }
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
