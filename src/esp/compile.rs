//! The `[[esp]]` rules compiled for matching: one pattern set per kind of signal over every
//! provider, header names in a map, DKIM domains in a list.

use super::providers;
use super::rule::EspRule;
use crate::mail::matcher::{PatternSet, Syntax};
use std::collections::HashMap;

/// Header values are matched anywhere, ignoring ASCII case.
const SYNTAX: Syntax = Syntax {
    case_insensitive: true,
    anchored: false,
};

/// A regex per rule for one kind of signal, compiled into one set: one pass per header value.
#[derive(Clone)]
pub(super) struct SignalSet {
    set: PatternSet,
    /// Rule index of each pattern in `set`.
    rule_of: Vec<usize>,
}

impl SignalSet {
    fn build(
        rules: &[EspRule],
        pick: impl Fn(&EspRule) -> Option<&String>,
    ) -> Result<SignalSet, String> {
        let mut patterns = Vec::new();
        let mut rule_of = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if let Some(p) = pick(r) {
                patterns.push(p.clone());
                rule_of.push(i);
            }
        }
        let set = PatternSet::new(&patterns, SYNTAX).map_err(|e| {
            // Name the rule at fault (only on this error path: compiling each pattern alone
            // would double the start-up cost).
            rules
                .iter()
                .find_map(|r| pick(r).and_then(|p| check_one(p, &r.name).err()))
                .unwrap_or_else(|| format!("esp rules: {e}"))
        })?;
        Ok(SignalSet { set, rule_of })
    }

    fn empty() -> SignalSet {
        SignalSet {
            set: PatternSet::empty(),
            rule_of: Vec::new(),
        }
    }

    /// Rules whose pattern matches `text`.
    pub(super) fn matches(&self, text: &str) -> Vec<usize> {
        if self.rule_of.is_empty() || !self.set.is_match(text.as_bytes()) {
            return Vec::new();
        }
        self.set
            .matches(text.as_bytes())
            .into_iter()
            .map(|i| self.rule_of[i])
            .collect()
    }
}

/// Compiled ESP rules and provider facts.
#[derive(Clone)]
pub struct EspRules {
    pub(super) rules: Vec<EspRule>,
    /// Lowercased header name -> rules claiming it; and prefix entries (`X-Kmail-*`).
    pub(super) header_names: HashMap<String, Vec<usize>>,
    pub(super) header_prefixes: Vec<(String, usize)>,
    /// Lowercased header name -> (rule, its pattern in `value_set`).
    pub(super) values: HashMap<String, Vec<(usize, usize)>>,
    /// Every `values` pattern, one set (a header's value is matched once).
    pub(super) value_set: PatternSet,
    pub(super) feedback_id: SignalSet,
    pub(super) return_path: SignalSet,
    pub(super) message_id: SignalSet,
    pub(super) list_unsubscribe: SignalSet,
    pub(super) received: SignalSet,
    pub(super) selector: SignalSet,
    /// (lowercased DKIM domain, rule).
    pub(super) dkim: Vec<(String, usize)>,
    pub providers: providers::Providers,
}

impl std::fmt::Debug for EspRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspRules")
            .field("rules", &self.rules.len())
            .finish()
    }
}

fn check_one(p: &str, name: &str) -> Result<PatternSet, String> {
    PatternSet::new(&[p.to_string()], SYNTAX).map_err(|e| format!("esp {name}: {e}"))
}

impl EspRules {
    pub fn compile(
        rules: Vec<EspRule>,
        providers: providers::Providers,
    ) -> Result<EspRules, String> {
        let rules: Vec<EspRule> = rules.into_iter().filter(|r| !r.disabled).collect();
        let mut header_names: HashMap<String, Vec<usize>> = HashMap::new();
        let mut header_prefixes = Vec::new();
        let mut values: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut value_patterns = Vec::new();
        let mut dkim = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for h in &r.headers {
                let h = h.to_ascii_lowercase();
                match h.strip_suffix('*') {
                    Some(prefix) => header_prefixes.push((prefix.to_string(), i)),
                    None => header_names.entry(h).or_default().push(i),
                }
            }
            for (h, v) in &r.values {
                values
                    .entry(h.to_ascii_lowercase())
                    .or_default()
                    .push((i, value_patterns.len()));
                value_patterns.push(v.clone());
            }
            for d in &r.dkim {
                dkim.push((d.to_ascii_lowercase(), i));
            }
        }
        let value_set = PatternSet::new(&value_patterns, SYNTAX).map_err(|e| {
            rules
                .iter()
                .find_map(|r| {
                    r.values
                        .iter()
                        .find_map(|(_, v)| check_one(v, &r.name).err())
                })
                .unwrap_or_else(|| format!("esp rules: {e}"))
        })?;
        Ok(EspRules {
            value_set,
            feedback_id: SignalSet::build(&rules, |r| r.feedback_id.as_ref())?,
            return_path: SignalSet::build(&rules, |r| r.return_path.as_ref())?,
            message_id: SignalSet::build(&rules, |r| r.message_id.as_ref())?,
            list_unsubscribe: SignalSet::build(&rules, |r| r.list_unsubscribe.as_ref())?,
            received: SignalSet::build(&rules, |r| r.received.as_ref())?,
            selector: SignalSet::build(&rules, |r| r.selector.as_ref())?,
            header_names,
            header_prefixes,
            values,
            dkim,
            rules,
            providers,
        })
    }

    pub fn empty() -> EspRules {
        EspRules::compile(Vec::new(), providers::Providers::default()).unwrap_or_else(|_| {
            EspRules {
                rules: Vec::new(),
                header_names: HashMap::new(),
                header_prefixes: Vec::new(),
                values: HashMap::new(),
                value_set: PatternSet::empty(),
                feedback_id: SignalSet::empty(),
                return_path: SignalSet::empty(),
                message_id: SignalSet::empty(),
                list_unsubscribe: SignalSet::empty(),
                received: SignalSet::empty(),
                selector: SignalSet::empty(),
                dkim: Vec::new(),
                providers: providers::Providers::default(),
            }
        })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Every pattern set of these rules came from an automaton embedded at compile time (true
    /// for the shipped rules; a rules file that changes ESP rules compiles its own).
    pub fn is_embedded(&self) -> bool {
        let signals = [
            &self.feedback_id,
            &self.return_path,
            &self.message_id,
            &self.list_unsubscribe,
            &self.received,
            &self.selector,
        ];
        signals.iter().all(|s| s.set.is_embedded()) && self.value_set.is_embedded()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
