//! Provider facts (`rules/providers.toml`): who runs each ESP or tracker and under which
//! jurisdiction, so reports can say "carried by a US provider".

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    pub legal_entity: String,
    pub jurisdiction: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub parent_jurisdiction: Option<String>,
    #[serde(default)]
    pub us_exposure: Option<bool>,
    #[serde(default)]
    pub eu_entity: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    #[serde(default)]
    pub provider: Vec<Provider>,
}

/// A provider shipped with trackless, as build.rs wrote it: its names, and its entry as JSON,
/// parsed only when a message first names it (a process started per message reads one or
/// two of them, not all).
#[derive(Debug)]
pub struct EmbeddedProvider {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub json: &'static str,
}

#[derive(Debug, Clone)]
enum Slot {
    Embedded(&'static EmbeddedProvider, OnceLock<Option<Provider>>),
    Given(Provider),
}

impl Slot {
    fn name(&self) -> &str {
        match self {
            Slot::Embedded(e, _) => e.name,
            Slot::Given(p) => &p.name,
        }
    }

    fn aliases(&self) -> Vec<&str> {
        match self {
            Slot::Embedded(e, _) => e.aliases.to_vec(),
            Slot::Given(p) => p.aliases.iter().map(String::as_str).collect(),
        }
    }

    fn facts(&self) -> Option<&Provider> {
        match self {
            // Checked by a unit test for every shipped entry; an entry that did not parse
            // would read as unknown facts, never as a failure.
            Slot::Embedded(e, parsed) => parsed
                .get_or_init(|| serde_json::from_str(e.json).ok())
                .as_ref(),
            Slot::Given(p) => Some(p),
        }
    }
}

/// Facts by provider name (and alias), case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    by_name: HashMap<String, usize>,
    list: Vec<Slot>,
}

impl Providers {
    /// The shipped providers, then `given` (from rules files) on top: one with the name of a
    /// shipped provider takes its place, the others are added.
    pub fn new(embedded: &'static [EmbeddedProvider], given: ProviderFile) -> Providers {
        let mut merged: Vec<Slot> = embedded
            .iter()
            .map(|e| Slot::Embedded(e, OnceLock::new()))
            .collect();
        for prov in given.provider {
            match merged
                .iter_mut()
                .find(|s| s.name().eq_ignore_ascii_case(&prov.name))
            {
                Some(slot) => *slot = Slot::Given(prov),
                None => merged.push(Slot::Given(prov)),
            }
        }
        let mut p = Providers::default();
        for slot in merged {
            p.insert(slot);
        }
        p
    }

    fn insert(&mut self, slot: Slot) {
        let name = slot.name().to_ascii_lowercase();
        let aliases: Vec<String> = slot
            .aliases()
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        let idx = match self.by_name.get(&name) {
            Some(&i) => {
                self.list[i] = slot;
                i
            }
            None => {
                self.list.push(slot);
                self.list.len() - 1
            }
        };
        self.by_name.insert(name, idx);
        for a in aliases {
            self.by_name.entry(a).or_insert(idx);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .and_then(|&i| self.list.get(i))
            .and_then(Slot::facts)
    }

    /// Every provider's facts (each shipped entry parsed).
    pub fn all(&self) -> Vec<&Provider> {
        self.list.iter().filter_map(Slot::facts).collect()
    }
}
