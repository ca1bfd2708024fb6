//! Who sent a message, as the attribution engine tells it: providers with a layer, a
//! confidence and the evidence. Plain data, shared by the pipeline, the log and the reports.

use serde::{Deserialize, Serialize};

/// Kinds of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    Header,
    FeedbackId,
    ReturnPath,
    MessageId,
    ListUnsubscribe,
    /// A Received line written before the message reached our MX (forgeable).
    Received,
    /// The hop our own MX recorded.
    ReceivedByUs,
    /// A DKIM-Signature nobody we trust verified.
    Dkim,
    /// A DKIM domain a trusted Authentication-Results header says passed.
    DkimVerified,
    /// A tracker URL shape in the body.
    Tracker,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Header => "header",
            Signal::FeedbackId => "feedback-id",
            Signal::ReturnPath => "return-path",
            Signal::MessageId => "message-id",
            Signal::ListUnsubscribe => "list-unsubscribe",
            Signal::Received => "received",
            Signal::ReceivedByUs => "received-by-us",
            Signal::Dkim => "dkim",
            Signal::DkimVerified => "dkim-verified",
            Signal::Tracker => "tracker",
        }
    }

    pub fn is_infrastructure(self) -> bool {
        matches!(self, Signal::ReceivedByUs | Signal::DkimVerified)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub signal: Signal,
    /// The matching header line (truncated), DKIM domain or tracker URL.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Built and instrumented the mail (Klaviyo over SendGrid, Substack over Mailgun).
    Platform,
    /// Delivered it.
    Carrier,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Platform => "platform",
            Layer::Carrier => "carrier",
        }
    }
}

/// One provider named for a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    pub name: String,
    pub layer: Layer,
    pub confidence: Confidence,
    /// Country of the provider's legal entity (ISO code), "unknown" if not known.
    pub jurisdiction: String,
    /// Who provides the service, and its parent, from the provider facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_entity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// True when the provider or its parent is a US company.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub us_exposure: Option<bool>,
    pub evidence: Vec<Evidence>,
}
