//! One pass over a folder: every message not yet handled is fetched (BODY.PEEK[], so \Seen
//! is never set by us) and run through `neutralise`; a message that changes is replaced.
//!
//! The replacement never loses a message and never leaves the user two visible copies for
//! long: the clean copy is appended to the same folder with the original's flags and
//! INTERNALDATE, found again (APPENDUID, else a search) and compared byte for byte with what
//! was sent; only then is the original moved to the originals folder (or deleted). A crash or
//! a lost connection between the steps leaves the original, or both: the next run meets the
//! original again, finds its clean copy (our header, the same Message-ID, INTERNALDATE and
//! bytes) and finishes the move instead of appending a second copy.

use super::session::{ImapError, Meta, Result, Session};
use super::state::{FolderState, Replaced, StateDir};
use crate::config::Originals;
use crate::log::time;
use crate::mail::header::{top_block, HEADER as STAMP};
use crate::Policy;
use sha2::{Digest, Sha256};

/// How a folder is synced.
#[derive(Debug, Clone)]
pub struct Options {
    pub originals: Originals,
    /// Larger messages are left alone.
    pub max_size: u64,
    /// Only messages whose INTERNALDATE is on or after this day (unix seconds).
    pub since: Option<i64>,
    /// Say what would change; write nothing (no state either).
    pub dry_run: bool,
    /// Set when the run must end (SIGTERM, Ctrl-C): the message in flight is finished, the
    /// state saved, the rest left for the next run.
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Nothing to remove (or already clean).
    Clean { uid: u32 },
    /// Replaced by its clean copy (`dry_run`: would be).
    Replaced { uid: u32, clean_uid: Option<u32> },
    /// Left alone: a draft, too large, or gone meanwhile.
    Skipped { uid: u32, why: &'static str },
    /// The server refused a step (APPEND over quota…): the original stays, the run goes on,
    /// and the next run tries again.
    Failed { uid: u32, error: String },
}

/// Called for every message handled, with its original bytes and the outcome when it was
/// fetched (for the log).
pub type OnMessage<'a> = dyn FnMut(&Event, Option<(&[u8], &crate::Outcome<'_>)>) + 'a;

/// Per folder totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub seen: u64,
    pub replaced: u64,
    pub clean: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// Save the folder's state after this many messages (and at the end): a crash costs at most
/// this many messages looked at again.
const SAVE_EVERY: usize = 25;

/// Messages whose metadata is fetched in one command.
const META_BATCH: usize = 100;

/// Sync one folder. `each` sees every message handled, with its original bytes when fetched
/// (for the log) and the outcome's bytes.
pub async fn folder<S: Session>(
    s: &mut S,
    folder: &str,
    state: &StateDir,
    policy: &Policy,
    opts: &Options,
    each: &mut OnMessage<'_>,
) -> Result<Totals> {
    let selected = s.select(folder).await?;
    let mut st = state.load(folder);
    if st.uid_validity != selected.uid_validity {
        // A new folder, or the server renumbered it: start over (clean messages are
        // recognised as clean, replaced ones by their copies).
        st = FolderState {
            uid_validity: selected.uid_validity,
            done: 0,
        };
    }
    let mut criteria = format!("UID {}:*", st.done.saturating_add(1));
    if let Some(since) = opts.since {
        criteria.push_str(&format!(" SINCE {}", imap_date(since)));
    }
    let mut uids: Vec<u32> = s
        .search(&criteria)
        .await?
        .into_iter()
        .filter(|&u| u > st.done)
        .collect();
    uids.sort_unstable();
    uids.dedup();
    // Clean copies a stopped run may have left (our header, above the last UID done), by
    // Message-ID: looked up once here rather than searched for at every message.
    let mut copies: std::collections::HashMap<String, Vec<u32>> = Default::default();
    if !uids.is_empty() && !opts.dry_run {
        let stamped: Vec<u32> = s
            .search(&format!(
                "UID {}:* HEADER {STAMP} \"\"",
                st.done.saturating_add(1)
            ))
            .await?
            .into_iter()
            .filter(|&u| u > st.done)
            .collect();
        for chunk in stamped.chunks(META_BATCH) {
            for (uid, head) in s.fetch_headers(chunk).await? {
                copies
                    .entry(message_id(&head).unwrap_or_default())
                    .or_default()
                    .push(uid);
            }
        }
    }
    let mut totals = Totals::default();
    let mut since_save = 0;
    let done_before = st.done;
    let mut held: Option<u32> = None;
    let mut run = Run {
        folder,
        policy,
        opts,
        state,
        restored: state.restored(),
        copies,
        originals_ready: false,
    };
    'chunks: for chunk in uids.chunks(META_BATCH) {
        let mut metas = s.fetch_meta(chunk).await?;
        metas.sort_by_key(|m| m.uid);
        for meta in metas {
            if opts.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break 'chunks;
            }
            totals.seen += 1;
            let event = match message(s, &mut run, &meta, each).await {
                Ok(e) => e,
                Err(e) if e.fatal => return Err(e),
                Err(e) => {
                    let e = Event::Failed {
                        uid: meta.uid,
                        error: e.message,
                    };
                    each(&e, None);
                    e
                }
            };
            match event {
                Event::Clean { .. } => totals.clean += 1,
                Event::Replaced { .. } => totals.replaced += 1,
                Event::Skipped { .. } => totals.skipped += 1,
                Event::Failed { uid, .. } => {
                    totals.failed += 1;
                    // Not done: the state stays below it, so the next run tries again.
                    held = Some(held.map_or(uid, |h: u32| h.min(uid)));
                }
            }
            st.done = st.done.max(meta.uid);
            if let Some(h) = held {
                st.done = st.done.min(h - 1).max(done_before);
            }
            since_save += 1;
            if since_save >= SAVE_EVERY && !opts.dry_run {
                save(state, folder, st)?;
                since_save = 0;
            }
        }
    }
    if !opts.dry_run {
        // Also when nothing was new: a changed UIDVALIDITY is remembered.
        save(state, folder, st)?;
    }
    Ok(totals)
}

fn save(state: &StateDir, folder: &str, st: FolderState) -> Result<()> {
    state.save(folder, st).map_err(|e| {
        ImapError::fatal(format!(
            "cannot write the state in {}: {e}",
            state.path().display()
        ))
    })
}

/// One folder's pass: what every message needs.
struct Run<'a> {
    folder: &'a str,
    policy: &'a Policy,
    opts: &'a Options,
    state: &'a StateDir,
    /// Originals `imap restore` put back (hex SHA-256): left alone.
    restored: std::collections::HashSet<String>,
    /// Messages with our header above the last UID done, by Message-ID ("" without one).
    copies: std::collections::HashMap<String, Vec<u32>>,
    originals_ready: bool,
}

async fn message<S: Session>(
    s: &mut S,
    run: &mut Run<'_>,
    meta: &Meta,
    each: &mut OnMessage<'_>,
) -> Result<Event> {
    let (folder, policy, opts) = (run.folder, run.policy, run.opts);
    let uid = meta.uid;
    let skipped = |why| Event::Skipped { uid, why };
    if meta.has_flag("\\Draft") {
        let e = skipped("draft");
        each(&e, None);
        return Ok(e);
    }
    if meta.has_flag("\\Deleted") {
        let e = skipped("deleted");
        each(&e, None);
        return Ok(e);
    }
    if meta.size > opts.max_size {
        let e = skipped("too-large");
        each(&e, None);
        return Ok(e);
    }
    let Some(raw) = s.fetch_body(uid).await? else {
        let e = skipped("gone");
        each(&e, None);
        return Ok(e);
    };
    let original_sha = hex(&sha256(&raw));
    if run.restored.contains(&original_sha) {
        let e = skipped("restored");
        each(&e, None);
        return Ok(e);
    }
    let outcome = crate::neutralise(&raw, policy);
    if !outcome.changed {
        let e = Event::Clean { uid };
        each(&e, Some((&raw, &outcome)));
        return Ok(e);
    }
    if opts.dry_run {
        let e = Event::Replaced {
            uid,
            clean_uid: None,
        };
        each(&e, Some((&raw, &outcome)));
        return Ok(e);
    }
    let clean: &[u8] = &outcome.bytes;
    let message_id = message_id(&raw);
    // The originals folder first: a server that refuses it refuses before anything is added.
    if let Originals::Folder(to) = &opts.originals {
        if !run.originals_ready {
            s.create(to).await?;
            run.originals_ready = true;
        }
    }
    let candidates = run
        .copies
        .get(message_id.as_deref().unwrap_or(""))
        .cloned()
        .unwrap_or_default();
    let found = find_copy(s, meta, message_id.as_deref(), clean, Some(candidates)).await?;
    let clean_uid = match found {
        // A run before this one appended it and stopped before moving the original.
        Some(found) => found,
        None => append_confirmed(s, folder, meta, message_id.as_deref(), clean).await?,
    };
    let mut keep = opts.originals.clone();
    if let Originals::Folder(to) = &opts.originals {
        // Without MOVE the original is copied, then deleted: a run stopped in between left
        // the copy, which is not made twice.
        if found.is_some()
            && !s.caps().moves
            && already_kept(s, folder, to, meta, message_id.as_deref(), &raw).await?
        {
            keep = Originals::Delete;
        }
    }
    dispose(s, uid, &keep).await?;
    if let Originals::Folder(to) = &opts.originals {
        // For `imap restore`; the replacement itself is done whatever happens here.
        let _ = run.state.journal(&Replaced {
            ts: time::now(),
            folder: folder.to_string(),
            originals: to.clone(),
            message_id: message_id.clone(),
            internal_date: meta.internal_date.clone(),
            original_size: raw.len() as u64,
            original_sha256: original_sha,
            clean_sha256: hex(&sha256(clean)),
        });
    }
    let e = Event::Replaced {
        uid,
        clean_uid: Some(clean_uid),
    };
    each(&e, Some((&raw, &outcome)));
    Ok(e)
}

/// Append the clean copy and make sure the folder holds exactly those bytes.
async fn append_confirmed<S: Session>(
    s: &mut S,
    folder: &str,
    meta: &Meta,
    message_id: Option<&str>,
    clean: &[u8],
) -> Result<u32> {
    let flags: Vec<String> = meta
        .flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .cloned()
        .collect();
    let appended = s.append(folder, &flags, &meta.internal_date, clean).await?;
    let uid = match appended {
        Some(uid) => uid,
        None => find_copy(s, meta, message_id, clean, None)
            .await?
            .ok_or_else(|| {
                ImapError::refused(format!(
                    "UID {}: the clean copy cannot be found after APPEND; the original is kept",
                    meta.uid
                ))
            })?,
    };
    let stored = s.fetch_body(uid).await?;
    if stored.as_deref().map(sha256) != Some(sha256(clean)) {
        // The server changed what we sent (or answered with a wrong UID): take our copy
        // back if it is ours, keep the original.
        if stored.is_some_and(|b| is_ours(&b)) {
            s.mark_deleted(uid).await?;
            if s.caps().uidplus {
                s.uid_expunge(uid).await?;
            }
        }
        return Err(ImapError::refused(format!(
            "UID {}: the server stored the clean copy differently from what was sent; the original is kept",
            meta.uid
        )));
    }
    Ok(uid)
}

/// A clean copy of this message already in the selected folder: our header, the same
/// Message-ID (when it has one), the same INTERNALDATE and size, and the very bytes.
/// `known`: the messages to look at, when already known; else they are searched for.
async fn find_copy<S: Session>(
    s: &mut S,
    meta: &Meta,
    message_id: Option<&str>,
    clean: &[u8],
    known: Option<Vec<u32>>,
) -> Result<Option<u32>> {
    let candidates = match known {
        Some(k) => k,
        None => {
            let mut criteria = format!("HEADER {} \"\"", STAMP);
            if let Some(id) = message_id.and_then(quoted) {
                criteria.push_str(&format!(" HEADER Message-ID {id}"));
            }
            s.search(&criteria).await?
        }
    };
    let candidates: Vec<u32> = candidates.into_iter().filter(|&u| u != meta.uid).collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let when = internal_date(&meta.internal_date);
    let want = sha256(clean);
    for m in s.fetch_meta(&candidates).await? {
        if m.size != clean.len() as u64
            || internal_date(&m.internal_date) != when
            || m.has_flag("\\Deleted")
        {
            continue;
        }
        if s.fetch_body(m.uid).await?.as_deref().map(sha256) == Some(want) {
            return Ok(Some(m.uid));
        }
    }
    Ok(None)
}

/// Is this original already in the originals folder (the very bytes, the same date)? Looks
/// there and selects `folder` again.
async fn already_kept<S: Session>(
    s: &mut S,
    folder: &str,
    to: &str,
    meta: &Meta,
    message_id: Option<&str>,
    raw: &[u8],
) -> Result<bool> {
    let before = s.select(folder).await?.uid_validity;
    s.select(to).await?;
    let criteria = match message_id.and_then(quoted) {
        Some(id) => format!("HEADER Message-ID {id}"),
        None => "ALL".to_string(),
    };
    let candidates = s.search(&criteria).await?;
    let when = internal_date(&meta.internal_date);
    let want = sha256(raw);
    let mut kept = false;
    if !candidates.is_empty() {
        for m in s.fetch_meta(&candidates).await? {
            if m.size == raw.len() as u64
                && internal_date(&m.internal_date) == when
                && !m.has_flag("\\Deleted")
                && s.fetch_body(m.uid).await?.as_deref().map(sha256) == Some(want)
            {
                kept = true;
                break;
            }
        }
    }
    if s.select(folder).await?.uid_validity != before {
        return Err(ImapError::fatal(format!(
            "{folder}: UIDVALIDITY changed during the run; run again"
        )));
    }
    Ok(kept)
}

/// Move the original to the originals folder, or delete it.
pub(super) async fn dispose<S: Session>(s: &mut S, uid: u32, originals: &Originals) -> Result<()> {
    let caps = s.caps();
    if let Originals::Folder(to) = originals {
        if caps.moves {
            return s.uid_move(uid, to).await;
        }
        s.uid_copy(uid, to).await?;
    }
    s.mark_deleted(uid).await?;
    if caps.uidplus {
        return s.uid_expunge(uid).await;
    }
    // Without UID EXPUNGE, EXPUNGE would also remove what the user marked \Deleted: only when
    // ours is the one message so marked. Otherwise it stays marked (most clients hide it).
    let deleted = s.search("DELETED").await?;
    if deleted == [uid] {
        s.expunge().await?;
    }
    Ok(())
}

fn is_ours(message: &[u8]) -> bool {
    let head = top_block(message);
    head.split(|&b| b == b'\n').any(|line| {
        line.len() > STAMP.len()
            && line[..STAMP.len()].eq_ignore_ascii_case(STAMP.as_bytes())
            && line[STAMP.len()] == b':'
    })
}

pub(super) fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The Message-ID of a message, if it has one.
fn message_id(raw: &[u8]) -> Option<String> {
    let head = top_block(raw);
    mail_parser::MessageParser::new()
        .parse_headers(head)
        .and_then(|m| m.message_id().map(|id| id.trim().to_string()))
        .filter(|id| !id.is_empty())
}

/// An IMAP quoted string, when the text can be one (ASCII without controls).
pub(super) fn quoted(s: &str) -> Option<String> {
    if !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `1-Nov-2026`, the date form of SEARCH SINCE.
fn imap_date(ts: i64) -> String {
    let d = time::date(ts);
    let mut it = d.split('-');
    let (y, m, day) = (
        it.next().unwrap_or("1970"),
        it.next().and_then(|m| m.parse::<usize>().ok()).unwrap_or(1),
        it.next().and_then(|d| d.parse::<u32>().ok()).unwrap_or(1),
    );
    format!("{day}-{}-{y}", MONTHS[(m.clamp(1, 12)) - 1])
}

/// The instant of an INTERNALDATE (`30-Nov-2026 21:00:00 +0100`), to compare two of them
/// whatever zone the server wrote them in.
fn internal_date(s: &str) -> Option<i64> {
    let mut parts = s.split_whitespace();
    let date = parts.next()?;
    let clock = parts.next()?;
    let zone = parts.next()?;
    let mut d = date.split('-');
    let day: u32 = d.next()?.trim().parse().ok()?;
    let month = d.next()?;
    let year: i64 = d.next()?.parse().ok()?;
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(month))? + 1;
    let local = time::parse_date(&format!("{year:04}-{m:02}-{day:02}T{clock}"))?;
    let (sign, hhmm) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let n: i64 = hhmm.parse().ok()?;
    Some(local - sign * (n / 100 * 3600 + n % 100 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(imap_date(1_793_491_200), "1-Nov-2026");
        assert_eq!(
            internal_date("01-Nov-2026 01:00:00 +0100"),
            internal_date(" 1-Nov-2026 00:00:00 +0000")
        );
        assert_eq!(
            internal_date("1-Nov-2026 00:00:00 +0000"),
            Some(1_793_491_200)
        );
        assert_eq!(internal_date("1-Foo-2026 00:00:00 +0000"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted("<a\"b@x>").as_deref(), Some("\"<a\\\"b@x>\""));
        assert_eq!(quoted("<ä@x>"), None);
    }
}
