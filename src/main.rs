//! The `trackless` command: parse arguments, build the policy, run the chosen mode.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "trackless",
    version,
    about = "Neutralise email trackers: pixels, redirect links, remote fonts"
)]
struct Cli {
    /// Configuration file [default: ~/.config/trackless/trackless.toml, else
    /// /etc/trackless/trackless.toml, if they exist]. Flags override it.
    #[arg(long, value_name = "FILE", global = true, env = "TRACKLESS_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    policy: trackless::cli::PolicyArgs,
    #[command(flatten)]
    log: trackless::cli::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
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
    /// Postfix/sendmail milter (before-queue): smtpd_milters = unix:/run/trackless/milter.sock
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
    /// Maintain the tracking log.
    Log {
        #[command(subcommand)]
        cmd: trackless::cli::report::LogCmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = trackless::cli::Settings::load(cli.config.as_deref(), cli.policy, cli.log)
        .and_then(|settings| Ok((settings.policy()?, settings)));
    let (policy, settings) = match loaded {
        Ok(p) => p,
        Err(e) if matches!(cli.command, Command::Filter) => {
            // A filter must not lose mail over a broken configuration or rules file.
            let status = trackless::cli::filter::pass_through(
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &mut std::io::stderr(),
                &e,
            );
            return ExitCode::from(u8::try_from(status).unwrap_or(1));
        }
        Err(e) if matches!(cli.command, Command::Pipe(_)) => {
            // Postfix keeps the mail queued on EX_TEMPFAIL; it is retried once rules are fixed.
            eprintln!("trackless pipe: {e}");
            return ExitCode::from(trackless::cli::pipe::EX_TEMPFAIL as u8);
        }
        Err(e) if matches!(cli.command, Command::CheckConfig) => {
            eprintln!("trackless check-config: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("trackless: {e}");
            return ExitCode::from(2);
        }
    };
    let status = match cli.command {
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
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
        Command::Milter(args) => trackless::cli::daemon::milter(&args, &settings),
        Command::Smtp(args) => trackless::cli::daemon::content_filter(
            trackless::serve::smtp::Proto::Smtp,
            &args,
            &settings,
        ),
        Command::Lmtp(args) => trackless::cli::daemon::content_filter(
            trackless::serve::smtp::Proto::Lmtp,
            &args,
            &settings,
        ),
        Command::Pipe(args) => {
            let sendmail = args
                .sendmail
                .clone()
                .or(settings.config.pipe.sendmail.clone())
                .unwrap_or_else(|| "/usr/sbin/sendmail".into());
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
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
        Command::Log { cmd } => trackless::cli::report::prune(
            &cmd,
            &settings.log_path(false),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr(),
        ),
    };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
