//! ESP attribution: which Email Service Provider carried and instrumented a message, with the
//! evidence, a confidence, and who the provider is (legal entity, jurisdiction).
//!
//! Every signal in a message can be forged by its sender. We separate *claims* (ESP headers,
//! Feedback-ID, Return-Path, Message-ID, List-Unsubscribe, tracker URL shapes, unverified DKIM
//! signatures, Received lines written before the message reached us) from *infrastructure*
//! (the Received hop our own MX recorded, DKIM domains a trusted Authentication-Results header
//! verified). Confidence is high when claims and infrastructure agree, medium with
//! infrastructure alone, low with claims alone. No DNS or any other lookup is ever made.
//!
//! - `rule.rs`: the rules as written; `compile.rs`: compiled for matching;
//! - `attribute.rs`: the evidence of one message, confidence and layers;
//! - `providers.rs`: who each provider is (legal entity, jurisdiction).

mod attribute;
mod compile;
pub mod providers;
mod rule;

pub use attribute::{attribute, not_sent_through, summary};
pub use compile::EspRules;
pub use rule::EspRule;
