//! Who did *not* send a message: ESPs whose tracker URLs the body carries although nothing in
//! the headers names them (phishing copies newsletters' HTML with their trackers). The
//! adapters and the log ask here, so that only the pipeline talks to the ESP engine.

use crate::core::policy::Policy;
use crate::core::rules::Rules;
use crate::esp;
use crate::mail::outcome::{Action, Kind, Outcome};

/// ESPs whose trackers `outcome` found (outside forwarded messages) but did not attribute.
pub fn trackers_not_sent_through(outcome: &Outcome<'_>, policy: &Policy) -> Vec<String> {
    let attributed: Vec<&str> = outcome.esp.iter().map(|a| a.name.as_str()).collect();
    let vendors = outcome
        .findings
        .iter()
        .filter(|f| !f.nested && matches!(f.kind, Kind::Pixel | Kind::Link))
        .filter(|f| f.action != Action::Untouched)
        .filter_map(|f| f.vendor.as_deref());
    esp::not_sent_through(vendors, &attributed, &policy.rules.esp)
}

/// The same for a logged message: the vendors of its trackers and the providers named for it,
/// judged with the built-in ESP rules.
pub fn vendors_not_sent_through<'a>(
    tracker_vendors: impl IntoIterator<Item = &'a str>,
    attributed: &[&str],
) -> Vec<String> {
    esp::not_sent_through(tracker_vendors, attributed, &Rules::embedded().esp)
}
