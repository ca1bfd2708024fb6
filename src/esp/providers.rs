//! Provider facts (`rules/providers.toml`): who runs each ESP or tracker and under which
//! jurisdiction, so reports can say "carried by a US provider".

use serde::Deserialize;
use std::collections::HashMap;

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

/// Facts by provider name (and alias), case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    by_name: HashMap<String, usize>,
    list: Vec<Provider>,
}

impl Providers {
    pub fn new(file: ProviderFile) -> Providers {
        let mut p = Providers::default();
        for prov in file.provider {
            p.insert(prov);
        }
        p
    }

    pub fn insert(&mut self, prov: Provider) {
        let idx = match self.by_name.get(&prov.name.to_ascii_lowercase()) {
            Some(&i) => {
                self.list[i] = prov.clone();
                i
            }
            None => {
                self.list.push(prov.clone());
                self.list.len() - 1
            }
        };
        self.by_name.insert(prov.name.to_ascii_lowercase(), idx);
        for a in &prov.aliases {
            self.by_name.entry(a.to_ascii_lowercase()).or_insert(idx);
        }
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .and_then(|&i| self.list.get(i))
    }

    pub fn all(&self) -> &[Provider] {
        &self.list
    }
}
