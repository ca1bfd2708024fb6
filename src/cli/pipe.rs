//! `trackless pipe`: the simple Postfix pipe(8) filter. Read the message on stdin, rewrite it,
//! hand it back to Postfix with `sendmail -G -i -f SENDER -- RECIPIENTS`. Any failure to hand
//! it on exits 75 (EX_TEMPFAIL) so Postfix keeps the mail queued and retries; never 69.

use crate::core::message::neutralise;
use crate::core::policy::Policy;
use crate::log::{time, LogConfig, Mode, Record};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use super::Error;

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

/// Any failure to hand the message on is `Error::TempFail`.
pub fn run(
    args: &PipeArgs,
    sendmail: &str,
    policy: &Policy,
    log: &LogConfig,
    input: &mut dyn Read,
    warn: &mut dyn Write,
) -> Result<(), Error> {
    let mut raw = Vec::new();
    if let Err(e) = input.read_to_end(&mut raw) {
        return Err(Error::TempFail(format!("cannot read the message: {e}")));
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
        Err(e) => return Err(Error::TempFail(format!("cannot run {sendmail}: {e}"))),
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
            return Err(Error::TempFail(format!(
                "{sendmail} did not take the message ({w:?}, {st:?}); Postfix will retry"
            )))
        }
    }
    if log.path.is_some() {
        let record = Record::new(
            &raw,
            &outcome,
            Mode::Pipe,
            Some(&args.sender),
            &args.recipients,
            log.keep.clone(),
            time::now(),
        );
        if let Err(e) = log.write_one(&record) {
            let _ = writeln!(warn, "trackless pipe: {e} (message handed on; not logged)");
        }
    }
    Ok(())
}
