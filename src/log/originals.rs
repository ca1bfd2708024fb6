//! The original bytes of tracked messages, kept as evidence with `[log] keep_originals =
//! "tracked"`: one file `originals/<sha256-hex>.eml` per distinct original (folder 0700, files
//! 0600), beside a SQLite log, in the state folder for a PostgreSQL one. The log's record holds
//! the SHA-256 (`messages.original_sha256`), so the same content is one file whoever refers to
//! it, and `report dossier` finds it by that name.
//!
//! Written when the record is built ([`super::Record::new`], which every mode calls), through a
//! temporary file renamed into place: a reader never sees half a file. Not synced to disk: a
//! crash may lose a copy (the mail itself is never held up for it), and `report dossier` checks
//! each file's SHA-256 before copying it. A failure to store is logged and changes nothing else.
//!
//! Bounded by the log's retention: after the records older than the cut-off are deleted, every
//! file no remaining record refers to and written before the cut-off goes too ([`sweep`]). A
//! file written after the cut-off is left alone even when nothing refers to it yet: its record
//! may still be in a daemon's queue or a spool.

use super::db::{Db, DbError, LogTarget};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `[log] keep_originals`: which messages' original bytes are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepOriginals {
    /// None (the default: the log holds no bodies).
    #[default]
    Off,
    /// Those in which trackless found a tracker (rewritten, or with tracker findings).
    Tracked,
}

impl KeepOriginals {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepOriginals::Off => "off",
            KeepOriginals::Tracked => "tracked",
        }
    }
}

/// The folder a log's originals are kept in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Originals {
    dir: Arc<Path>,
}

/// Hex SHA-256 of `bytes`, the name of their file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` in lowercase hex, in one allocation (a `format!` per byte made a log record's
/// Message-ID hash cost 33).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A name this module writes: 64 lowercase hex digits.
fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Originals {
    pub fn new(dir: impl Into<PathBuf>) -> Originals {
        Originals {
            dir: Arc::from(dir.into()),
        }
    }

    /// Where the originals of the log at `target` are written: `originals/` beside a SQLite
    /// file; for PostgreSQL (a log shared by several hosts, each keeping its own copies) the
    /// state folder a SQLite log would have by default, `/var/lib/trackless/originals` for
    /// the daemons, `$XDG_STATE_HOME/trackless/originals` for the other commands. None for an
    /// in-memory log.
    pub fn of(target: &LogTarget, daemon: bool) -> Option<Originals> {
        match target {
            LogTarget::Sqlite(p) if p.as_os_str() == ":memory:" => None,
            LogTarget::Sqlite(p) => Some(Originals::new(beside(p))),
            LogTarget::Postgres(_) => {
                Some(Originals::new(beside(&super::store::default_path(daemon))))
            }
        }
    }

    /// Every folder a command reading the log at `target` (report dossier, log prune) looks
    /// in: the one `of` gives, and for PostgreSQL both the daemons' and the user's.
    pub fn candidates(target: &LogTarget) -> Vec<Originals> {
        let mut out: Vec<Originals> = Vec::new();
        for daemon in [false, true] {
            if let Some(o) = Originals::of(target, daemon) {
                if !out.contains(&o) {
                    out.push(o);
                }
            }
        }
        out
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the original whose SHA-256 is `sha256` (None for anything else than 64 hex
    /// digits: the name comes from the log).
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.dir.join(format!("{sha256}.eml")))
    }

    /// Store `raw`, whose SHA-256 is `sha256`: written to a temporary file (0600) in the
    /// folder (created 0700) and renamed to its name. The same content already there is not
    /// written again, only marked as fresh (its time is what retention goes by).
    pub fn store(&self, sha256: &str, raw: &[u8]) -> std::io::Result<PathBuf> {
        let path = self
            .path(sha256)
            .ok_or_else(|| std::io::Error::other("not a SHA-256"))?;
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.is_file() && meta.len() == raw.len() as u64 {
                std::fs::File::options()
                    .write(true)
                    .open(&path)?
                    .set_modified(SystemTime::now())?;
                return Ok(path);
            }
        }
        self.create_dir()?;
        let tmp = self.dir.join(temp_name(sha256));
        let written = write_new(&tmp, raw).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        give_to_folder_owner(&path, &self.dir);
        Ok(path)
    }

    fn create_dir(&self) -> std::io::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&self.dir)?;
        if let Some(parent) = self.dir.parent() {
            give_to_folder_owner(&self.dir, parent);
        }
        Ok(())
    }

    /// Retention: delete the files of the folder that none of `referenced` names and that
    /// were written before `before` (unix seconds), and temporary files left by a writer that
    /// died. Returns how many went; a folder that does not exist has nothing to delete.
    pub fn sweep(&self, referenced: &HashSet<String>, before: i64) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let cutoff = UNIX_EPOCH + Duration::from_secs(u64::try_from(before).unwrap_or(0));
        let mut deleted = 0;
        for e in entries {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = match name.strip_suffix(".eml") {
                Some(h) if is_sha256_hex(h) => !referenced.contains(h),
                _ => name.starts_with(TEMP_PREFIX),
            };
            if !ours {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }
}

/// What retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub messages: usize,
    pub originals: usize,
}

/// Retention: delete the messages processed before `before` (unix seconds), then the kept
/// originals in `folders` that no remaining message refers to (and that were written before
/// `before`). The log is read for the hashes still referred to only when one of the folders
/// exists. A folder that cannot be swept is logged, not an error: the log's own retention
/// was applied.
pub fn prune(db: &mut Db, before: i64, folders: &[Originals]) -> Result<Pruned, DbError> {
    let messages = db.prune(before)?;
    let mut originals = 0;
    let present: Vec<&Originals> = folders.iter().filter(|o| o.dir().is_dir()).collect();
    if !present.is_empty() {
        let referenced = db.original_hashes()?;
        for o in present {
            match o.sweep(&referenced, before) {
                Ok(n) => originals += n,
                Err(e) => tracing::warn!(
                    folder = %o.dir().display(),
                    error = %e,
                    "kept originals: retention could not delete every file"
                ),
            }
        }
    }
    Ok(Pruned {
        messages,
        originals,
    })
}

/// `originals` in the folder of `log`.
fn beside(log: &Path) -> PathBuf {
    match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join("originals"),
        _ => PathBuf::from("originals"),
    }
}

const TEMP_PREFIX: &str = ".tmp-";

/// A temporary name no other writer (thread or process) uses at the same time.
fn temp_name(sha256: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{TEMP_PREFIX}{}-{}-{}",
        &sha256[..16],
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}

/// Run as root on someone else's folder (`sudo trackless filter` with the daemons' log), what
/// root creates goes to the folder's owner, or the daemons' retention could not delete it.
fn give_to_folder_owner(path: &Path, folder: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let Ok(meta) = std::fs::metadata(folder) else {
            return;
        };
        if meta.uid() != 0 {
            if let Err(e) = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid())) {
                tracing::warn!(file = %path.display(), error = %e, "cannot give a kept original to its folder's owner");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, folder);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("trackless-originals-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff, 0x7e]), "000fa0ff7e");
        assert_eq!(hex(&[]), "");
        // The SHA-256 of "abc" (FIPS 180-2's example).
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stored_once_by_content_owner_only() {
        let dir = scratch("store");
        let o = Originals::new(dir.join("originals"));
        let raw = b"From: a@b.example\r\n\r\nhi\r\n";
        let h = sha256_hex(raw);
        let p = o.store(&h, raw).unwrap();
        assert_eq!(p, dir.join("originals").join(format!("{h}.eml")));
        assert_eq!(std::fs::read(&p).unwrap(), raw);
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(o.dir()), 0o700);
        assert_eq!(o.store(&h, raw).unwrap(), p);
        assert_eq!(std::fs::read_dir(o.dir()).unwrap().count(), 1);
        assert!(o.store("../x", raw).is_err());
        assert_eq!(o.path("ABC"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sweep_keeps_referenced_and_recent_files() {
        let dir = scratch("sweep");
        let o = Originals::new(&dir);
        let (a, b) = (b"a".as_slice(), b"b".as_slice());
        let (ha, hb) = (sha256_hex(a), sha256_hex(b));
        o.store(&ha, a).unwrap();
        o.store(&hb, b).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let referenced: HashSet<String> = [ha.clone()].into();
        let now = crate::log::time::now();
        // Written after the cut-off: kept even though nothing refers to it yet.
        assert_eq!(o.sweep(&referenced, now - 3600).unwrap(), 0);
        assert_eq!(o.sweep(&referenced, now + 3600).unwrap(), 1);
        assert!(o.path(&ha).unwrap().exists());
        assert!(!o.path(&hb).unwrap().exists());
        assert!(dir.join("notes.txt").exists(), "not ours");
        assert_eq!(
            Originals::new(dir.join("none"))
                .sweep(&referenced, now)
                .unwrap(),
            0
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn folders_of_each_kind_of_log() {
        let lite = LogTarget::Sqlite("/var/lib/trackless/log.sqlite".into());
        assert_eq!(
            Originals::of(&lite, true).unwrap().dir(),
            Path::new("/var/lib/trackless/originals")
        );
        assert_eq!(Originals::candidates(&lite).len(), 1);
        let rel = LogTarget::Sqlite("log.sqlite".into());
        assert_eq!(
            Originals::of(&rel, false).unwrap().dir(),
            Path::new("originals")
        );
        assert_eq!(
            Originals::of(&LogTarget::Sqlite(":memory:".into()), false),
            None
        );
        let pg = LogTarget::Postgres("postgres://x@h/db".into());
        assert_eq!(
            Originals::of(&pg, true).unwrap().dir(),
            Path::new("/var/lib/trackless/originals")
        );
        assert_eq!(Originals::candidates(&pg).len(), 2);
    }
}
