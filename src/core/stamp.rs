//! The `X-Trackless` value: what was done to a message, in one line.

use crate::mail::outcome::{Counts, Finding, Kind};

/// The summary written into `X-Trackless`.
pub fn summary(counts: &Counts, findings: &[Finding], esp: &[String]) -> String {
    let mut parts = vec![format!("pixels={}", counts.pixels)];
    if counts.spacers > 0 {
        parts.push(format!("spacers={}", counts.spacers));
    }
    parts.push(format!("fonts={}", counts.fonts));
    if counts.links_total > 0 {
        parts.push(format!(
            "links={}/{} unwrapped",
            counts.links_unwrapped, counts.links_total
        ));
        if counts.links_cleaned > 0 {
            parts.push(format!("cleaned={}", counts.links_cleaned));
        }
        if counts.links_opaque > 0 {
            parts.push(format!("opaque={}", counts.links_opaque));
        }
    }
    if !esp.is_empty() {
        parts.push(format!("esp={}", esp.join(",")));
    }
    let mut skipped: Vec<&str> = findings
        .iter()
        .filter(|f| f.kind == Kind::Skip)
        .filter_map(|f| f.reason.map(|r| r.as_str()))
        .collect();
    skipped.sort_unstable();
    skipped.dedup();
    if !skipped.is_empty() {
        parts.push(format!("skipped={}", skipped.join(",")));
    }
    parts.join("; ")
}
