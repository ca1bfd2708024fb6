//! `trackless filter`: one message on stdin, the rewritten message on stdout.
//!
//! This is what procmail, maildrop, Sieve `execute` or fetchmail's mda call, so it must never
//! lose mail: any internal problem writes the original unchanged, warns on stderr and exits 0.
//! Only input that cannot be read (or output that cannot be written) exits non-zero.

use crate::core::message::neutralise;
use crate::core::policy::Policy;
use crate::log::{time, LogConfig, Mode, Record};
use crate::mail::outcome::SkipReason;
use std::io::{self, Read, Write};

use super::Error;

/// Run the filter over `input`, writing to `output`, then log.
pub fn run(
    policy: &Policy,
    log: &LogConfig,
    input: &mut dyn Read,
    output: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    let limit = policy.limits.max_size;
    let mut buf = Vec::new();
    if let Err(e) = (&mut *input).take(limit as u64 + 1).read_to_end(&mut buf) {
        return Err(Error::Io(format!(
            "cannot read the message from stdin: {e}"
        )));
    }
    let result = if buf.len() > limit {
        // Too large to rewrite: stream it through untouched without holding all of it.
        let _ = writeln!(
            warn,
            "trackless filter: message larger than {limit} bytes; passed through unchanged"
        );
        output
            .write_all(&buf)
            .and_then(|()| io::copy(input, output).map(|_| ()))
    } else {
        let outcome = neutralise(&buf, policy);
        for f in outcome.skips() {
            if f.reason.is_some_and(SkipReason::is_message_wide) {
                let reason = f.reason.map_or("", SkipReason::as_str);
                let detail = f.detail.as_deref().unwrap_or("");
                let _ = writeln!(
                    warn,
                    "trackless filter: passed through unchanged: {reason} {detail}"
                );
            }
        }
        let written = output
            .write_all(&outcome.bytes)
            .and_then(|()| output.flush());
        // The message is out; only now log (a log failure never touches the mail).
        if written.is_ok() && log.path.is_some() {
            let record = Record::new(
                &buf,
                &outcome,
                Mode::Filter,
                None,
                &[],
                log.keep.clone(),
                time::now(),
            );
            // Record::new logged why through tracing, which this one-shot command does not
            // set up: say it here.
            if let (Some(folder), Some(sha256)) = (&log.keep.originals, &record.original_sha256) {
                if !folder.path(sha256).is_some_and(|p| p.is_file()) {
                    let _ = writeln!(
                        warn,
                        "trackless filter: the original could not be kept in {} (message delivered)",
                        folder.dir().display()
                    );
                }
            }
            if let Err(e) = log.write_one(&record) {
                let _ = writeln!(
                    warn,
                    "trackless filter: {e} (message delivered; not logged)"
                );
            }
        }
        written
    };
    result
        .and_then(|()| output.flush())
        .map_err(|e| Error::Io(format!("cannot write the message to stdout: {e}")))
}

/// Pass the message through untouched (used when the policy itself cannot be built).
pub fn pass_through(
    input: &mut dyn Read,
    output: &mut dyn Write,
    warn: &mut dyn Write,
    why: &str,
) -> Result<(), Error> {
    let _ = writeln!(
        warn,
        "trackless filter: {why}; message passed through unchanged"
    );
    io::copy(input, output)
        .and_then(|_| output.flush())
        .map_err(|e| Error::Io(format!("cannot pass the message through: {e}")))
}
