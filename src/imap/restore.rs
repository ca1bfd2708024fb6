//! `imap restore`: put kept originals back in place of their clean copies, for the
//! replacements the journal noted since a given time.
//!
//! Per message: note it as restored first (so that no sync cleans it again), move the original
//! from the originals folder back to its folder, then delete the clean copy. A run stopped in
//! between leaves both copies; the next run finds the original already back and deletes the
//! clean copy. An original no longer kept (deleted by hand, or by retention) is reported and
//! its clean copy left.

use super::session::{ImapError, Result, Session};
use super::state::{Replaced, StateDir};
use super::sync::{dispose, hex, quoted, sha256};
use crate::config::Originals;
use crate::mail::header::HEADER as STAMP;

/// What happened to one replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The original is back, its clean copy gone.
    Done,
    /// The original is no longer in the originals folder nor in its folder.
    Missing,
    /// `dry_run`: would be restored.
    Would,
}

/// The message in the selected folder with these bytes (`criteria` narrows the search).
pub(super) async fn find<S: Session>(
    s: &mut S,
    criteria: &str,
    size: Option<u64>,
    sha: &str,
) -> Result<Option<u32>> {
    let candidates = s.search(criteria).await?;
    if candidates.is_empty() {
        return Ok(None);
    }
    for m in s.fetch_meta(&candidates).await? {
        if m.has_flag("\\Deleted") || size.is_some_and(|n| n != m.size) {
            continue;
        }
        if s.fetch_body(m.uid)
            .await?
            .map(|b| hex(&sha256(&b)))
            .as_deref()
            == Some(sha)
        {
            return Ok(Some(m.uid));
        }
    }
    Ok(None)
}

fn by_id(r: &Replaced) -> String {
    match r.message_id.as_deref().and_then(quoted) {
        Some(id) => format!("HEADER Message-ID {id}"),
        None => "ALL".to_string(),
    }
}

/// Restore one replacement.
pub async fn one<S: Session>(
    s: &mut S,
    state: &StateDir,
    r: &Replaced,
    dry_run: bool,
) -> Result<Restored> {
    // Already back (a run that stopped after putting it back)?
    s.select(&r.folder).await?;
    let back = find(s, &by_id(r), Some(r.original_size), &r.original_sha256).await?;
    s.select(&r.originals).await?;
    let kept = find(s, &by_id(r), Some(r.original_size), &r.original_sha256).await?;
    if dry_run {
        return Ok(match (back, kept) {
            (None, None) => Restored::Missing,
            _ => Restored::Would,
        });
    }
    state.add_restored(&r.original_sha256).map_err(|e| {
        ImapError::fatal(format!(
            "cannot write the state in {}: {e}",
            state.path().display()
        ))
    })?;
    match (back, kept) {
        (None, None) => return Ok(Restored::Missing),
        (None, Some(uid)) => dispose(s, &[uid], &Originals::Folder(r.folder.clone())).await?,
        // Copied back by a run that stopped before removing it here (no MOVE).
        (Some(_), Some(uid)) => dispose(s, &[uid], &Originals::Delete).await?,
        (Some(_), None) => {}
    }
    s.select(&r.folder).await?;
    let clean = format!("HEADER {STAMP} \"\" {}", by_id(r));
    let clean = clean.trim_end_matches(" ALL");
    if let Some(uid) = find(s, clean, None, &r.clean_sha256).await? {
        dispose(s, &[uid], &Originals::Delete).await?;
    }
    Ok(Restored::Done)
}
