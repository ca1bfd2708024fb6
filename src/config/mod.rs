//! The configuration file, `/etc/trackless/trackless.toml` by default: one file for every mode.
//! Every key is optional (the built-in default applies) and command-line flags override it.
//! An unknown key or a bad value is an error naming the file, the line and the key — never
//! ignored. `packaging/trackless.toml` documents every key.

pub mod values;

use crate::core::policy::OpaqueLinks;
use crate::serve::forward::Target;
use crate::serve::listen::ListenAddr;
use crate::serve::Overload;
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use values::{Dur, Mode, Parsed, Size};

/// Where the system-wide file lives.
pub const SYSTEM_PATH: &str = "/etc/trackless/trackless.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub policy: PolicySection,
    pub allow: AllowSection,
    pub limits: LimitsSection,
    pub log: LogSection,
    pub milter: DaemonSection,
    pub smtp: FilterSection,
    pub lmtp: FilterSection,
    pub batch: BatchSection,
    pub pipe: PipeSection,
    /// `[imap.NAME]`: one mailbox at an IMAP server per name (`trackless imap sync --account NAME`).
    pub imap: std::collections::BTreeMap<String, ImapAccount>,
    /// The file this was read from (None: built-in defaults only).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// Its text, to point at a key in later errors.
    #[serde(skip)]
    text: String,
}

/// What counts as a tracker and what is done about it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Rules files merged over the built-in rules, in order (relative to this file).
    pub rules: Vec<PathBuf>,
    pub opaque_links: Option<OpaqueLinks>,
    pub links: Option<bool>,
    pub authserv_ids: Vec<String>,
    pub own_hosts: Vec<String>,
    /// Tracking parameter names added to the built-in list.
    pub tracking_params: Vec<String>,
    /// Tracking parameter name prefixes added to the built-in list.
    pub tracking_param_prefixes: Vec<String>,
    pub pixel_heuristics: Option<bool>,
    pub pixel_max_px: Option<f32>,
}

/// Senders whose mail is not rewritten.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllowSection {
    pub senders: Vec<String>,
    pub domains: Vec<String>,
    pub require_dkim: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub max_size: Option<Size>,
    pub max_depth: Option<NonZeroUsize>,
    pub html_memory: Option<Size>,
    pub max_time: Option<Dur>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub enabled: Option<bool>,
    /// A SQLite file, or a `postgres://` URL.
    pub path: Option<String>,
    pub subject: Option<bool>,
    pub recipients: Option<bool>,
    pub headers: Option<bool>,
    /// Keep the original bytes of tracked messages beside the log (`"off"`, `"tracked"`).
    pub keep_originals: Option<crate::log::KeepOriginals>,
    pub retention: Option<Dur>,
    pub queue: Option<NonZeroUsize>,
}

/// `[milter]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    pub listen: Option<Parsed<ListenAddr>>,
    pub socket_mode: Option<Mode>,
    pub workers: Option<NonZeroUsize>,
    pub max_connections: Option<NonZeroUsize>,
    pub queue_wait: Option<Dur>,
    pub on_overload: Option<Overload>,
    /// Prometheus metrics listener (off unless set).
    pub metrics: Option<Parsed<SocketAddr>>,
}

/// `[smtp]` and `[lmtp]`: the daemon keys plus the content-filter ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSection {
    pub listen: Option<Parsed<ListenAddr>>,
    pub socket_mode: Option<Mode>,
    pub workers: Option<NonZeroUsize>,
    pub max_connections: Option<NonZeroUsize>,
    pub queue_wait: Option<Dur>,
    pub on_overload: Option<Overload>,
    pub metrics: Option<Parsed<SocketAddr>>,
    pub forward: Option<Parsed<Target>>,
    pub hostname: Option<String>,
    pub max_size: Option<Size>,
    pub max_recipients: Option<NonZeroUsize>,
    pub timeout: Option<Dur>,
    pub downstream_timeout: Option<Dur>,
}

impl FilterSection {
    /// The keys it shares with `[milter]`.
    pub fn daemon(&self) -> DaemonSection {
        DaemonSection {
            listen: self.listen.clone(),
            socket_mode: self.socket_mode,
            workers: self.workers,
            max_connections: self.max_connections,
            queue_wait: self.queue_wait,
            on_overload: self.on_overload,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSection {
    pub jobs: Option<NonZeroUsize>,
    pub backup: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipeSection {
    pub sendmail: Option<String>,
}

/// How the connection to an IMAP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    #[default]
    Implicit,
    /// Plain, then STARTTLS before anything else is said (port 143).
    Starttls,
    /// No TLS at all: only with `insecure = true`, and only to loopback.
    None,
}

/// How trackless logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapAuth {
    /// SASL PLAIN.
    #[default]
    Plain,
    /// The LOGIN command.
    Login,
    /// SASL XOAUTH2, the access token coming from `password_command`.
    Xoauth2,
}

/// What happens to the original of a message replaced by its clean copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Originals {
    /// Deleted once the clean copy is confirmed.
    Delete,
    /// Moved to this folder (created if missing).
    Folder(String),
}

impl Default for Originals {
    fn default() -> Self {
        Originals::Folder("Trackless/Originals".into())
    }
}

impl std::str::FromStr for Originals {
    type Err = String;
    fn from_str(s: &str) -> Result<Originals, String> {
        match s.split_once(':') {
            _ if s == "delete" => Ok(Originals::Delete),
            Some(("folder", f)) if !f.trim().is_empty() => Ok(Originals::Folder(f.trim().into())),
            _ => Err(format!(
                "{s:?}: write \"delete\" or \"folder:NAME\" (e.g. \"folder:Trackless/Originals\")"
            )),
        }
    }
}

/// `[imap.NAME]`: a mailbox at an IMAP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapAccount {
    pub host: String,
    /// Default: 993 with implicit TLS, 143 otherwise.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: ImapTls,
    /// Needed, with a loopback host, for `tls = "none"`.
    #[serde(default)]
    pub insecure: bool,
    /// An extra CA certificate (PEM) to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    pub user: String,
    /// A command whose first line of output is the password (or the OAuth access token);
    /// run by `sh -c`, never stored or logged.
    pub password_command: String,
    #[serde(default)]
    pub auth: ImapAuth,
    /// Folders to clean, `*` and `%` as in IMAP LIST (default INBOX).
    pub folders: Option<Vec<String>>,
    pub originals: Option<Parsed<Originals>>,
    /// How long kept originals stay in their folder (default 30d).
    pub originals_retention: Option<Dur>,
    /// Skip mail older than this: a duration (`30d`) or a date (`2026-11-01`).
    pub since: Option<String>,
    /// Messages larger than this are left alone (default: `[limits] max_size`).
    pub max_size: Option<Size>,
}

impl ImapAccount {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            ImapTls::Implicit => 993,
            _ => 143,
        })
    }

    pub fn folders(&self) -> Vec<String> {
        self.folders
            .clone()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| vec!["INBOX".into()])
    }

    pub fn originals(&self) -> Originals {
        self.originals.clone().map(|p| p.0).unwrap_or_default()
    }

    /// How long kept originals stay (default 30 days).
    pub fn retention(&self) -> std::time::Duration {
        self.originals_retention
            .as_ref()
            .map_or(std::time::Duration::from_secs(30 * 86_400), |d| d.0)
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// `key` is the dotted key (`log.retention`) or the table header that is wrong.
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
}

impl Config {
    /// Read and check a file. Relative paths in it are made relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &shown)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        cfg.policy.rules.iter_mut().for_each(resolve);
        if let Some(b) = cfg.batch.backup.as_mut() {
            resolve(b);
        }
        for a in cfg.imap.values_mut() {
            if let Some(ca) = a.ca_file.as_mut() {
                resolve(ca);
            }
        }
        if let Some(p) = cfg.log.path.as_mut() {
            if !p.contains("://") && Path::new(p).is_relative() {
                *p = base.join(&*p).display().to_string();
            }
        }
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parse TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| locate_error(text, origin, &e))?;
        cfg.text = text.to_string();
        let bad = |key: &str, message: String| {
            let (line, key) = find_key(text, key);
            ConfigError::Invalid {
                path: origin.to_string(),
                line,
                key,
                message,
            }
        };
        if let Some(px) = cfg.policy.pixel_max_px {
            if !(0.0..=100.0).contains(&px) {
                return Err(bad(
                    "policy.pixel_max_px",
                    format!("{px} is not a size between 0 and 100 px"),
                ));
            }
        }
        for (name, a) in &cfg.imap {
            let key = |k: &str| format!("imap.{name}.{k}");
            if a.tls == ImapTls::None && !(a.insecure && is_loopback_host(&a.host)) {
                return Err(bad(
                    &key("tls"),
                    "\"none\" sends the password in clear: only with insecure = true and a loopback host".into(),
                ));
            }
            if let Some(since) = &a.since {
                crate::log::time::parse_when(since, 0).map_err(|e| bad(&key("since"), e))?;
            }
            if a.password_command.trim().is_empty() {
                return Err(bad(&key("password_command"), "is empty".into()));
            }
        }
        for (key, section) in [("smtp", &cfg.smtp), ("lmtp", &cfg.lmtp)] {
            if let Some(Parsed(t)) = &section.forward {
                if section.listen.as_ref().is_some_and(|Parsed(l)| same(l, t)) {
                    return Err(bad(
                        &format!("{key}.forward"),
                        "forwards to its own listening address (a mail loop)".into(),
                    ));
                }
            }
        }
        Ok(cfg)
    }

    /// `FILE:LINE: KEY` for a dotted key (`policy.rules`), to prefix errors found after
    /// parsing; just the key without a file.
    pub fn at(&self, dotted: &str) -> String {
        match &self.source {
            Some(p) => {
                let (line, key) = find_key(&self.text, dotted);
                format!("{}:{line}: {key}", p.display())
            }
            None => dotted.to_string(),
        }
    }

    /// The file to read when `--config` is not given: the user's own
    /// (`$XDG_CONFIG_HOME/trackless/trackless.toml`), else the system one — the first that
    /// exists and that this user may read. (The system file is 0640 root:trackless; another
    /// local user running `trackless filter` gets the built-in defaults or their own file.)
    pub fn default_path() -> Option<PathBuf> {
        Config::candidates()
            .into_iter()
            .find(|p| p.is_file() && std::fs::File::open(p).is_ok())
    }

    /// Where [`Config::default_path`] looks, in order.
    pub fn candidates() -> Vec<PathBuf> {
        let user = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .map(|d| d.join("trackless").join("trackless.toml"));
        user.into_iter()
            .chain(std::iter::once(PathBuf::from(SYSTEM_PATH)))
            .collect()
    }
}

fn same(listen: &ListenAddr, target: &Target) -> bool {
    use crate::serve::forward::Addr;
    match (listen, &target.addr) {
        (ListenAddr::Tcp(a), Addr::Tcp(t)) => a.to_string() == *t,
        (ListenAddr::Unix(p), Addr::Unix(q)) => p == q,
        _ => false,
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key written at `offset`: the table header above it plus the key on its line.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim();
    if line.starts_with('[') {
        return line.to_string();
    }
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(['[', ']']).trim().to_string());
    match table {
        Some(t) if !key.is_empty() => format!("{t}.{key}"),
        Some(t) => t,
        None => key.to_string(),
    }
}

/// Line and shown key of a dotted key (`section.key`) in the text, for checks made after
/// parsing. Falls back to line 1 and the key as given.
fn find_key(text: &str, dotted: &str) -> (usize, String) {
    let (table, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut in_table = table.is_empty();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = t.trim_matches(['[', ']']).trim() == table;
        } else if in_table && t.split('=').next().is_some_and(|k| k.trim() == key) {
            return (line_of(text, offset), dotted.to_string());
        }
        offset += line.len();
    }
    (1, dotted.to_string())
}

fn locate_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => ConfigError::Invalid {
            path: origin.to_string(),
            line: line_of(text, span.start),
            key: key_at(text, span.start),
            message,
        },
        None => ConfigError::Syntax {
            path: origin.to_string(),
            message,
        },
    }
}

#[cfg(test)]
mod tests;
