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
//!
//! Messages go in rounds (25 by default): bodies fetched in one command, clean copies
//! appended in one (MULTIAPPEND, else one by one) and checked in one, originals moved in one.
//! A stopped run thus leaves at most one round of pairs, which the next run finishes.

use super::session::{ImapError, Meta, Result, Session, ToAppend};
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
    /// Set when the run must end (SIGTERM, Ctrl-C): the round in flight is finished, the
    /// state saved, the rest left for the next run.
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Messages handled together (fetched, appended, moved in one command each).
    pub round: usize,
}

/// Messages per round by default: a stopped run leaves at most this many pairs to finish.
pub const ROUND: usize = 25;

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

/// Messages whose metadata is fetched in one command.
const META_BATCH: usize = 100;

/// At most this many bytes of messages are fetched, or appended, in one command.
const ROUND_BYTES: u64 = 4 << 20;

/// Sync one folder. `each` sees every message handled, with its original bytes when fetched
/// (for the log) and the outcome's bytes.
///
/// Messages go in rounds of up to `opts.round` (and `ROUND_BYTES`): their bodies fetched in
/// one command, the clean copies appended in one (MULTIAPPEND) and checked in one, the
/// originals moved in one. A run stopped within a round leaves its originals, some with their
/// clean copies beside them; the next run finishes those pairs.
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
            own: Vec::new(),
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
    // Our own clean copies from earlier passes are not looked at again.
    let own: std::collections::HashSet<u32> = st.own.iter().copied().collect();
    let (mine, uids): (Vec<u32>, Vec<u32>) = uids.into_iter().partition(|u| own.contains(u));
    let mut stopped = false;
    let mut totals = Totals::default();
    let done_before = st.done;
    let mut held: Option<u32> = None;
    let mut run = Run {
        folder,
        policy,
        opts,
        state,
        restored: state.restored(),
        copies: None,
        done_before,
        originals_ready: false,
    };
    'chunks: for chunk in uids.chunks(META_BATCH) {
        let mut metas = s.fetch_meta(chunk).await?;
        metas.sort_by_key(|m| m.uid);
        let mut rest = &metas[..];
        while !rest.is_empty() {
            if opts.stop.load(std::sync::atomic::Ordering::Relaxed) {
                stopped = true;
                break 'chunks;
            }
            // A round: up to `opts.round` messages and ROUND_BYTES (at least one message).
            let mut n = 0;
            let mut bytes = 0;
            while n < rest.len() && n < opts.round.max(1) {
                bytes += rest[n].size.min(opts.max_size);
                if n > 0 && bytes > ROUND_BYTES {
                    break;
                }
                n += 1;
            }
            let (group, after) = rest.split_at(n);
            rest = after;
            let events = round(s, &mut run, group, each).await?;
            for (meta, event) in group.iter().zip(events) {
                totals.seen += 1;
                match event {
                    Event::Clean { .. } => totals.clean += 1,
                    Event::Replaced { clean_uid, .. } => {
                        totals.replaced += 1;
                        st.own.extend(clean_uid);
                    }
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
            }
            if !opts.dry_run {
                save(state, folder, &st)?;
            }
        }
    }
    // Every other UID of the pass handled: the skipped copies are done too.
    if !stopped && held.is_none() {
        if let Some(&last) = mine.iter().max() {
            st.done = st.done.max(last);
        }
    }
    let done = st.done;
    st.own.retain(|&u| u > done);
    if !opts.dry_run {
        // Also when nothing was new: a changed UIDVALIDITY is remembered.
        save(state, folder, &st)?;
    }
    Ok(totals)
}

fn save(state: &StateDir, folder: &str, st: &FolderState) -> Result<()> {
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
    /// Messages with our header above the last UID done when the pass began, by Message-ID
    /// ("" without one): the clean copies a stopped run may have left. Looked up once, when
    /// the first message needs replacing.
    copies: Option<std::collections::HashMap<String, Vec<u32>>>,
    done_before: u32,
    originals_ready: bool,
}

/// A fetched message, hashed and run through `neutralise` (None: the user restored it).
struct Prepared<'r> {
    uid: u32,
    raw: &'r [u8],
    original_sha: String,
    outcome: Option<crate::Outcome<'r>>,
}

/// Hash and neutralise a round's messages, on as many threads as there are cores (at most 4):
/// with one connection the rewriting, not the server, is what a round waits for.
fn prepare<'r>(bodies: &'r [(u32, Vec<u8>)], run: &Run<'_>) -> Vec<Prepared<'r>> {
    let one = |(uid, raw): &'r (u32, Vec<u8>)| {
        let original_sha = hex(&sha256(raw));
        let outcome =
            (!run.restored.contains(&original_sha)).then(|| crate::neutralise(raw, run.policy));
        Prepared {
            uid: *uid,
            raw,
            original_sha,
            outcome,
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(bodies.len());
    if threads <= 1 {
        return bodies.iter().map(one).collect();
    }
    let per = bodies.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = bodies
            .chunks(per)
            .map(|chunk| scope.spawn(move || chunk.iter().map(one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// A message of the round that needs replacing.
struct Todo<'r> {
    /// Its place in the round.
    at: usize,
    meta: &'r Meta,
    raw: &'r [u8],
    outcome: crate::Outcome<'r>,
    message_id: Option<String>,
    original_sha: String,
    /// Its clean copy in the folder, once there and checked.
    clean_uid: Option<u32>,
    /// Found from an earlier run rather than appended now.
    recovered: bool,
    /// Why it cannot be replaced this time (the server refused a step).
    failed: Option<String>,
}

/// One round: what happened to each message, in order. An error here is fatal (the
/// connection); a step the server refuses fails only the messages it concerns.
async fn round<S: Session>(
    s: &mut S,
    run: &mut Run<'_>,
    metas: &[Meta],
    each: &mut OnMessage<'_>,
) -> Result<Vec<Event>> {
    let opts = run.opts;
    let mut events: Vec<Option<Event>> = vec![None; metas.len()];
    let mut wanted = Vec::new();
    for (i, meta) in metas.iter().enumerate() {
        let why = if meta.has_flag("\\Draft") {
            "draft"
        } else if meta.has_flag("\\Deleted") {
            "deleted"
        } else if meta.size > opts.max_size {
            "too-large"
        } else {
            wanted.push(meta.uid);
            continue;
        };
        events[i] = Some(Event::Skipped { uid: meta.uid, why });
    }
    let bodies = if wanted.is_empty() {
        Vec::new()
    } else {
        match s.fetch_bodies(&wanted).await {
            Ok(b) => b,
            Err(e) if e.fatal => return Err(e),
            Err(e) => {
                // Refused: the whole round is tried again by the next run.
                for (i, meta) in metas.iter().enumerate() {
                    let ev = events[i].take().unwrap_or(Event::Failed {
                        uid: meta.uid,
                        error: format!("UID {}: {}", meta.uid, e.message),
                    });
                    each(&ev, None);
                    events[i] = Some(ev);
                }
                return Ok(events.into_iter().flatten().collect());
            }
        }
    };
    let mut prepared = prepare(&bodies, run);
    let mut todo: Vec<Todo<'_>> = Vec::new();
    for (i, meta) in metas.iter().enumerate() {
        if let Some(e) = &events[i] {
            each(e, None);
            continue;
        }
        let uid = meta.uid;
        let Some(at) = prepared.iter().position(|p| p.uid == uid) else {
            let e = Event::Skipped { uid, why: "gone" };
            each(&e, None);
            events[i] = Some(e);
            continue;
        };
        let Prepared {
            raw,
            original_sha,
            outcome,
            ..
        } = prepared.swap_remove(at);
        let Some(outcome) = outcome else {
            let e = Event::Skipped {
                uid,
                why: "restored",
            };
            each(&e, None);
            events[i] = Some(e);
            continue;
        };
        if !outcome.changed || opts.dry_run {
            let e = if outcome.changed {
                Event::Replaced {
                    uid,
                    clean_uid: None,
                }
            } else {
                Event::Clean { uid }
            };
            each(&e, Some((raw, &outcome)));
            events[i] = Some(e);
            continue;
        }
        todo.push(Todo {
            at: i,
            meta,
            raw,
            message_id: message_id(raw),
            original_sha,
            outcome,
            clean_uid: None,
            recovered: false,
            failed: None,
        });
    }
    if !todo.is_empty() {
        match replace(s, run, &mut todo).await {
            Ok(()) => {}
            Err(e) if e.fatal => return Err(e),
            // A step refused for the round (a MOVE, a SEARCH): its originals stay, with their
            // clean copies beside them for the next run to finish.
            Err(e) => {
                for t in todo.iter_mut().filter(|t| t.failed.is_none()) {
                    t.failed = Some(format!(
                        "UID {}: {}; the original is kept",
                        t.meta.uid, e.message
                    ));
                }
            }
        }
    }
    for t in todo {
        let uid = t.meta.uid;
        let e = match (t.failed, t.clean_uid) {
            (None, Some(clean_uid)) => Event::Replaced {
                uid,
                clean_uid: Some(clean_uid),
            },
            (failed, _) => Event::Failed {
                uid,
                error: failed.unwrap_or_else(|| error_or(uid)),
            },
        };
        match &e {
            Event::Replaced { .. } => each(&e, Some((t.raw, &t.outcome))),
            _ => each(&e, None),
        }
        events[t.at] = Some(e);
    }
    Ok(events
        .into_iter()
        .zip(metas)
        .map(|(e, m)| {
            e.unwrap_or(Event::Failed {
                uid: m.uid,
                error: error_or(m.uid),
            })
        })
        .collect())
}

fn error_or(uid: u32) -> String {
    format!("UID {uid}: not replaced; the original is kept")
}

/// Replace the round's changed messages: find the copies an earlier run left, append the
/// others, check every copy holds the very bytes, then move (or delete) the originals.
async fn replace<S: Session>(s: &mut S, run: &mut Run<'_>, todo: &mut [Todo<'_>]) -> Result<()> {
    let folder = run.folder;
    // The originals folder first: a server that refuses it refuses before anything is added.
    if let Originals::Folder(to) = &run.opts.originals {
        if !run.originals_ready {
            if let Err(e) = s.create(to).await {
                if e.fatal {
                    return Err(e);
                }
                for t in todo.iter_mut() {
                    t.failed = Some(e.message.clone());
                }
                return Ok(());
            }
            run.originals_ready = true;
        }
    }
    // Copies a stopped run left.
    if run.copies.is_none() {
        run.copies = Some(stamped(s, run.done_before).await?);
    }
    for t in todo.iter_mut() {
        let known = run
            .copies
            .as_ref()
            .and_then(|c| c.get(t.message_id.as_deref().unwrap_or("")))
            .cloned()
            .unwrap_or_default();
        if known.is_empty() {
            continue;
        }
        if let Some(uid) = find_copy(
            s,
            t.meta,
            t.message_id.as_deref(),
            &t.outcome.bytes,
            Some(known),
        )
        .await?
        {
            t.clean_uid = Some(uid);
            t.recovered = true;
        }
    }
    // Append the others: in one command when the server takes several, else one by one
    // (also when the one command was refused: each message then gets its own answer).
    let flags: Vec<Vec<String>> = todo.iter().map(|t| kept_flags(t.meta)).collect();
    let need: Vec<usize> = (0..todo.len())
        .filter(|&i| todo[i].clean_uid.is_none())
        .collect();
    let mut appended: Vec<(usize, Option<u32>)> = Vec::new();
    let item = |i: usize| ToAppend {
        flags: &flags[i],
        internal_date: &todo[i].meta.internal_date,
        message: &todo[i].outcome.bytes,
    };
    let mut together = false;
    if need.len() > 1 && s.caps().multiappend {
        let items: Vec<ToAppend<'_>> = need.iter().map(|&i| item(i)).collect();
        match s.append(folder, &items).await {
            Ok(uids) => {
                together = true;
                for (k, &i) in need.iter().enumerate() {
                    appended.push((i, uids.as_ref().map(|u| u[k])));
                }
            }
            Err(e) if e.fatal => return Err(e),
            Err(_) => {}
        }
    }
    let mut refused = Vec::new();
    if !together {
        for &i in &need {
            match s.append(folder, &[item(i)]).await {
                Ok(uids) => appended.push((i, uids.and_then(|u| u.first().copied()))),
                Err(e) if e.fatal => return Err(e),
                Err(e) => refused.push((i, e.message)),
            }
        }
    }
    for (i, why) in refused {
        todo[i].failed = Some(format!(
            "UID {}: {why}; the original is kept",
            todo[i].meta.uid
        ));
    }
    // Without APPENDUID: find each copy (our header, Message-ID, date, bytes).
    let mut check = Vec::new();
    for (i, uid) in appended {
        let uid = match uid {
            Some(uid) => Some(uid),
            None => {
                let t = &todo[i];
                find_copy(s, t.meta, t.message_id.as_deref(), &t.outcome.bytes, None).await?
            }
        };
        match uid {
            Some(uid) => check.push((i, uid)),
            None => {
                todo[i].failed = Some(format!(
                    "UID {}: the clean copy cannot be found after APPEND; the original is kept",
                    todo[i].meta.uid
                ))
            }
        }
    }
    // The copies hold exactly what was sent (one FETCH for the round).
    if !check.is_empty() {
        let uids: Vec<u32> = check.iter().map(|&(_, u)| u).collect();
        let stored = s.fetch_bodies(&uids).await?;
        for (i, uid) in check {
            let got = stored.iter().find(|(u, _)| *u == uid).map(|(_, b)| &b[..]);
            if got.map(sha256) == Some(sha256(&todo[i].outcome.bytes)) {
                todo[i].clean_uid = Some(uid);
                continue;
            }
            // The server changed what we sent (or answered with a wrong UID): take our copy
            // back if it is ours, keep the original.
            if got.is_some_and(is_ours) {
                s.mark_deleted(&[uid]).await?;
                if s.caps().uidplus {
                    s.uid_expunge(&[uid]).await?;
                }
            }
            todo[i].failed = Some(format!(
                "UID {}: the server stored the clean copy differently from what was sent; the original is kept",
                todo[i].meta.uid
            ));
        }
    }
    // The originals: moved (or deleted) together once their copies are in place.
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for t in todo
        .iter()
        .filter(|t| t.failed.is_none() && t.clean_uid.is_some())
    {
        match &run.opts.originals {
            Originals::Folder(to) => {
                // A run stopped between copying and deleting (COPY, then STORE \Deleted; or
                // a MOVE cut short by the server dying — Dovecot copies, then expunges) left
                // the copy, which is not made twice.
                if t.recovered
                    && already_kept(s, folder, to, t.meta, t.message_id.as_deref(), t.raw).await?
                {
                    delete.push(t.meta.uid);
                } else {
                    keep.push(t.meta.uid);
                }
            }
            Originals::Delete => delete.push(t.meta.uid),
        }
    }
    if let Originals::Folder(to) = &run.opts.originals {
        dispose(s, &keep, &Originals::Folder(to.clone())).await?;
    }
    dispose(s, &delete, &Originals::Delete).await?;
    if let Originals::Folder(to) = &run.opts.originals {
        // For `imap restore`; the replacement itself is done whatever happens here.
        let notes: Vec<Replaced> = todo
            .iter()
            .filter(|t| t.failed.is_none() && t.clean_uid.is_some())
            .map(|t| Replaced {
                ts: time::now(),
                folder: folder.to_string(),
                originals: to.clone(),
                message_id: t.message_id.clone(),
                internal_date: t.meta.internal_date.clone(),
                original_size: t.raw.len() as u64,
                original_sha256: t.original_sha.clone(),
                clean_sha256: hex(&sha256(&t.outcome.bytes)),
            })
            .collect();
        let _ = run.state.journal(&notes);
    }
    Ok(())
}

/// The flags an original hands to its clean copy (\Recent is the server's).
fn kept_flags(meta: &Meta) -> Vec<String> {
    meta.flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .cloned()
        .collect()
}

/// Messages with our header above `done`, by Message-ID.
async fn stamped<S: Session>(
    s: &mut S,
    done: u32,
) -> Result<std::collections::HashMap<String, Vec<u32>>> {
    let mut copies: std::collections::HashMap<String, Vec<u32>> = Default::default();
    let uids: Vec<u32> = s
        .search(&format!(
            "UID {}:* HEADER {STAMP} \"\"",
            done.saturating_add(1)
        ))
        .await?
        .into_iter()
        .filter(|&u| u > done)
        .collect();
    for chunk in uids.chunks(META_BATCH) {
        for (uid, head) in s.fetch_headers(chunk).await? {
            copies
                .entry(message_id(&head).unwrap_or_default())
                .or_default()
                .push(uid);
        }
    }
    Ok(copies)
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

/// Move these originals to the originals folder, or delete them.
pub(super) async fn dispose<S: Session>(
    s: &mut S,
    uids: &[u32],
    originals: &Originals,
) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let caps = s.caps();
    if let Originals::Folder(to) = originals {
        if caps.moves {
            return s.uid_move(uids, to).await;
        }
        s.uid_copy(uids, to).await?;
    }
    s.mark_deleted(uids).await?;
    if caps.uidplus {
        return s.uid_expunge(uids).await;
    }
    // Without UID EXPUNGE, EXPUNGE would also remove what the user marked \Deleted: only when
    // every message so marked is ours. Otherwise they stay marked (most clients hide them).
    let deleted = s.search("DELETED").await?;
    if deleted.iter().all(|u| uids.contains(u)) {
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
    crate::log::originals::hex(d)
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
