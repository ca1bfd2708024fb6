//! How a command ends when it does not simply succeed. Commands return `Result<(), Error>`;
//! `main` prints the message once, prefixed with the command's name, and exits with
//! [`Error::exit_code`] — the only place that knows the numbers.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// Bad flags, configuration or arguments: nothing was done (exit 2).
    Usage(String),
    /// The command ran and failed (exit 1).
    Failed(String),
    /// Some items failed, each already reported on stderr as it happened (exit 1).
    Partial,
    /// The message could not be read or written (sysexits EX_IOERR, 74).
    Io(String),
    /// Try again later (sysexits EX_TEMPFAIL, 75): Postfix keeps the mail queued and retries.
    TempFail(String),
    /// A signal stopped the run before its end (128 + the signal, as a shell reports it).
    Signal(i32),
    /// Whoever read our output stopped reading (`trackless report | head`): not a failure.
    OutputClosed,
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) | Error::Partial => 1,
            Error::Io(_) => 74,
            Error::TempFail(_) => 75,
            Error::Signal(n) => u8::try_from(128 + n).unwrap_or(1),
            Error::OutputClosed => 0,
        }
    }

    /// What to print on stderr, if anything is left to say.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Usage(m) | Error::Failed(m) | Error::Io(m) | Error::TempFail(m) => Some(m),
            Error::Partial | Error::Signal(_) | Error::OutputClosed => None,
        }
    }

    /// A failure to write the command's output: a closed pipe is the reader's choice.
    pub fn output(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::OutputClosed
        } else {
            Error::Failed(format!("cannot write the output: {e}"))
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Signal(n) => write!(f, "stopped by signal {n}"),
            Error::Partial => f.write_str("some items failed"),
            Error::OutputClosed => f.write_str("output closed"),
            other => f.write_str(other.message().unwrap_or("")),
        }
    }
}

impl std::error::Error for Error {}

/// A setting: the flag when given, else the configuration file's value, else the default.
pub fn setting<T>(flag: Option<T>, config: Option<T>, default: impl FnOnce() -> T) -> T {
    flag.or(config).unwrap_or_else(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Partial.exit_code(), 1);
        assert_eq!(Error::Io("x".into()).exit_code(), 74);
        assert_eq!(Error::TempFail("x".into()).exit_code(), 75);
        assert_eq!(Error::Signal(2).exit_code(), 130);
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(Error::output(closed).exit_code(), 0);
        let full = std::io::Error::other("no space");
        assert_eq!(Error::output(full).exit_code(), 1);
    }

    #[test]
    fn flag_then_file_then_default() {
        assert_eq!(setting(Some(1), Some(2), || 3), 1);
        assert_eq!(setting(None, Some(2), || 3), 2);
        assert_eq!(setting(None, None, || 3), 3);
    }
}
