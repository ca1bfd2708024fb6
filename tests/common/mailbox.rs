//! Mailboxes on disk for the batch tests: mbox files and Maildir folders.

use std::path::Path;
use trackless::batch::mbox::{self, Flavor};

/// The separator line the test mailboxes put before each message.
pub const SEP: &[u8] = b"From MAILER-DAEMON Mon Nov 23 10:00:00 2026\n";

/// An mbox of `messages` (escaped per `flavor`), each after SEP and followed by a blank line.
pub fn build_mbox(messages: &[Vec<u8>], flavor: Flavor) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(SEP);
        out.extend_from_slice(&mbox::escape(m, flavor));
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Make `dir` a Maildir folder: cur/, new/ and tmp/.
pub fn mkmaildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
}

/// A Maildir message file's base name: its name before the first `,` or `:` (size and flags).
pub fn maildir_base(path: &Path) -> String {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    name.split([',', ':']).next().unwrap_or("").to_string()
}
