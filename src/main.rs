//! The `trackless` command: parse arguments, build the policy, run the chosen mode.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use trackless::cli::Error;

/// See `trackless::allocator`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: trackless::allocator::Allocator = trackless::allocator::Allocator;

#[derive(Debug, Parser)]
#[command(
    name = "trackless",
    version,
    about = "Neutralise email trackers: pixels, redirect links, remote fonts",
    after_long_help = "Files:\n  /etc/trackless/trackless.toml   configuration, see trackless.toml(5) and `trackless check-config`\n  ~/.config/trackless/trackless.toml   a user's own configuration (read instead of the system one)\n  /var/lib/trackless/log.sqlite   the daemons' tracking log\n  ~/.local/state/trackless/log.sqlite   the tracking log of filter, pipe, batch and report\n\nEnvironment:\n  TRACKLESS_CONFIG   configuration file (like --config; /dev/null: built-in defaults)\n  TRACKLESS_LOG      log level of the daemons (error, warn, info, debug, trace, off)\n\nSignals (daemons): SIGHUP re-reads the configuration and rules; SIGTERM finishes the messages in flight and stops."
)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// The options every sub-command takes (the full command line's and the filter's alike).
#[derive(Debug, clap::Args)]
struct Globals {
    /// Configuration file [default: ~/.config/trackless/trackless.toml, else
    /// /etc/trackless/trackless.toml, if they exist]. Flags override it.
    #[arg(long, value_name = "FILE", global = true, env = "TRACKLESS_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    policy: trackless::cli::PolicyArgs,
    #[command(flatten)]
    log: trackless::cli::LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read one message on stdin, write the rewritten message on stdout.
    Filter,
    /// Show what would be removed or changed in each message.
    Inspect {
        /// One JSON object per message, one per line.
        #[arg(long)]
        json: bool,
        /// Message files (.eml).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Who tracks me, through which provider, since when (reads the tracking log).
    Report(trackless::cli::report::ReportArgs),
    /// Postfix/sendmail milter (before-queue; Postfix: smtpd_milters = unix:trackless/milter.sock).
    Milter(trackless::cli::daemon::DaemonArgs),
    /// After-queue content filter, SMTP in (Postfix content_filter = trackless:[127.0.0.1]:10025).
    Smtp(trackless::cli::daemon::FilterArgs),
    /// LMTP proxy (Postfix mailbox_transport/virtual_transport, or in front of Dovecot).
    Lmtp(trackless::cli::daemon::FilterArgs),
    /// Postfix pipe(8) filter: rewrite stdin, re-inject with sendmail -G -i -f SENDER -- RCPT…
    Pipe(trackless::cli::pipe::PipeArgs),
    /// Rewrite mail already delivered: Maildirs (with Maildir++ folders) and mbox files.
    Batch(trackless::cli::batch::BatchArgs),
    /// Check the configuration file and print the effective settings.
    CheckConfig,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (trackless.1 and one per command) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Clean a mailbox at an IMAP server (accounts in the config file's [imap.NAME]).
    Imap {
        #[command(subcommand)]
        cmd: trackless::cli::imap::ImapCmd,
    },
    /// Maintain the tracking log.
    Log {
        #[command(subcommand)]
        cmd: trackless::cli::report::LogCmd,
    },
}

impl Command {
    /// The name in messages: `trackless NAME: …`.
    fn name(&self) -> &'static str {
        match self {
            Command::Filter => "filter",
            Command::Inspect { .. } => "inspect",
            Command::Report(_) => "report",
            Command::Milter(_) => "milter",
            Command::Smtp(_) => "smtp",
            Command::Lmtp(_) => "lmtp",
            Command::Pipe(_) => "pipe",
            Command::Batch(_) => "batch",
            Command::CheckConfig => "check-config",
            Command::Completions { .. } => "completions",
            Command::Man { .. } => "man",
            Command::Log { .. } => "log",
            Command::Imap { .. } => "imap",
        }
    }
}

/// The command line of `trackless [OPTIONS] filter`, which Sieve, procmail or a pipe start
/// once per message: the same global options and only that sub-command, so that clap builds
/// a sixth of the full command (a tenth of a millisecond less per message). Anything it does
/// not take (help, another sub-command, an error) goes to the full parser, which answers.
#[derive(Parser)]
#[command(name = "trackless", version)]
struct FilterCli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: FilterOnly,
}

#[derive(Subcommand)]
enum FilterOnly {
    Filter,
}

/// `args` parsed by the filter-only parser, when it takes them.
fn filter_fast_path<I, T>(args: I) -> Option<Cli>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    if !args.iter().skip(1).any(|a| a == "filter") {
        return None;
    }
    let f = FilterCli::try_parse_from(args).ok()?;
    let FilterOnly::Filter = f.command;
    Some(Cli {
        globals: f.globals,
        command: Command::Filter,
    })
}

fn main() -> ExitCode {
    let cli = filter_fast_path(std::env::args_os()).unwrap_or_else(Cli::parse);
    let name = cli.command.name();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(message) = e.message().filter(|m| !m.is_empty()) {
                eprintln!("trackless {name}: {message}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    // These need no configuration (packaging runs them at build time).
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "trackless", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man { dir } => {
            return write_man_pages(dir)
                .map_err(|e| Error::Failed(format!("{}: {e}", dir.display())));
        }
        _ => {}
    }
    let Globals {
        config,
        policy,
        log,
    } = cli.globals;
    let loaded = trackless::cli::Settings::load(config.as_deref(), policy, log)
        .and_then(|settings| Ok((settings.policy()?, settings)));
    let (policy, settings) = match loaded {
        Ok(p) => p,
        // A filter must not lose mail over a broken configuration or rules file.
        Err(e) if matches!(cli.command, Command::Filter) => {
            return trackless::cli::filter::pass_through(
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &mut std::io::stderr(),
                &e,
            )
        }
        // Postfix keeps the mail queued on a temporary failure; retried once rules are fixed.
        Err(e) if matches!(cli.command, Command::Pipe(_)) => return Err(Error::TempFail(e)),
        // check-config exists to say what is wrong: an invalid file is its failure.
        Err(e) if matches!(cli.command, Command::CheckConfig) => return Err(Error::Failed(e)),
        Err(e) => return Err(Error::Usage(e)),
    };
    match cli.command {
        Command::Filter => trackless::cli::filter::run(
            &policy,
            &settings.log(false, false),
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
        Command::Inspect { json, files } => trackless::cli::inspect::run(
            &policy,
            &settings.log(false, true),
            &files,
            json,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
        Command::Report(args) => trackless::cli::report::run(
            &args,
            &settings.log_path(false),
            &policy.rules,
            &mut std::io::stdout().lock(),
        ),
        Command::Milter(args) => trackless::cli::daemon::milter(&args, &settings, policy),
        Command::Smtp(args) => trackless::cli::daemon::content_filter(
            trackless::serve::smtp::Proto::Smtp,
            &args,
            &settings,
            policy,
        ),
        Command::Lmtp(args) => trackless::cli::daemon::content_filter(
            trackless::serve::smtp::Proto::Lmtp,
            &args,
            &settings,
            policy,
        ),
        Command::Pipe(args) => {
            let sendmail = trackless::cli::setting(
                args.sendmail.clone(),
                settings.config.pipe.sendmail.clone(),
                || "/usr/sbin/sendmail".into(),
            );
            trackless::cli::pipe::run(
                &args,
                &sendmail,
                &policy,
                &settings.log(false, false),
                &mut std::io::stdin().lock(),
                &mut std::io::stderr(),
            )
        }
        Command::Batch(args) => trackless::cli::batch::run(
            &args,
            &policy,
            &settings,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
        Command::CheckConfig => trackless::cli::check::run(
            &settings,
            &policy,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
        Command::Imap { cmd } => trackless::cli::imap::run(
            &cmd,
            &policy,
            &settings,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
        Command::Log { cmd } => trackless::cli::report::prune(
            &cmd,
            &settings.log_path(false),
            &mut std::io::stdout().lock(),
        ),
    }
}

/// trackless.1 for the whole command and trackless-NAME.1 for each visible sub-command.
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command().version(env!("CARGO_PKG_VERSION"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    std::fs::write(dir.join("trackless.1"), &buf)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("trackless-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .version(env!("CARGO_PKG_VERSION"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        std::fs::write(dir.join(format!("{name}.1")), &buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter-only parser reads what the full one reads, and leaves everything else to it.
    #[test]
    fn the_filter_fast_path_parses_like_the_full_command() {
        let taken: &[&[&str]] = &[
            &["trackless", "filter"],
            &["trackless", "--no-log", "filter"],
            &["trackless", "filter", "--no-log"],
            &[
                "trackless",
                "--config",
                "/dev/null",
                "--log",
                "/tmp/l.sqlite",
                "filter",
            ],
            &["trackless", "--log", "filter", "filter"],
        ];
        for argv in taken {
            let fast = filter_fast_path(argv.iter()).unwrap_or_else(|| panic!("{argv:?}"));
            let full = Cli::try_parse_from(argv.iter()).expect("full parser");
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{argv:?}");
        }
        let left: &[&[&str]] = &[
            &["trackless", "inspect", "filter"],
            &["trackless", "filter", "--help"],
            &["trackless", "filter", "extra"],
            &["trackless", "--no-such-option", "filter"],
            &["trackless", "report"],
            &["trackless", "--version"],
        ];
        for argv in left {
            assert!(filter_fast_path(argv.iter()).is_none(), "{argv:?}");
        }
    }
}
