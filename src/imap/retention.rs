//! Kept originals are deleted once `originals_retention` has passed since their replacement.
//!
//! Only originals the journal noted are ever deleted, each found in its originals folder by
//! Message-ID, size and SHA-256: a message the user put in that folder stays. Each one done
//! (deleted, or no longer there) is noted, so that it is looked for once.

use super::restore::find;
use super::session::{Result, Session};
use super::state::{Replaced, StateDir};
use super::sync::{dispose, quoted};
use crate::config::Originals;
use std::collections::BTreeMap;

/// What a pass of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Originals deleted.
    pub deleted: usize,
    /// Originals already gone (deleted by hand, or put back by `imap restore`).
    pub gone: usize,
}

/// Delete the kept originals of replacements made before `cutoff` (unix seconds).
pub async fn expire<S: Session>(s: &mut S, state: &StateDir, cutoff: i64) -> Result<Expired> {
    let done = state.expired();
    let mut by_folder: BTreeMap<&str, Vec<&Replaced>> = BTreeMap::new();
    let journal = state.replacements();
    for r in journal
        .iter()
        .filter(|r| r.ts < cutoff && !done.contains(&r.original_sha256))
    {
        by_folder.entry(&r.originals).or_default().push(r);
    }
    let mut out = Expired::default();
    for (folder, entries) in by_folder {
        if s.select(folder).await.is_err() {
            // No originals folder any more: nothing of ours to delete there.
            for r in &entries {
                note(state, &r.original_sha256)?;
                out.gone += 1;
            }
            continue;
        }
        for chunk in entries.chunks(50) {
            let mut uids = Vec::new();
            let mut shas = Vec::new();
            for r in chunk {
                let criteria = match r.message_id.as_deref().and_then(quoted) {
                    Some(id) => format!("HEADER Message-ID {id}"),
                    None => "ALL".to_string(),
                };
                match find(s, &criteria, Some(r.original_size), &r.original_sha256).await? {
                    Some(uid) => {
                        uids.push(uid);
                        out.deleted += 1;
                    }
                    None => out.gone += 1,
                }
                shas.push(&r.original_sha256);
            }
            dispose(s, &uids, &Originals::Delete).await?;
            for sha in shas {
                note(state, sha)?;
            }
        }
    }
    Ok(out)
}

fn note(state: &StateDir, sha: &str) -> Result<()> {
    state.add_expired(sha).map_err(|e| {
        super::session::ImapError::fatal(format!(
            "cannot write the state in {}: {e}",
            state.path().display()
        ))
    })
}
