//! Maildir and Maildir++: find the messages, and replace one atomically.
//!
//! A rewritten message is written to the folder's `tmp/`, fsynced, then renamed over the
//! original: a crash leaves the old or the new file, never a partial one. When Dovecot's
//! `,S=<size>` / `,W=<vsize>` fields are in the name they are corrected with a second atomic
//! rename (so at every instant exactly one copy exists). Flags (`:2,S…`) and mtime are kept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Is `dir` a Maildir (has cur/ and new/)?
pub fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

/// Every message file of the Maildir and its Maildir++ sub-folders (`.Name/`), sorted.
pub fn messages(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut folders = vec![root.to_path_buf()];
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name != "." && name != ".." && is_maildir(&entry.path()) {
            folders.push(entry.path());
        }
    }
    let mut out = Vec::new();
    for f in folders {
        for sub in ["cur", "new"] {
            let dir = f.join(sub);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                // Files, and symlinks (a dangling one is reported as unreadable later).
                if e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()) {
                    out.push(e.path());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The file name with Dovecot's size fields set for `bytes` (unchanged when absent).
pub fn renamed(name: &str, bytes: &[u8]) -> String {
    let (base, info) = match name.split_once(':') {
        Some((b, i)) => (b, Some(i)),
        None => (name, None),
    };
    let size = bytes.len();
    // The size with CRLF line endings (W=), counted only when the name has that field.
    let vsize = || {
        let bare_lf = memchr::memchr_iter(b'\n', bytes)
            .filter(|&i| i == 0 || bytes[i - 1] != b'\r')
            .count();
        size + bare_lf
    };
    let mut parts: Vec<String> = base.split(',').map(str::to_string).collect();
    for p in parts.iter_mut().skip(1) {
        if p.starts_with("S=") && p[2..].bytes().all(|b| b.is_ascii_digit()) {
            *p = format!("S={size}");
        } else if p.starts_with("W=") && p[2..].bytes().all(|b| b.is_ascii_digit()) {
            *p = format!("W={}", vsize());
        }
    }
    let base = parts.join(",");
    match info {
        Some(i) => format!("{base}:{i}"),
        None => base,
    }
}

fn unique_tmp_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "{now}.P{}Q{}.trackless",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A rewritten message waiting to replace its original.
pub struct Pending {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Replace many messages with one flush to disk (group commit):
/// 1. each new message is written to its folder's `tmp/` with the original's mode and mtime;
/// 2. one `syncfs` makes all of them durable;
/// 3. each is renamed over its original (atomic: readers see the old or the new message), then
///    renamed again when Dovecot's `S=`/`W=` fields change (so exactly one copy exists at
///    every instant);
/// 4. each folder touched is fsynced once.
///
/// A crash before 3 leaves the originals and some files in `tmp/` (removed by the next run);
/// during 3, every message is whole, old or new. Returns each message's result in order.
pub fn replace_many(items: &[Pending]) -> Vec<std::io::Result<PathBuf>> {
    let mut staged: Vec<std::io::Result<PathBuf>> =
        items.iter().map(|p| stage(&p.path, &p.bytes)).collect();
    // One flush for the whole group (falls back to fsyncing each file).
    if let Some(Ok(first)) = staged.iter().find(|r| r.is_ok()) {
        if !syncfs(first) {
            for (r, _) in staged.iter_mut().zip(items) {
                if let Ok(tmp) = r {
                    if let Err(e) = std::fs::File::open(&*tmp).and_then(|f| f.sync_all()) {
                        let _ = std::fs::remove_file(&*tmp);
                        *r = Err(e);
                    }
                }
            }
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    let results = staged
        .into_iter()
        .zip(items)
        .map(|(tmp, item)| {
            let tmp = tmp?;
            let done = commit(&tmp, &item.path, &item.bytes);
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            if let Some(d) = item.path.parent() {
                if !dirs.iter().any(|x| x == d) {
                    dirs.push(d.to_path_buf());
                }
            }
            done
        })
        .collect();
    for d in dirs {
        if let Ok(f) = std::fs::File::open(&d) {
            let _ = f.sync_all();
        }
    }
    results
}

/// Replace one message (a group of one).
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    replace_many(&[Pending {
        path: path.to_path_buf(),
        bytes: bytes.to_vec(),
    }])
    .pop()
    .unwrap_or_else(|| Err(std::io::Error::other("nothing replaced")))
}

/// Write the new message to `tmp/` (not yet durable). Returns the temporary path.
fn stage(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("message has no folder"))?;
    let folder = dir
        .parent()
        .ok_or_else(|| std::io::Error::other("folder has no parent"))?;
    let meta = std::fs::metadata(path)?;
    let tmp_dir = folder.join("tmp");
    std::fs::create_dir_all(&tmp_dir)?;
    let tmp = tmp_dir.join(unique_tmp_name());
    let written = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            opts.mode(meta.permissions().mode() & 0o777);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        if let Ok(mtime) = meta.modified() {
            f.set_times(std::fs::FileTimes::new().set_modified(mtime))?;
        }
        Ok(())
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Rename the durable temporary file into place, then fix the name's size fields.
fn commit(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("message has no folder"))?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?
        .to_string_lossy()
        .into_owned();
    std::fs::rename(tmp, path)?;
    let new_name = renamed(&name, bytes);
    if new_name == name {
        return Ok(path.to_path_buf());
    }
    let final_path = dir.join(new_name);
    std::fs::rename(path, &final_path)?;
    Ok(final_path)
}

/// Flush the file system holding `path`; false when not available.
fn syncfs(path: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        if let Ok(f) = std::fs::File::open(path) {
            // SAFETY: syncfs on a file descriptor we own.
            return unsafe { libc::syncfs(f.as_raw_fd()) } == 0;
        }
    }
    let _ = path;
    false
}

/// Remove temporary files an interrupted earlier run left in the folders' `tmp/`.
pub fn clean_stale_tmp(root: &Path) {
    let mut folders = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        folders.extend(rd.flatten().map(|e| e.path()).filter(|p| is_maildir(p)));
    }
    for f in folders {
        let Ok(rd) = std::fs::read_dir(f.join("tmp")) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ours = name.ends_with(".trackless");
            let stale = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            let pid_gone = name
                .split(".P")
                .nth(1)
                .and_then(|s| s.split('Q').next())
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| {
                    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
                });
            if ours && (stale || pid_gone) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_size_fields() {
        assert_eq!(
            renamed("1700000000.M1P2.host,S=1234,W=1260:2,Sa", b"ab\ncd\r\n"),
            "1700000000.M1P2.host,S=7,W=8:2,Sa"
        );
        assert_eq!(
            renamed("1700000000.M1P2.host:2,S", b"abc"),
            "1700000000.M1P2.host:2,S"
        );
        assert_eq!(
            renamed("1700000000.M1P2.host,S=12", b"abc"),
            "1700000000.M1P2.host,S=3"
        );
        assert_eq!(renamed("odd,S=x:2,", b"abc"), "odd,S=x:2,");
    }
}
