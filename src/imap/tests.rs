//! The replacement protocol against the in-memory server: corpus messages replaced with flags
//! and dates kept, clean ones untouched, reruns do nothing, and a connection dying at any
//! command — before the server acts or after — never loses or duplicates a message.

use super::fake::{field, Conn, Fault, Server};
use super::session::Caps;
use super::state::StateDir;
use super::sync::{self, Options, Totals};
use crate::config::Originals;
use crate::Policy;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        // The replacement is recognised by Message-ID; every corpus message has one but
        // a few deliberately broken ones, which the no-Message-ID test covers.
        .filter(|b| field(b, "Message-ID").is_some())
        .collect()
}

fn scratch(name: &str) -> StateDir {
    let dir = std::env::temp_dir().join(format!(
        "trackless-imap-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    StateDir::new(dir)
}

fn options() -> Options {
    Options {
        originals: Originals::default(),
        max_size: 100 << 20,
        since: None,
        dry_run: false,
        stop: Default::default(),
        round: sync::ROUND,
    }
}

fn run(
    server: &std::rc::Rc<std::cell::RefCell<Server>>,
    fault: Option<Fault>,
    state: &StateDir,
    opts: &Options,
) -> Result<Totals, super::session::ImapError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut conn = Conn::new(server.clone(), fault);
    let policy = Policy::default();
    rt.block_on(sync::folder(
        &mut conn,
        "INBOX",
        state,
        &policy,
        opts,
        &mut |_, _| {},
    ))
}

fn date(i: usize) -> String {
    format!(
        "{:02}-Oct-2026 {:02}:{:02}:00 +0200",
        1 + i % 28,
        i % 24,
        i % 60
    )
}

/// A server holding the corpus in INBOX, every third message \Seen, one \Draft.
fn loaded(caps: Caps) -> (std::rc::Rc<std::cell::RefCell<Server>>, Vec<Vec<u8>>) {
    let server = Server::new(caps);
    let msgs = corpus();
    for (i, m) in msgs.iter().enumerate() {
        let flags: &[&str] = match i % 3 {
            0 => &["\\Seen"],
            1 => &["\\Flagged", "$Label1"],
            _ => &[],
        };
        server.borrow_mut().add("INBOX", flags, &date(i), m);
    }
    (server, msgs)
}

/// A message as the fake server holds it: (UID, bytes, flags, INTERNALDATE).
type Held = (u32, Vec<u8>, Vec<String>, String);

/// The folder's visible messages by Message-ID.
fn visible(server: &Server, folder: &str) -> BTreeMap<String, Vec<Held>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    if let Some(f) = server.folders.get(folder) {
        for m in f
            .msgs
            .iter()
            .filter(|m| !m.flags.iter().any(|f| f == "\\Deleted"))
        {
            let id = field(&m.body, "Message-ID").unwrap_or_default();
            out.entry(id).or_default().push((
                m.uid,
                m.body.clone(),
                m.flags.clone(),
                m.date.clone(),
            ));
        }
    }
    out
}

/// Every original is in INBOX exactly once — clean if it had trackers, byte for byte if it
/// had none — with its flags and date; every replaced one is in the originals folder.
fn check_done(server: &Server, msgs: &[Vec<u8>]) -> usize {
    let policy = Policy::default();
    let inbox = visible(server, "INBOX");
    let originals = visible(server, "Trackless/Originals");
    let mut replaced = 0;
    for (i, m) in msgs.iter().enumerate() {
        let id = field(m, "Message-ID").expect("id");
        let copies = &inbox[&id];
        assert_eq!(copies.len(), 1, "{id}: {} visible copies", copies.len());
        let (_, body, flags, when) = &copies[0];
        assert_eq!(when, &date(i), "{id}: INTERNALDATE kept");
        let want_flags: Vec<&str> = match i % 3 {
            0 => vec!["\\Seen"],
            1 => vec!["\\Flagged", "$Label1"],
            _ => vec![],
        };
        assert_eq!(flags, &want_flags, "{id}: flags kept, \\Seen not added");
        let out = crate::neutralise(m, &policy);
        if out.changed {
            replaced += 1;
            assert_eq!(body, &out.bytes.to_vec(), "{id}: the clean copy");
            let kept = &originals[&id];
            assert_eq!(kept.len(), 1, "{id}: original kept once");
            assert_eq!(&kept[0].1, m, "{id}: the original, byte for byte");
        } else {
            assert_eq!(body, m, "{id}: a clean message is left as it is");
            assert!(!originals.contains_key(&id), "{id}: nothing to keep");
        }
    }
    replaced
}

#[test]
fn sync_replaces_tracked_messages_and_a_rerun_does_nothing() {
    for caps in [
        Caps {
            uidplus: true,
            moves: true,
            idle: true,
            multiappend: true,
            literal_plus: true,
        },
        // A server without UIDPLUS or MOVE: search to confirm, COPY + \Deleted + EXPUNGE.
        Caps::default(),
    ] {
        let (server, msgs) = loaded(caps);
        let state = scratch("plain");
        let t = run(&server, None, &state, &options()).expect("sync");
        let replaced = check_done(&server.borrow(), &msgs);
        assert!(replaced > 20, "the corpus is mostly tracked: {replaced}");
        assert_eq!(t.replaced as usize, replaced);
        assert_eq!(t.seen as usize, msgs.len());
        // Clean messages kept their UIDs.
        let appends = server.borrow().appends;
        assert_eq!(appends, replaced);
        // Rerun: our clean copies are known by UID and not fetched again; nothing is appended.
        let t2 = run(&server, None, &state, &options()).expect("rerun");
        assert_eq!((t2.replaced, t2.seen), (0, 0), "{caps:?}");
        assert_eq!(server.borrow().appends, appends);
        // A third run has nothing new at all.
        let t3 = run(&server, None, &state, &options()).expect("third");
        assert_eq!((t3.replaced, t3.seen <= 1), (0, true), "{t3:?}");
        check_done(&server.borrow(), &msgs);
        let _ = std::fs::remove_dir_all(state.path());
    }
}

#[test]
fn a_dry_run_changes_nothing() {
    let (server, msgs) = loaded(Caps::default());
    let state = scratch("dry");
    let opts = Options {
        dry_run: true,
        ..options()
    };
    let t = run(&server, None, &state, &opts).expect("dry run");
    assert!(t.replaced > 20);
    let srv = server.borrow();
    assert_eq!(srv.appends, 0);
    let inbox: Vec<&Vec<u8>> = srv.folders["INBOX"].msgs.iter().map(|m| &m.body).collect();
    assert_eq!(inbox, msgs.iter().collect::<Vec<_>>());
    assert!(!state.path().exists(), "a dry run writes no state");
}

/// Kill the connection at each command of a run in turn — before the server acts on it, after
/// it acted but before the answer, and with the server dying halfway through it (a MOVE that
/// copied but did not expunge, as Dovecot's does when killed) — on a fresh copy of the mailbox each time, with
/// rounds of 4 messages (and of 1): right after the interruption nothing is lost and at most
/// the round in flight shows twice; the next run leaves every message exactly once, replaced
/// or not, with no second APPEND.
#[test]
fn a_connection_lost_at_any_command_loses_and_duplicates_nothing() {
    for caps in [
        Caps {
            uidplus: true,
            moves: true,
            idle: false,
            multiappend: true,
            literal_plus: false,
        },
        Caps::default(),
    ] {
        for round in [4, 1] {
            let opts = Options { round, ..options() };
            let msgs: Vec<Vec<u8>> = corpus().into_iter().take(10).collect();
            // The commands of an uninterrupted run over these messages.
            let fresh = || {
                let server = Server::new(caps);
                for (i, m) in msgs.iter().enumerate() {
                    let flags: &[&str] = match i % 3 {
                        0 => &["\\Seen"],
                        1 => &["\\Flagged", "$Label1"],
                        _ => &[],
                    };
                    server.borrow_mut().add("INBOX", flags, &date(i), m);
                }
                server
            };
            let server = fresh();
            let state = scratch("count");
            run(&server, None, &state, &opts).expect("clean run");
            let commands = server.borrow().commands;
            let replaced = check_done(&server.borrow(), &msgs);
            assert!(replaced >= 5, "{replaced}");
            let _ = std::fs::remove_dir_all(state.path());
            let mut tried = 0;
            for k in 0..commands {
                for fault in [Fault::Before(k), Fault::After(k), Fault::Halfway(k)] {
                    let server = fresh();
                    let state = scratch("fault");
                    let result = run(&server, Some(fault), &state, &opts);
                    assert!(
                        result.as_ref().is_err_and(|e| e.fatal),
                        "{fault:?}: {result:?}"
                    );
                    {
                        let srv = server.borrow();
                        let inbox = visible(&srv, "INBOX");
                        let kept = visible(&srv, "Trackless/Originals");
                        let mut doubled = 0;
                        for m in &msgs {
                            let id = field(m, "Message-ID").expect("id");
                            let n = inbox.get(&id).map_or(0, Vec::len);
                            let k = kept.get(&id).map_or(0, Vec::len);
                            assert!(n >= 1, "{id} not in INBOX after {fault:?}");
                            assert!(k <= 1, "{id}: kept {k} times after {fault:?}");
                            if n > 1 {
                                doubled += 1;
                            }
                        }
                        assert!(
                            doubled <= round,
                            "{doubled} messages doubled after {fault:?}"
                        );
                    }
                    run(&server, None, &state, &opts).expect("recovery run");
                    assert_eq!(check_done(&server.borrow(), &msgs), replaced, "{fault:?}");
                    assert_eq!(
                        server.borrow().appends,
                        replaced,
                        "a second APPEND after {fault:?}"
                    );
                    let _ = std::fs::remove_dir_all(state.path());
                    tried += 1;
                }
            }
            assert!(
                tried >= 3 * commands && commands > 8,
                "{tried} faults over {commands} commands"
            );
        }
    }
}

fn restore_all(
    server: &std::rc::Rc<std::cell::RefCell<Server>>,
    fault: Option<Fault>,
    state: &StateDir,
) -> Result<usize, super::session::ImapError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut conn = Conn::new(server.clone(), fault);
    rt.block_on(async {
        let mut done = 0;
        for r in state.replacements() {
            if super::restore::one(&mut conn, state, &r, false).await?
                == super::restore::Restored::Done
            {
                done += 1;
            }
        }
        Ok(done)
    })
}

/// After a sync, `restore` puts every original back in INBOX, byte for byte, and removes the
/// clean copies; a later sync leaves the restored messages alone. A restore cut at any
/// command and run again ends the same way.
#[test]
fn restore_puts_the_originals_back_and_sync_leaves_them() {
    for caps in [
        Caps {
            uidplus: true,
            moves: true,
            idle: false,
            multiappend: true,
            literal_plus: false,
        },
        Caps::default(),
    ] {
        let msgs: Vec<Vec<u8>> = corpus().into_iter().take(8).collect();
        let fresh = || {
            let server = Server::new(caps);
            for (i, m) in msgs.iter().enumerate() {
                server.borrow_mut().add("INBOX", &[], &date(i), m);
            }
            server
        };
        let expect_back = |server: &Server| {
            let inbox = visible(server, "INBOX");
            for m in &msgs {
                let id = field(m, "Message-ID").expect("id");
                let copies = &inbox[&id];
                assert_eq!(copies.len(), 1, "{id}: {} copies", copies.len());
                assert_eq!(&copies[0].1, m, "{id}: the original, byte for byte");
            }
            assert!(visible(server, "Trackless/Originals").is_empty());
        };
        // How many commands a whole restore takes.
        let server = fresh();
        let state = scratch("restore");
        run(&server, None, &state, &options()).expect("sync");
        let replaced = state.replacements().len();
        assert!(replaced >= 3, "{replaced}");
        let before = server.borrow().commands;
        assert_eq!(
            restore_all(&server, None, &state).expect("restore"),
            replaced
        );
        let commands = server.borrow().commands - before;
        expect_back(&server.borrow());
        let t = run(&server, None, &state, &options()).expect("sync again");
        assert_eq!(t.replaced, 0, "restored messages are left alone");
        expect_back(&server.borrow());
        let _ = std::fs::remove_dir_all(state.path());

        for k in 0..commands {
            for fault in [Fault::Before(k), Fault::After(k), Fault::Halfway(k)] {
                let server = fresh();
                let state = scratch("restore-fault");
                run(&server, None, &state, &options()).expect("sync");
                let cut = restore_all(&server, Some(fault), &state);
                assert!(cut.is_err(), "{fault:?} was not reached");
                // Nothing lost meanwhile: each message in INBOX or still kept.
                {
                    let srv = server.borrow();
                    let (inbox, kept) =
                        (visible(&srv, "INBOX"), visible(&srv, "Trackless/Originals"));
                    for m in &msgs {
                        let id = field(m, "Message-ID").expect("id");
                        assert!(
                            inbox.contains_key(&id) || kept.contains_key(&id),
                            "{id} lost at {fault:?}"
                        );
                    }
                }
                restore_all(&server, None, &state).expect("restore again");
                expect_back(&server.borrow());
                let _ = std::fs::remove_dir_all(state.path());
            }
        }
    }
}

/// A server that refuses some APPENDs (a size limit, a quota): with MULTIAPPEND the round's
/// one command is refused as a whole, so each message is tried alone; the refused ones keep
/// their originals and are reported, the others are replaced, and a later run (limit lifted)
/// replaces the rest.
#[test]
fn an_append_refused_keeps_its_original_and_the_run_goes_on() {
    for multiappend in [true, false] {
        let (server, msgs) = loaded(Caps {
            uidplus: true,
            moves: true,
            idle: false,
            multiappend,
            literal_plus: true,
        });
        let policy = Policy::default();
        let mut sizes: Vec<usize> = msgs
            .iter()
            .map(|m| crate::neutralise(m, &policy))
            .filter(|o| o.changed)
            .map(|o| o.bytes.len())
            .collect();
        sizes.sort_unstable();
        let limit = sizes[sizes.len() / 2];
        let too_large = sizes.iter().filter(|&&n| n > limit).count();
        server.borrow_mut().append_limit = Some(limit);
        let state = scratch("limit");
        let t = run(&server, None, &state, &options()).expect("sync");
        assert_eq!(t.failed as usize, too_large, "{t:?}");
        assert_eq!(t.replaced as usize, sizes.len() - too_large, "{t:?}");
        {
            let srv = server.borrow();
            let inbox = visible(&srv, "INBOX");
            for m in &msgs {
                let id = field(m, "Message-ID").expect("id");
                assert_eq!(inbox[&id].len(), 1, "{id}");
                if crate::neutralise(m, &policy).bytes.len() > limit {
                    assert_eq!(&inbox[&id][0].1, m, "{id}: refused, the original stays");
                }
            }
        }
        server.borrow_mut().append_limit = None;
        let t2 = run(&server, None, &state, &options()).expect("second sync");
        assert_eq!(t2.replaced as usize, too_large, "{t2:?}");
        check_done(&server.borrow(), &msgs);
        let _ = std::fs::remove_dir_all(state.path());
    }
}

/// Retention deletes the kept originals the journal noted before the cutoff, and nothing
/// else: a message the user filed in the originals folder stays; a second pass finds nothing
/// to do; a restore afterwards reports those originals missing and keeps the clean copies.
#[test]
fn retention_deletes_only_our_originals_past_their_time() {
    let (server, msgs) = loaded(Caps::default());
    let state = scratch("retention");
    run(&server, None, &state, &options()).expect("sync");
    let replaced = state.replacements().len();
    assert!(replaced > 20);
    let mut mine = b"X-Filed-By: the user\r\n".to_vec();
    mine.extend_from_slice(msgs.last().expect("a message"));
    server
        .borrow_mut()
        .add("Trackless/Originals", &[], &date(0), &mine);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut conn = Conn::new(server.clone(), None);
    let now = crate::log::time::now();
    // Not yet due: nothing happens.
    let e = rt
        .block_on(super::retention::expire(&mut conn, &state, now - 3600))
        .expect("expire");
    assert_eq!(e, super::retention::Expired::default());
    assert_eq!(
        visible(&server.borrow(), "Trackless/Originals")
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        replaced + 1
    );
    let e = rt
        .block_on(super::retention::expire(&mut conn, &state, now + 1))
        .expect("expire");
    assert_eq!((e.deleted, e.gone), (replaced, 0));
    {
        let srv = server.borrow();
        let kept = visible(&srv, "Trackless/Originals");
        assert_eq!(kept.len(), 1, "only the user's own message is left");
        assert_eq!(kept.values().next().expect("one")[0].1, mine);
        // The clean copies stay.
        assert_eq!(visible(&srv, "INBOX").len(), msgs.len());
    }
    let e = rt
        .block_on(super::retention::expire(&mut conn, &state, now + 1))
        .expect("again");
    assert_eq!(e, super::retention::Expired::default(), "looked for once");
    assert_eq!(restore_all(&server, None, &state).expect("restore"), 0);
    assert_eq!(visible(&server.borrow(), "INBOX").len(), msgs.len());
    let _ = std::fs::remove_dir_all(state.path());
}
