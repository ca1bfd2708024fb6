//! `trackless check-config`: read the configuration file, load every rules file it names,
//! resolve each daemon's settings, and print the effective settings (file, flags and built-in
//! defaults together) as TOML. Any error names the file, line and key and exits 1.

use super::daemon::{DaemonArgs, DaemonSettings, FilterArgs, FilterSettings};
use super::Settings;
use crate::config::values::{Dur, Size};
use crate::core::policy::{OpaqueLinks, Policy};
use crate::serve::smtp::Proto;
use std::io::Write;
use toml::Value;

/// An invalid configuration is `Error::Failed` (exit 1).
pub fn run(
    settings: &Settings,
    policy: &Policy,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<(), super::Error> {
    let mut buf = Vec::new();
    let warnings = check(settings, policy, &mut buf).map_err(super::Error::Failed)?;
    out.write_all(&buf).map_err(super::Error::output)?;
    for w in warnings {
        let _ = writeln!(warn, "trackless check-config: warning: {w}");
    }
    Ok(())
}

fn str(s: impl std::fmt::Display) -> Value {
    Value::String(s.to_string())
}

fn list<T: std::fmt::Display>(items: &[T]) -> Value {
    Value::Array(items.iter().map(str).collect())
}

struct Out<'a> {
    w: &'a mut dyn Write,
}

impl Out<'_> {
    fn table(&mut self, name: &str) -> std::io::Result<()> {
        writeln!(self.w, "\n[{name}]")
    }
    fn kv(&mut self, key: &str, v: Value) -> std::io::Result<()> {
        writeln!(self.w, "{key} = {v}")
    }
    fn note(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.w, "# {text}")
    }
}

fn check(settings: &Settings, policy: &Policy, w: &mut dyn Write) -> Result<Vec<String>, String> {
    let cfg = &settings.config;
    let mut warnings = Vec::new();
    let io = |e: std::io::Error| e.to_string();
    let mut o = Out { w };
    match &cfg.source {
        Some(p) => o.note(&format!("{} is valid", p.display())).map_err(io)?,
        None => {
            o.note("no configuration file (built-in defaults; see --config)")
                .map_err(io)?;
            for p in crate::config::Config::candidates() {
                if p.is_file() {
                    warnings.push(format!(
                        "{} exists but you may not read it: running with built-in defaults",
                        p.display()
                    ));
                }
            }
        }
    }
    o.note("effective settings: command-line flags, then the file, then built-in defaults")
        .map_err(io)?;

    let r = &policy.rules;
    o.table("policy").map_err(io)?;
    o.note(&format!(
        "rules: {} open-tracking, {} font, {} decoder, {} click, {} tracking parameters + {} prefixes, {} ESP fingerprints{}",
        r.open.len(),
        r.font.len(),
        r.decoder.len(),
        r.click.len(),
        r.params.names().len(),
        r.params.prefixes().len(),
        r.esp.len(),
        if r.clearurls.is_some() { ", a ClearURLs catalog" } else { "" }
    ))
    .map_err(io)?;
    let files: Vec<String> = cfg
        .policy
        .rules
        .iter()
        .chain(&settings.policy_args.rules)
        .map(|p| p.display().to_string())
        .collect();
    o.kv("rules", list(&files)).map_err(io)?;
    let opaque = match policy.opaque_links {
        OpaqueLinks::Keep => "keep",
        OpaqueLinks::Mark => "mark",
    };
    o.kv("opaque_links", str(opaque)).map_err(io)?;
    o.kv("links", Value::Boolean(policy.links)).map_err(io)?;
    o.kv("authserv_ids", list(&policy.trust.authserv_ids))
        .map_err(io)?;
    o.kv("own_hosts", list(&policy.trust.own_hosts))
        .map_err(io)?;
    o.kv("tracking_params", list(&cfg.policy.tracking_params))
        .map_err(io)?;
    o.kv(
        "tracking_param_prefixes",
        list(&cfg.policy.tracking_param_prefixes),
    )
    .map_err(io)?;
    o.kv("pixel_heuristics", Value::Boolean(policy.heuristics.pixels))
        .map_err(io)?;
    o.kv(
        "pixel_max_px",
        Value::Float(f64::from(policy.heuristics.pixel_max_px)),
    )
    .map_err(io)?;

    o.table("allow").map_err(io)?;
    o.kv("senders", list(&policy.allow.senders)).map_err(io)?;
    o.kv("domains", list(&policy.allow.domains)).map_err(io)?;
    o.kv("require_dkim", Value::Boolean(policy.allow.require_dkim))
        .map_err(io)?;
    if !policy.allow.is_empty() && !policy.allow.require_dkim {
        warnings.push(
            "allow.require_dkim = false: anyone who forges an allow-listed From address bypasses rewriting".into(),
        );
    }

    let l = &policy.limits;
    o.table("limits").map_err(io)?;
    o.kv("max_size", str(Size(l.max_size))).map_err(io)?;
    o.kv("max_depth", Value::Integer(l.max_depth as i64))
        .map_err(io)?;
    o.kv("html_memory", str(Size(l.html_memory))).map_err(io)?;
    o.kv("max_time", str(Dur(l.max_time))).map_err(io)?;

    let log = settings.log(true, false);
    o.table("log").map_err(io)?;
    o.kv("enabled", Value::Boolean(log.path.is_some()))
        .map_err(io)?;
    let target = settings.log_path(true);
    o.kv("path", str(&target)).map_err(io)?;
    match &target {
        crate::log::LogTarget::Postgres(url) => {
            if target.shown() != *url {
                o.note("(password not shown)").map_err(io)?;
            }
            if log.path.is_some() {
                // The daemons would start and keep filtering without it; the admin wants to
                // know now.
                match crate::log::Db::open(&target) {
                    Ok(db) => {
                        let tls = match db {
                            crate::log::Db::Postgres(mut p) => p.tls_in_use().unwrap_or(false),
                            crate::log::Db::Sqlite(_) => false,
                        };
                        o.note(&format!(
                            "PostgreSQL reachable ({}), schema up to date",
                            if tls { "TLS" } else { "not encrypted" }
                        ))
                        .map_err(io)?;
                        if !tls && !crate::log::postgres::is_local(url) {
                            warnings.push(format!(
                                "{}: the tracking log travels unencrypted; add ?sslmode=require to the URL",
                                cfg.at("log.path")
                            ));
                        }
                    }
                    Err(e) => {
                        let at = if settings.log_args.log.is_some() {
                            "--log".to_string()
                        } else {
                            cfg.at("log.path")
                        };
                        return Err(format!("{at}: {e}"));
                    }
                }
            }
        }
        crate::log::LogTarget::Sqlite(p) => {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            if log.path.is_some() && dir.is_some_and(|d| !d.exists()) {
                warnings.push(format!(
                    "log directory {} does not exist yet (it is created on first write)",
                    dir.map(|d| d.display().to_string()).unwrap_or_default()
                ));
            }
        }
    }
    if settings.log_args.log.is_none() && cfg.log.path.is_none() {
        o.note(&format!(
            "(the daemons' default; filter, pipe, batch and report use {})",
            crate::log::store::default_path(false).display()
        ))
        .map_err(io)?;
    }
    o.kv("subject", Value::Boolean(log.keep.subject))
        .map_err(io)?;
    o.kv("recipients", Value::Boolean(log.keep.recipients))
        .map_err(io)?;
    o.kv("headers", Value::Boolean(log.keep.headers))
        .map_err(io)?;
    o.kv(
        "keep_originals",
        str(cfg.log.keep_originals.unwrap_or_default().as_str()),
    )
    .map_err(io)?;
    if let Some(folder) = &log.keep.originals {
        o.note(&format!(
            "(originals of tracked messages kept in {}, by the daemons)",
            folder.dir().display()
        ))
        .map_err(io)?;
    }
    match cfg.log.retention {
        Some(d) => o.kv("retention", str(d)).map_err(io)?,
        None => o
            .note("retention: not set (entries are kept)")
            .map_err(io)?,
    }
    o.kv(
        "queue",
        Value::Integer(cfg.log.queue.map_or(10_000, |q| q.get()) as i64),
    )
    .map_err(io)?;

    let none = DaemonArgs::default();
    let milter = DaemonSettings::resolve("milter", &none, &cfg.milter, &cfg.log);

    daemon(&mut o, "milter", milter.as_ref().ok(), &mut warnings).map_err(io)?;
    for (name, proto) in [("smtp", Proto::Smtp), ("lmtp", Proto::Lmtp)] {
        let f = FilterSettings::resolve(proto, &FilterArgs::default(), cfg);
        daemon(
            &mut o,
            name,
            f.as_ref().ok().map(|f| &f.daemon),
            &mut warnings,
        )
        .map_err(io)?;
        if let Ok(f) = &f {
            let s = &f.server;
            o.kv("forward", str(&s.forward)).map_err(io)?;
            o.kv("hostname", str(&s.hostname)).map_err(io)?;
            o.kv("max_size", str(Size(s.max_size))).map_err(io)?;
            o.kv("max_recipients", Value::Integer(s.max_recipients as i64))
                .map_err(io)?;
            o.kv("timeout", str(Dur(s.command_timeout))).map_err(io)?;
            o.kv("downstream_timeout", str(Dur(s.downstream_timeout)))
                .map_err(io)?;
        } else if cfg_section_set(cfg, name) {
            // listen without forward (or the reverse) cannot start without flags.
            warnings.push(format!(
                "{}: {}",
                cfg.at(&format!("{name}.listen")),
                f.err().unwrap_or_default()
            ));
        }
    }

    o.table("batch").map_err(io)?;
    match cfg.batch.jobs {
        Some(j) => o.kv("jobs", Value::Integer(j.get() as i64)).map_err(io)?,
        None => o.note("jobs: the number of CPUs").map_err(io)?,
    }
    match &cfg.batch.backup {
        Some(b) => o.kv("backup", str(b.display())).map_err(io)?,
        None => o.note("backup: none").map_err(io)?,
    }
    o.table("pipe").map_err(io)?;
    o.kv(
        "sendmail",
        str(cfg.pipe.sendmail.as_deref().unwrap_or("/usr/sbin/sendmail")),
    )
    .map_err(io)?;
    for (name, a) in &cfg.imap {
        imap_account(&mut o, name, a, policy, &mut warnings).map_err(io)?;
    }
    Ok(warnings)
}

/// An `[imap.NAME]` section with its defaults filled in. The password command is shown (it is
/// not the password); it is not run here.
fn imap_account(
    o: &mut Out<'_>,
    name: &str,
    a: &crate::config::ImapAccount,
    policy: &Policy,
    warnings: &mut Vec<String>,
) -> std::io::Result<()> {
    use crate::config::{ImapAuth, ImapTls, Originals};
    o.table(&format!("imap.{name}"))?;
    o.kv("host", str(&a.host))?;
    o.kv("port", Value::Integer(i64::from(a.port())))?;
    let tls = match a.tls {
        ImapTls::Implicit => "implicit",
        ImapTls::Starttls => "starttls",
        ImapTls::None => "none",
    };
    o.kv("tls", str(tls))?;
    if let Some(ca) = &a.ca_file {
        o.kv("ca_file", str(ca.display()))?;
        if !ca.is_file() {
            warnings.push(format!(
                "[imap.{name}] ca_file {} does not exist",
                ca.display()
            ));
        }
    }
    o.kv("user", str(&a.user))?;
    o.kv("password_command", str(&a.password_command))?;
    let auth = match a.auth {
        ImapAuth::Plain => "plain",
        ImapAuth::Login => "login",
        ImapAuth::Xoauth2 => "xoauth2",
    };
    o.kv("auth", str(auth))?;
    o.kv("folders", list(&a.folders()))?;
    let originals = match a.originals() {
        Originals::Delete => "delete".to_string(),
        Originals::Folder(f) => format!("folder:{f}"),
    };
    o.kv("originals", str(originals))?;
    o.kv("originals_retention", str(Dur(a.retention())))?;
    if let Some(since) = &a.since {
        o.kv("since", str(since))?;
    }
    o.kv(
        "max_size",
        str(Size(a.max_size.map_or(policy.limits.max_size, |s| s.0))),
    )
}

/// Was anything set in `[smtp]`/`[lmtp]`?
fn cfg_section_set(cfg: &crate::config::Config, name: &str) -> bool {
    let s = if name == "smtp" { &cfg.smtp } else { &cfg.lmtp };
    s.listen.is_some() || s.forward.is_some()
}

fn daemon(
    o: &mut Out<'_>,
    name: &str,
    d: Option<&DaemonSettings>,
    warnings: &mut Vec<String>,
) -> std::io::Result<()> {
    o.table(name)?;
    let Some(d) = d else {
        return o.note(&format!(
            "not configured: `trackless {name}` needs {}",
            if name == "milter" {
                "--listen"
            } else {
                "--listen and --forward"
            }
        ));
    };
    o.kv("listen", str(&d.listen))?;
    o.kv("socket_mode", str(format!("{:04o}", d.socket_mode)))?;
    o.kv("workers", Value::Integer(d.workers as i64))?;
    o.kv("max_connections", Value::Integer(d.max_connections as i64))?;
    o.kv("queue_wait", str(Dur(d.queue_wait)))?;
    o.kv(
        "on_overload",
        str(match d.on_overload {
            crate::serve::Overload::Accept => "accept",
            crate::serve::Overload::Tempfail => "tempfail",
        }),
    )?;
    match d.metrics {
        Some(m) => {
            o.kv("metrics", str(m))?;
            if !m.ip().is_loopback() {
                warnings.push(format!(
                    "[{name}] metrics listens on {m}, which is not loopback: anyone who can reach it sees per-ESP counts"
                ));
            }
        }
        None => o.note("metrics: off")?,
    }
    if let crate::serve::listen::ListenAddr::Tcp(a) = &d.listen {
        if !a.ip().is_loopback() {
            warnings.push(format!(
                "[{name}] listens on {a}, which is not loopback: make sure only your MTA can connect"
            ));
        }
    }
    Ok(())
}
