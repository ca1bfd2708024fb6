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
    let bare_lf = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
        .count();
    let vsize = size + bare_lf;
    let mut parts: Vec<String> = base.split(',').map(str::to_string).collect();
    for p in parts.iter_mut().skip(1) {
        if p.starts_with("S=") && p[2..].bytes().all(|b| b.is_ascii_digit()) {
            *p = format!("S={size}");
        } else if p.starts_with("W=") && p[2..].bytes().all(|b| b.is_ascii_digit()) {
            *p = format!("W={vsize}");
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

/// Replace the message at `path` with `bytes`, atomically, keeping flags and mtime. Returns
/// the path it has afterwards (the name changes when it carries `S=`/`W=`).
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("message has no folder"))?;
    let folder = dir
        .parent()
        .ok_or_else(|| std::io::Error::other("folder has no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?
        .to_string_lossy()
        .into_owned();
    let meta = std::fs::metadata(path)?;
    let tmp_dir = folder.join("tmp");
    std::fs::create_dir_all(&tmp_dir)?;
    let tmp = tmp_dir.join(unique_tmp_name());
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            use std::os::unix::fs::PermissionsExt;
            opts.mode(meta.permissions().mode() & 0o777);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        if let Ok(mtime) = meta.modified() {
            f.set_times(std::fs::FileTimes::new().set_modified(mtime))?;
        }
        f.sync_all()?;
        // Atomic: readers see the old or the new message under the old name.
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    let new_name = renamed(&name, bytes);
    let final_path = dir.join(&new_name);
    if new_name != name {
        std::fs::rename(path, &final_path)?;
    }
    // Make the renames durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(final_path)
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
