//! The `[[esp]]` rules as written in a rules file: which headers, values, hosts and DKIM
//! domains name a provider, and the role it usually plays.

use serde::{Deserialize, Serialize};

/// How a provider usually takes part in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs MTAs that deliver mail.
    #[default]
    Carrier,
    /// Builds and instruments mail, hands it to a carrier.
    Platform,
    /// Either, depending on the account (Klaviyo has its own MTA and also sends via others).
    Both,
}

/// One `[[esp]]` rule as written in the rules file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EspRule {
    pub name: String,
    #[serde(default)]
    pub role: Role,
    /// Header names whose presence is a claim; a trailing `*` matches a prefix.
    #[serde(default)]
    pub headers: Vec<String>,
    /// `[header name, regex]` pairs matched against the unfolded value.
    #[serde(default)]
    pub values: Vec<(String, String)>,
    #[serde(default)]
    pub feedback_id: Option<String>,
    #[serde(default)]
    pub return_path: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub list_unsubscribe: Option<String>,
    /// Regex for ESP infrastructure host names in the `from` clause of Received hops.
    #[serde(default)]
    pub received: Option<String>,
    /// DKIM `d=` domains of the ESP itself (sub-domains match).
    #[serde(default)]
    pub dkim: Vec<String>,
    /// DKIM selector shapes typical of the ESP (a claim, on any `d=`).
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub disabled: bool,
}
