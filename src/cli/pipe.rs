//! `trackless pipe`: the simple Postfix pipe(8) filter. Read the message on stdin, rewrite it,
//! hand it back to Postfix with `sendmail -G -i -f SENDER -- RECIPIENTS`. Any failure to hand
//! it on exits 75 (EX_TEMPFAIL) so Postfix keeps the mail queued and retries; never 69.

use crate::core::message::neutralise;
use crate::core::policy::Policy;
use crate::log::{time, LogConfig, Mode, Record};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// sysexits EX_TEMPFAIL.
pub const EX_TEMPFAIL: i32 = 75;

#[derive(Debug, Clone, clap::Args)]
pub struct PipeArgs {
    /// Envelope sender (Postfix: -f ${sender}); empty for bounces.
    #[arg(short = 'f', long = "from", value_name = "SENDER", default_value = "")]
    pub sender: String,
    /// The re-injection command [default: [pipe] sendmail, or /usr/sbin/sendmail]
    #[arg(long, value_name = "PATH")]
    pub sendmail: Option<String>,
    /// Recipients (Postfix: -- ${recipient}).
    #[arg(last = true, required = true, value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
}

/// Returns the exit status.
pub fn run(
    args: &PipeArgs,
    sendmail: &str,
    policy: &Policy,
    log: &LogConfig,
    input: &mut dyn Read,
    warn: &mut dyn Write,
) -> i32 {
    let mut raw = Vec::new();
    if let Err(e) = input.read_to_end(&mut raw) {
        let _ = writeln!(warn, "trackless pipe: cannot read the message: {e}");
        return EX_TEMPFAIL;
    }
    let outcome = neutralise(&raw, policy);
    // A limit, the allow-list or a bug (a caught panic, `internal-error`) kept the whole
    // message as it came: say so. (Postfix's pipe(8) shows a command's output only when it
    // fails; the tracking log records the reason too.)
    for f in outcome.skips() {
        if let Some(reason) = f.reason.filter(|r| r.is_message_wide()) {
            let _ = writeln!(
                warn,
                "trackless pipe: passed on unchanged: {} {}",
                reason.as_str(),
                f.detail.as_deref().unwrap_or("")
            );
        }
    }
    let mut child = match Command::new(sendmail)
        .args(["-G", "-i", "-f", &args.sender, "--"])
        .args(&args.recipients)
        .stdin(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(warn, "trackless pipe: cannot run {sendmail}: {e}");
            return EX_TEMPFAIL;
        }
    };
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(&outcome.bytes))
        .unwrap_or_else(|| Err(std::io::Error::other("no stdin")));
    let status = child.wait();
    match (written, status) {
        (Ok(()), Ok(st)) if st.success() => {}
        (w, st) => {
            let _ = writeln!(
                warn,
                "trackless pipe: {} did not take the message ({w:?}, {st:?}); Postfix will retry",
                sendmail
            );
            return EX_TEMPFAIL;
        }
    }
    if log.path.is_some() {
        let record = Record::new(
            &raw,
            &outcome,
            Mode::Pipe,
            Some(&args.sender),
            &args.recipients,
            log.keep,
            time::now(),
        );
        if let Err(e) = log.write_one(&record) {
            let _ = writeln!(warn, "trackless pipe: {e} (message handed on; not logged)");
        }
    }
    0
}
