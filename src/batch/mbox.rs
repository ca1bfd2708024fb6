//! mbox (mboxo and mboxrd): split on real `From ` separator lines, lock like Postfix and mutt
//! (fcntl and a dotlock), stream the messages, write the new mailbox to a temporary file in
//! the same directory, fsync and rename it over the old one.
//!
//! Escaping is kept as it was: mboxrd bodies are unescaped before rewriting and re-escaped
//! after; mboxo bodies are rewritten as stored, and any line the rewrite turned into a `From `
//! line is escaped. A message that does not change is written back byte for byte.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Escaping convention of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Only `From ` lines are escaped (to `>From `); unescaping is ambiguous, so not done.
    Mboxo,
    /// Every `>*From ` line gets one more `>`; reversible.
    Mboxrd,
}

/// A line that starts a message: `From ` then an envelope sender and a date, at the start of
/// the file or after an empty line.
pub fn is_separator(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let rest = String::from_utf8_lossy(rest);
    let mut words = rest.split_whitespace();
    let sender = words.next();
    let tail: Vec<&str> = words.collect();
    // asctime-style date: a time hh:mm(:ss) and a four-digit year somewhere after the sender.
    sender.is_some()
        && tail.iter().any(|w| {
            w.len() >= 5
                && w.as_bytes()[2] == b':'
                && w.bytes().all(|b| b.is_ascii_digit() || b == b':')
        })
        && tail
            .iter()
            .any(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()))
}

/// mboxrd if some line is quoted twice (`>>From `), else mboxo.
pub fn detect(path: &Path) -> std::io::Result<Flavor> {
    let f = BufReader::new(File::open(path)?);
    for line in f.split(b'\n') {
        let line = line?;
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if quotes >= 2 && line[quotes..].starts_with(b"From ") {
            return Ok(Flavor::Mboxrd);
        }
    }
    Ok(Flavor::Mboxo)
}

/// Reads messages one at a time: (separator line, message bytes as stored). Whatever comes
/// before the first separator is skipped and counted (`preamble_len`).
pub struct Reader<R: BufRead> {
    input: R,
    pending: Option<Vec<u8>>,
    done: bool,
    preamble: u64,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader {
            input,
            pending: None,
            done: false,
            preamble: 0,
        }
    }

    /// Bytes before the first separator (known once the first message was read). Not a
    /// message, but it may be mail (one whose `From ` line was lost): a new mailbox must start
    /// with them.
    pub fn preamble_len(&self) -> u64 {
        self.preamble
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = std::io::Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut sep = match self.pending.take() {
            Some(s) => s,
            None => {
                // Skip to the first separator.
                loop {
                    let mut line = Vec::new();
                    match self.input.read_until(b'\n', &mut line) {
                        Ok(0) => {
                            self.done = true;
                            return None;
                        }
                        Ok(_) if is_separator(&line) => break line,
                        Ok(n) => self.preamble += n as u64,
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        };
        let mut body = Vec::new();
        let mut prev_blank = false;
        loop {
            let mut line = Vec::new();
            match self.input.read_until(b'\n', &mut line) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {
                    if prev_blank && is_separator(&line) {
                        self.pending = Some(line);
                        break;
                    }
                    prev_blank = line == b"\n" || line == b"\r\n";
                    body.extend_from_slice(&line);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok((std::mem::take(&mut sep), body)))
    }
}

/// The blank line that separates a message from the next separator belongs to the mbox, not to
/// the message: split it off.
pub fn split_trailer(stored: &[u8]) -> (&[u8], &[u8]) {
    if stored.ends_with(b"\n\n") {
        (&stored[..stored.len() - 1], &stored[stored.len() - 1..])
    } else if stored.ends_with(b"\r\n\r\n") {
        (&stored[..stored.len() - 2], &stored[stored.len() - 2..])
    } else {
        (stored, &b""[..])
    }
}

fn map_lines(bytes: &[u8], f: impl Fn(&[u8], &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        f(line, &mut out);
    }
    out
}

/// The message as written in the mailbox → the message itself.
pub fn unescape(stored: &[u8], flavor: Flavor) -> Vec<u8> {
    match flavor {
        Flavor::Mboxo => stored.to_vec(),
        Flavor::Mboxrd => map_lines(stored, |line, out| {
            let q = line.iter().take_while(|&&b| b == b'>').count();
            if q >= 1 && line[q..].starts_with(b"From ") {
                out.extend_from_slice(&line[1..]);
            } else {
                out.extend_from_slice(line);
            }
        }),
    }
}

/// The message → as written in the mailbox.
pub fn escape(message: &[u8], flavor: Flavor) -> Vec<u8> {
    map_lines(message, |line, out| {
        let q = line.iter().take_while(|&&b| b == b'>').count();
        let escape = match flavor {
            Flavor::Mboxo => q == 0 && line.starts_with(b"From "),
            Flavor::Mboxrd => line[q..].starts_with(b"From "),
        };
        if escape {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    })
}

/// Holds the fcntl lock and the dotlock of a mailbox; released on drop.
pub struct Lock {
    _file: File,
    dotlock: PathBuf,
}

impl Lock {
    /// Take both locks, or fail at once with a clear error.
    pub fn take(path: &Path) -> std::io::Result<Lock> {
        let dotlock = PathBuf::from(format!("{}.lock", path.display()));
        let create = || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dotlock)?;
            // Our PID in the dotlock (as liblockfile writes it), so that a later run can tell
            // the lock of a run that was killed from a mail program's.
            let _ = writeln!(f, "{}", std::process::id());
            Ok::<(), std::io::Error>(())
        };
        create()
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists && stale_trackless_lock(&dotlock) {
                    let _ = std::fs::remove_file(&dotlock);
                    create()
                } else {
                    Err(e)
                }
            })
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot take the dotlock {} ({e}); is a mail program using the mailbox?",
                        dotlock.display()
                    ),
                )
            })?;
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&dotlock);
                return Err(e);
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: a plain fcntl(F_SETLK) on a file descriptor we own; `fl` is initialised.
            let locked = unsafe {
                let mut fl: libc::flock = std::mem::zeroed();
                fl.l_type = libc::F_WRLCK as libc::c_short;
                fl.l_whence = libc::SEEK_SET as libc::c_short;
                libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl)
            };
            if locked != 0 {
                let _ = std::fs::remove_file(&dotlock);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("{} is locked by another process (fcntl)", path.display()),
                ));
            }
        }
        Ok(Lock {
            _file: file,
            dotlock,
        })
    }
}

/// Is `pid` a process that no longer exists? (A PID we cannot signal for another reason, or
/// one reused by an unrelated process, counts as alive: the lock is then respected.)
fn process_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// A dotlock left by a trackless run that was killed: it names a PID (ours write one) of a
/// process that is gone. Lock files without a PID (most mail programs write none) are never
/// taken for stale.
fn stale_trackless_lock(dotlock: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dotlock) else {
        return false;
    };
    text.trim().parse::<u32>().is_ok_and(process_gone)
}

/// Remove temporary mailboxes (`.NAME.trackless-PID.tmp`) that runs killed before their commit
/// left beside `target`; only those whose PID is gone.
fn remove_stale_replacements(dir: &Path, name: &str) {
    let prefix = format!(".{name}.trackless-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|f| f.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if process_gone(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.dotlock);
    }
}

/// A temporary mailbox beside the real one, renamed over it on commit.
pub struct Replacement {
    tmp: PathBuf,
    target: PathBuf,
    out: std::io::BufWriter<File>,
}

impl Replacement {
    pub fn create(target: &Path) -> std::io::Result<Replacement> {
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Called with the mailbox locked: no other run of ours is writing beside it.
        remove_stale_replacements(dir, &name);
        let tmp = dir.join(format!(".{name}.trackless-{}.tmp", std::process::id()));
        let meta = std::fs::metadata(target)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            opts.mode(meta.permissions().mode() & 0o777);
        }
        let file = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // Keep the owner when running as root for someone else's mailbox.
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        Ok(Replacement {
            tmp,
            target: target.to_path_buf(),
            out: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)
    }

    /// Append everything `input` yields.
    pub fn copy_from(&mut self, input: &mut impl std::io::Read) -> std::io::Result<u64> {
        std::io::copy(input, &mut self.out)
    }

    /// Make the new mailbox durable and rename it over the old one. On failure the old one is
    /// untouched and the temporary file removed.
    pub fn commit(self) -> std::io::Result<()> {
        let written = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.target));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e);
        }
        if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators() {
        assert!(is_separator(
            b"From MAILER-DAEMON Mon Nov 23 10:00:00 2026\n"
        ));
        assert!(is_separator(
            b"From news@shop.example  Tue Jan  6 09:01:02 2026\r\n"
        ));
        assert!(!is_separator(b"From the desk of the editor\n"));
        assert!(!is_separator(
            b">From news@shop.example Tue Jan  6 09:01:02 2026\n"
        ));
    }

    #[test]
    fn split_only_on_real_separators() {
        let mbox = b"From a@b Mon Nov 23 10:00:00 2026\nSubject: one\n\nFrom here on, text.\n\nbody\n\nFrom c@d Mon Nov 23 11:00:00 2026\nSubject: two\n\nx\n";
        let msgs: Vec<_> = Reader::new(&mbox[..]).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].1.ends_with(b"body\n\n"));
        assert_eq!(msgs[1].1, b"Subject: two\n\nx\n");
    }

    #[test]
    fn bytes_before_the_first_separator_are_counted() {
        let lost = b"Subject: lost its From line\n\nhello\n\n";
        let mbox = [
            &lost[..],
            b"From a@b Mon Nov 23 10:00:00 2026\nSubject: one\n\nx\n",
        ]
        .concat();
        let mut reader = Reader::new(&mbox[..]);
        let msgs: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].1, b"Subject: one\n\nx\n");
        assert_eq!(reader.preamble_len(), lost.len() as u64);
    }

    #[test]
    fn escaping_roundtrips() {
        let msg = b"a\nFrom x\n>From y\n>>From z\n";
        let rd = escape(msg, Flavor::Mboxrd);
        assert_eq!(rd, b"a\n>From x\n>>From y\n>>>From z\n");
        assert_eq!(unescape(&rd, Flavor::Mboxrd), msg);
        assert_eq!(
            escape(msg, Flavor::Mboxo),
            b"a\n>From x\n>From y\n>>From z\n"
        );
    }
}
