//! Which trace headers to believe: the Received hop our own MX recorded and the DKIM domains a
//! trusted Authentication-Results header says passed. Headers only, no lookups.

use crate::mail::trace::{auth_results, Headers, Hop};

/// Which Authentication-Results headers to believe.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// authserv-ids whose Authentication-Results we trust. Empty: trust the one written by
    /// the host that recorded our Received hop (the `by` host of that hop).
    pub authserv_ids: Vec<String>,
    /// Host names of our own MX and relays. Empty: the topmost non-local Received hop is ours.
    pub own_hosts: Vec<String>,
}

/// The Received hop our MX recorded (index among the fields and the hop) and the DKIM domains
/// verified (`dkim=pass`) by an Authentication-Results header we trust.
pub fn trusted_hop(headers: &Headers, trust: &Trust) -> (Option<(usize, Hop)>, Vec<String>) {
    let (fields, names) = (&headers.fields, &headers.names);
    // The hop our MX recorded: the first Received (from the top) that did not come from this
    // machine or from one of our own hosts.
    let mut our_hop: Option<(usize, Hop)> = None;
    for (i, f) in fields.iter().enumerate() {
        if names[i] != "received" {
            continue;
        }
        let hop = Hop::parse(&f.value);
        let from_ours = trust
            .own_hosts
            .iter()
            .any(|h| hop.from.contains(&h.to_ascii_lowercase()));
        if hop.is_local() || from_ours {
            continue;
        }
        our_hop = Some((i, hop));
        break;
    }
    // DKIM domains verified by an Authentication-Results header we trust: one written by our
    // side, i.e. above the first Received line after our hop.
    let mut verified: Vec<String> = Vec::new();
    let limit = match &our_hop {
        Some((i, _)) => (i + 1..fields.len())
            .find(|&j| names[j] == "received")
            .unwrap_or(fields.len()),
        None => 0,
    };
    for (f, name) in fields.iter().zip(names).take(limit) {
        if name != "authentication-results" {
            continue;
        }
        let (id, pass) = auth_results(&f.value);
        let trusted = if trust.authserv_ids.is_empty() {
            our_hop
                .as_ref()
                .is_some_and(|(_, h)| !h.by.is_empty() && h.by == id)
        } else {
            trust
                .authserv_ids
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&id))
        };
        if trusted {
            verified.extend(pass);
        }
    }
    (our_hop, verified)
}
