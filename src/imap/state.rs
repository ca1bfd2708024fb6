//! What `trackless imap` remembers between runs, per account and folder: the folder's
//! UIDVALIDITY and the highest UID already handled. Kept in the state directory
//! (`$XDG_STATE_HOME/trackless/imap/ACCOUNT/`, else `~/.local/state/…`), directory 0700,
//! files 0600, each written whole (temporary file, then rename): a crash leaves the old state
//! or the new one, and an old state only means messages are looked at again — a clean message
//! stays as it is, a replaced one is recognised by its clean copy.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    pub uid_validity: u32,
    /// Every message with a UID up to this one has been handled.
    pub done: u32,
    /// UIDs of the clean copies we appended above `done`: the next pass skips them without
    /// fetching them again (dropped once `done` passes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<u32>,
}

/// One replacement, as the journal keeps it for `imap restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    /// Unix seconds when it was replaced.
    pub ts: i64,
    pub folder: String,
    /// Where the original went.
    pub originals: String,
    pub message_id: Option<String>,
    pub internal_date: String,
    pub original_size: u64,
    /// Hex SHA-256 of the original and of its clean copy, as the server served and stored them.
    pub original_sha256: String,
    pub clean_sha256: String,
}

/// The state directory of one account.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// The default state directory of an account.
pub fn default_dir(account: &str) -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state
        .join("trackless")
        .join("imap")
        .join(file_name(account))
}

/// A file name for any account or folder name: safe characters kept, anything else (`/`,
/// `.`, non-ASCII) hex-escaped, so that two names never share a file.
fn file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

impl StateDir {
    pub fn new(dir: PathBuf) -> StateDir {
        StateDir { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, folder: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_name(folder)))
    }

    /// The folder's state; the default (nothing done) when there is none or it is unreadable.
    pub fn load(&self, folder: &str) -> FolderState {
        std::fs::read(self.file(folder))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Write the folder's state whole (0600, directory 0700).
    pub fn save(&self, folder: &str, state: &FolderState) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let path = self.file(folder);
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&serde_json::to_vec(&state).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)
    }
}

impl StateDir {
    fn private_append(&self, name: &str, line: &[u8]) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(self.dir.join(name))?;
        f.write_all(line)?;
        f.sync_data()
    }

    fn lines<T: serde::de::DeserializeOwned>(&self, name: &str) -> Vec<T> {
        std::fs::read(self.dir.join(name))
            .map(|b| {
                b.split(|&c| c == b'\n')
                    .filter_map(|l| serde_json::from_slice(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Note replacements in the journal (one JSON line each, 0600).
    pub fn journal(&self, replaced: &[Replaced]) -> std::io::Result<()> {
        if replaced.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for r in replaced {
            lines.extend(serde_json::to_vec(r).map_err(std::io::Error::other)?);
            lines.push(b'\n');
        }
        self.private_append("journal.jsonl", &lines)
    }

    /// Every replacement noted, oldest first (a torn last line is skipped).
    pub fn replacements(&self) -> Vec<Replaced> {
        self.lines("journal.jsonl")
    }

    /// Originals put back by `imap restore`: the sync leaves them alone from then on.
    pub fn restored(&self) -> std::collections::HashSet<String> {
        self.lines::<String>("restored.jsonl").into_iter().collect()
    }

    /// Kept originals deleted by retention (or found gone): not looked for again.
    pub fn expired(&self) -> std::collections::HashSet<String> {
        self.lines::<String>("expired.jsonl").into_iter().collect()
    }

    pub fn add_expired(&self, original_sha256: &str) -> std::io::Result<()> {
        self.append_line("expired.jsonl", original_sha256)
    }

    pub fn add_restored(&self, original_sha256: &str) -> std::io::Result<()> {
        self.append_line("restored.jsonl", original_sha256)
    }

    /// One JSON string as a line of a private file.
    fn append_line(&self, name: &str, value: &str) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.private_append(name, &line)
    }
}

/// Why the account's lock could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another sync, watch or restore holds it (try again later).
    Held(String),
    /// The state folder or the lock file could not be made or opened.
    Io(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(m) | LockError::Io(m) => f.write_str(m),
        }
    }
}

/// The account's lock, held while a sync, watch or restore runs: two at once would each
/// append a clean copy of the same message. Released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

impl StateDir {
    /// Take the account's lock, or say who holds it.
    pub fn lock(&self) -> Result<Lock, LockError> {
        let io = |e: String| LockError::Io(e);
        create_private_dir(&self.dir).map_err(|e| io(format!("{}: {e}", self.dir.display())))?;
        let path = self.dir.join("lock");
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts
            .open(&path)
            .map_err(|e| io(format!("{}: {e}", path.display())))?;
        #[cfg(unix)]
        {
            use std::io::{Read, Seek};
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a descriptor we own; it is released when the file is closed.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r != 0 {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Held(format!(
                    "another trackless imap is working on this account (PID {}); state in {}",
                    holder.trim(),
                    self.dir.display()
                )));
            }
            let _ = file.set_len(0);
            let _ = file.rewind();
        }
        let _ = write!(file, "{}", std::process::id());
        Ok(Lock { _file: file })
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_collide_or_escape_the_directory() {
        assert_eq!(file_name("INBOX"), "INBOX");
        assert_eq!(file_name("a/b"), "a%2Fb");
        assert_eq!(file_name("../x"), "%2E%2E%2Fx");
        assert_ne!(file_name("a.b"), file_name("a_b"));
        assert_eq!(file_name(""), "%00");
    }

    #[test]
    fn one_run_per_account_at_a_time() {
        let dir = std::env::temp_dir().join(format!("trackless-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = StateDir::new(dir.clone());
        let held = s.lock().expect("first");
        let err = s.lock().expect_err("second while held");
        assert!(
            matches!(&err, LockError::Held(m) if m.contains(&std::process::id().to_string())),
            "{err}"
        );
        drop(held);
        s.lock().expect("again once released");
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn saved_state_comes_back_private() {
        let dir = std::env::temp_dir().join(format!("trackless-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = StateDir::new(dir.join("acct"));
        assert_eq!(s.load("INBOX"), FolderState::default());
        let st = FolderState {
            uid_validity: 7,
            done: 42,
            own: vec![43, 45],
        };
        s.save("INBOX", &st).expect("save");
        assert_eq!(s.load("INBOX"), st);
        assert_eq!(s.load("Other"), FolderState::default());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(s.path()), 0o700);
            assert_eq!(mode(&s.file("INBOX")), 0o600);
        }
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
