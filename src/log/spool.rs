//! The one-shot writers' side door into a SQLite log: `filter`, `pipe` and `inspect` run once
//! per message (from Sieve, procmail, a Postfix pipe), and opening SQLite, writing and
//! checkpointing cost them more than the rewrite itself. They append their record as one
//! line of JSON to `LOG.spool` beside the log (0600, one `write` under an exclusive `flock`)
//! and the next open of the log by anything else — `report`, `batch`, `imap`, a daemon —
//! moves the spooled records into the log first.
//!
//! Exactly once, crash or not: the importer renames the spool to a name of its own
//! (`LOG.spool.<time>-<pid>.importing`), holds a lock on it while it inserts the records and,
//! in the same transaction, that name into `spool_import`; only then is the file removed. A
//! file left behind by an importer that died is imported by the next one unless its name is
//! already recorded (then it is only removed); one still locked is another importer's.

use super::record::Record;
use super::store::{Store, StoreError};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The spool of the log at `log`.
pub fn path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".spool");
    PathBuf::from(name)
}

fn lock(f: &File, wait: bool) -> bool {
    use std::os::fd::AsRawFd;
    let op = libc::LOCK_EX | if wait { 0 } else { libc::LOCK_NB };
    // SAFETY: flock on a descriptor we own; no memory is involved.
    unsafe { libc::flock(f.as_raw_fd(), op) == 0 }
}

/// Append `record` to the spool of the log at `log` (creating the directory 0700 and the
/// spool 0600 as needed).
pub fn append(log: &Path, record: &Record) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
    }
    let spool = path(log);
    // An importer may rename the spool between our open and our lock: then the file we hold
    // is no longer the spool, and we open the new one.
    for _ in 0..8 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&spool)?;
        if !lock(&f, true) {
            return Err(std::io::Error::last_os_error());
        }
        let same = match (f.metadata(), std::fs::metadata(&spool)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            f.write_all(&line)?;
            super::store::give_to_directory_owner(&spool);
            return Ok(()); // closing the file releases the lock
        }
    }
    Err(std::io::Error::other("the spool kept being replaced"))
}

/// Move every spooled record into `store`. Returns how many were imported; lines that do not
/// read as a record are skipped (and counted in the warning logged).
pub fn import(store: &mut Store, log: &Path) -> Result<usize, StoreError> {
    let spool = path(log);
    let io = |source| StoreError::Io {
        path: spool.display().to_string(),
        source,
    };
    let mut imported = 0;
    // Files earlier importers left behind, then the spool itself.
    for leftover in leftovers(&spool) {
        imported += import_file(store, &leftover)?;
    }
    let Ok(f) = File::open(&spool) else {
        return Ok(imported); // no spool: the usual case
    };
    if !lock(&f, true) {
        return Err(io(std::io::Error::last_os_error()));
    }
    let mut name = spool.as_os_str().to_owned();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    name.push(format!(".{nanos}-{}.importing", std::process::id()));
    let mine = PathBuf::from(name);
    match std::fs::rename(&spool, &mine) {
        Ok(()) => {}
        // Another importer took it between our open and our lock.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(imported),
        Err(e) => return Err(io(e)),
    }
    drop(f);
    imported += import_file(store, &mine)?;
    Ok(imported)
}

fn leftovers(spool: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(base)) = (spool.parent(), spool.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = base.to_owned();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".importing")
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Import one renamed spool file unless another importer holds it or it was imported already,
/// then remove it.
fn import_file(store: &mut Store, file: &Path) -> Result<usize, StoreError> {
    let io = |source| StoreError::Io {
        path: file.display().to_string(),
        source,
    };
    let mut f = match File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    if !lock(&f, false) {
        return Ok(0); // another importer's, in progress
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if store.spool_imported(&name)? {
        let _ = std::fs::remove_file(file);
        return Ok(0);
    }
    let mut text = Vec::new();
    f.read_to_end(&mut text).map_err(io)?;
    let mut records = Vec::new();
    let mut bad = 0;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Record>(line) {
            Ok(r) => records.push(r),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        tracing::warn!(
            file = %file.display(),
            bad,
            "spooled lines that are not records were skipped"
        );
    }
    store.insert_spooled(&records, &name)?;
    let _ = std::fs::remove_file(file);
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::{Keep, Mode};

    fn record(n: i64) -> Record {
        let raw = format!(
            "From: news{n}@shop.example\r\nMessage-ID: <{n}@shop.example>\r\nSubject: s\r\n\r\nhi\r\n"
        );
        let out = crate::neutralise(raw.as_bytes(), &crate::Policy::default());
        Record::new(
            raw.as_bytes(),
            &out,
            Mode::Filter,
            None,
            &[],
            Keep::default(),
            1_700_000_000 + n,
        )
    }

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("trackless-spool-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn count(store: &Store) -> i64 {
        store
            .conn()
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn appended_records_are_imported_once_on_open() {
        let dir = Scratch::new("once");
        let log = dir.path().join("state/log.sqlite");
        for n in 0..3 {
            append(&log, &record(n)).unwrap();
        }
        let meta = std::fs::metadata(path(&log)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(!log.exists(), "a spooled write does not create the log");
        let store = Store::open(&log).unwrap();
        assert_eq!(count(&store), 3);
        assert!(!path(&log).exists());
        drop(store);
        let store = Store::open(&log).unwrap();
        assert_eq!(count(&store), 3);
    }

    #[test]
    fn a_leftover_already_imported_is_removed_not_imported_again() {
        let dir = Scratch::new("leftover");
        let log = dir.path().join("log.sqlite");
        append(&log, &record(1)).unwrap();
        let mut store = Store::open(&log).unwrap();
        assert_eq!(count(&store), 1);
        // An importer that died after its commit, before removing its file.
        let done = dir.path().join("log.sqlite.spool.1-1.importing");
        std::fs::write(&done, serde_json::to_vec(&record(2)).unwrap()).unwrap();
        store
            .insert_spooled(&[record(2)], "log.sqlite.spool.1-1.importing")
            .unwrap();
        // One that died before it.
        let undone = dir.path().join("log.sqlite.spool.2-2.importing");
        std::fs::write(&undone, serde_json::to_vec(&record(3)).unwrap()).unwrap();
        assert_eq!(count(&store), 2);
        assert_eq!(import(&mut store, &log).unwrap(), 1);
        assert_eq!(count(&store), 3);
        assert!(!done.exists() && !undone.exists());
    }

    #[test]
    fn writers_and_importers_at_once_lose_and_repeat_nothing() {
        let dir = Scratch::new("race");
        let log = dir.path().join("log.sqlite");
        drop(Store::open(&log).unwrap());
        let rec = record(7);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..150 {
                        append(&log, &rec).unwrap();
                    }
                });
            }
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..20 {
                        drop(Store::open(&log).unwrap());
                    }
                });
            }
        });
        let store = Store::open(&log).unwrap();
        assert_eq!(count(&store), 600);
        assert_eq!(leftovers(&path(&log)).len(), 0);
    }

    #[test]
    fn a_locked_leftover_is_left_to_its_importer_and_bad_lines_are_skipped() {
        let dir = Scratch::new("locked");
        let log = dir.path().join("log.sqlite");
        let mut store = Store::open(&log).unwrap();
        let busy = dir.path().join("log.sqlite.spool.3-3.importing");
        std::fs::write(&busy, serde_json::to_vec(&record(4)).unwrap()).unwrap();
        let held = File::open(&busy).unwrap();
        assert!(lock(&held, false));
        assert_eq!(import(&mut store, &log).unwrap(), 0);
        assert!(busy.exists());
        drop(held);
        let mut spool = serde_json::to_vec(&record(5)).unwrap();
        spool.extend_from_slice(b"\nnot json\n");
        std::fs::write(path(&log), spool).unwrap();
        assert_eq!(import(&mut store, &log).unwrap(), 2);
        assert_eq!(count(&store), 2);
    }
}
