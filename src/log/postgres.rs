//! The tracking log in PostgreSQL, for several MX hosts writing one log
//! (`[log] path = "postgres://user:pass@db.example.net/trackless"`). Same tables, columns and
//! reports as the SQLite log; the schema is created and migrated on first connect, under an
//! advisory lock so that filters starting together do not race.
//!
//! TLS (rustls): `sslmode=require` (also `verify-ca`, `verify-full`) encrypts the connection
//! and always verifies the server's certificate and host name, against the system's CA
//! certificates or the ones in `sslrootcert=FILE` — stricter than libpq's `require`, because a
//! log of who tracks whom is worth protecting. `sslmode=prefer` uses TLS when the server offers
//! it (verified the same way); without `sslmode`, or with `disable`, the connection is plain
//! (fine over loopback or a unix socket).

use super::schema::Dialect;
use super::sql::{Arg, Backend, Cell};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::time::Duration;

/// Taken by every trackless that migrates, so that filters starting together do not race
/// (any key, the same in every trackless: "trackles").
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(8390876135376577907)";

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("tracking log {url}: {message}")]
    Db { url: String, message: String },
    #[error("tracking log {url}: schema version {found} is newer than this trackless ({known})")]
    TooNew { url: String, found: i64, known: i64 },
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let host = redact_query(host);
    match auth.map(|a| a.split_once(':').map_or(a, |(u, _)| u)) {
        Some(user) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://{host}"),
    }
}

fn redact_query(s: &str) -> String {
    match s.split_once('?') {
        Some((base, q)) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
        None => s.to_string(),
    }
}

pub struct PgStore {
    client: Client,
    url: String,
    /// Statements prepared on this connection, by their text.
    prepared: HashMap<String, Statement>,
}

/// How to secure the connection, from the URL's `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM file of CA certificates to trust instead of the system's.
    pub root_cert: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
}

/// Take `sslmode` and `sslrootcert` out of the URL (the client library knows neither
/// `verify-*` nor `sslrootcert`); returns the URL without them and the TLS settings.
pub fn split_tls(url: &str) -> Result<(String, Tls), String> {
    let mut tls = Tls {
        mode: TlsMode::Disable,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), tls));
    };
    let mut kept = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "sslmode" => {
                tls.mode = match v.as_str() {
                    "disable" | "allow" => TlsMode::Disable,
                    "prefer" => TlsMode::Prefer,
                    "require" | "verify-ca" | "verify-full" => TlsMode::Require,
                    other => {
                        return Err(format!(
                        "sslmode={other}: use disable, prefer, require, verify-ca or verify-full"
                    ))
                    }
                }
            }
            "sslrootcert" => tls.root_cert = Some(std::path::PathBuf::from(v)),
            _ => kept.push(kv),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, tls))
}

/// Does the URL point at this machine (loopback or a unix socket), where TLS adds nothing?
pub fn is_local(url: &str) -> bool {
    let Ok((plain, _)) = split_tls(url) else {
        return false;
    };
    let Ok(config) = plain.parse::<postgres::Config>() else {
        return false;
    };
    let hosts = config.get_hosts();
    !hosts.is_empty()
        && hosts.iter().all(|h| match h {
            postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            postgres::config::Host::Unix(_) => true,
        })
}

/// A rustls client configuration trusting the system's CAs, or those of `root_cert`.
fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match &tls.root_cert {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| format!("sslrootcert {}: {e}", path.display());
            for c in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("TLS needs CA certificates: none found on the system (install ca-certificates, or give sslrootcert=FILE)".into());
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl PgStore {
    /// Connect (5 s timeout unless the URL sets connect_timeout) and migrate.
    pub fn open(url: &str) -> Result<PgStore, PgError> {
        let shown = redact(url);
        let db = |message: String| PgError::Db {
            url: shown.clone(),
            message,
        };
        let (plain_url, tls) = split_tls(url).map_err(db)?;
        let mut config: postgres::Config = plain_url.parse().map_err(|e| db(format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("trackless");
        let client = match tls.mode {
            TlsMode::Disable => {
                config.ssl_mode(postgres::config::SslMode::Disable);
                config.connect(NoTls)
            }
            mode => {
                config.ssl_mode(if mode == TlsMode::Require {
                    postgres::config::SslMode::Require
                } else {
                    postgres::config::SslMode::Prefer
                });
                let connector =
                    tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(&tls).map_err(db)?);
                config.connect(connector)
            }
        }
        .map_err(|e| db(describe(&e)))?;
        let mut store = PgStore {
            client,
            url: shown,
            prepared: HashMap::new(),
        };
        store.migrate(super::schema::VERSION)?;
        Ok(store)
    }

    /// Is this connection encrypted? (The server's own view, pg_stat_ssl.)
    pub fn tls_in_use(&mut self) -> Result<bool, PgError> {
        let r = self
            .client
            .query_one(
                "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(r.get(0))
    }

    fn err(&self, e: postgres::Error) -> PgError {
        PgError::Db {
            url: self.url.clone(),
            message: describe(&e),
        }
    }

    /// Is the connection gone (server down or restarted)? Then reconnect.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The statement prepared for this text (once per connection).
    fn statement(&mut self, sql: &str) -> Result<Statement, PgError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(|e| self.err(e))?;
        self.prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(i) => i.to_sql(ty, out),
            Arg::Text(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <&str as ToSql>::accepts(ty)
    }

    postgres::types::to_sql_checked!();
}

impl Backend for PgStore {
    type Error = PgError;
    const DIALECT: Dialect = Dialect::Postgres;

    fn batch(&mut self, sql: &str) -> Result<(), PgError> {
        self.client.batch_execute(sql).map_err(|e| self.err(e))
    }

    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, PgError> {
        let stmt = self.statement(sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        self.client.execute(&stmt, &args).map_err(|e| self.err(e))
    }

    fn query(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        row: &mut dyn FnMut(&[Cell<'_>]),
    ) -> Result<(), PgError> {
        let stmt = self.statement(sql)?;
        let url = self.url.clone();
        let err = |e: postgres::Error| PgError::Db {
            url: url.clone(),
            message: describe(&e),
        };
        let mut rows = self.client.query_raw(&stmt, args.iter()).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let cells: Vec<Cell<'_>> = r
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| match *c.type_() {
                    Type::INT8 => r.get::<_, Option<i64>>(i).map_or(Cell::Null, Cell::Int),
                    Type::INT4 => r
                        .get::<_, Option<i32>>(i)
                        .map_or(Cell::Null, |v| Cell::Int(v.into())),
                    Type::INT2 => r
                        .get::<_, Option<i16>>(i)
                        .map_or(Cell::Null, |v| Cell::Int(v.into())),
                    Type::TEXT | Type::VARCHAR => {
                        r.get::<_, Option<&str>>(i).map_or(Cell::Null, Cell::Text)
                    }
                    _ => Cell::Null,
                })
                .collect();
            row(&cells);
        }
        Ok(())
    }

    fn too_new(&self, found: i64) -> PgError {
        PgError::TooNew {
            url: self.url.clone(),
            found,
            known: super::schema::VERSION as i64,
        }
    }

    fn migration_lock(&self) -> Option<&'static str> {
        Some(MIGRATION_LOCK)
    }
}

/// The server's message when there is one (postgres::Error's Display is terse).
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_shown() {
        assert_eq!(
            redact("postgres://trackless:s3cret@db.example.net:5432/log"),
            "postgres://trackless:***@db.example.net:5432/log"
        );
        assert_eq!(
            redact("postgresql://db.example.net/log?user=t&password=s3cret&sslmode=disable"),
            "postgresql://db.example.net/log?user=t&password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn local_servers() {
        assert!(is_local("postgres://u:p@127.0.0.1:5432/db"));
        assert!(is_local("postgres://localhost/db"));
        assert!(is_local("postgres://u@%2Frun%2Fpostgresql/db"));
        assert!(!is_local("postgres://u:p@db.example.net/db"));
        assert!(!is_local("postgres://u:p@192.0.2.1/db"));
    }

    #[test]
    fn tls_settings_come_out_of_the_url() {
        let (url, tls) = split_tls(
            "postgres://u:p@db.example/log?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem&application_name=x",
        )
        .expect("parses");
        assert_eq!(url, "postgres://u:p@db.example/log?application_name=x");
        assert_eq!(tls.mode, TlsMode::Require);
        assert_eq!(
            tls.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca x.pem"))
        );
        let (url, tls) = split_tls("postgres://h/db").expect("parses");
        assert_eq!(
            (url.as_str(), tls.mode),
            ("postgres://h/db", TlsMode::Disable)
        );
        let prefer = split_tls("postgres://h/db?sslmode=prefer").expect("ok").1;
        assert_eq!(prefer.mode, TlsMode::Prefer);
        assert!(split_tls("postgres://h/db?sslmode=always").is_err());
        // A missing CA file is a clear error, without the password.
        let e = PgStore::open(
            "postgres://u:secret@127.0.0.1:1/db?sslmode=require&sslrootcert=/nonexistent.pem",
        )
        .err()
        .expect("error");
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent.pem") && !msg.contains("secret"),
            "{msg}"
        );
    }

    #[test]
    fn unreachable_server_is_a_clear_error() {
        // Port 1 on loopback: nothing listens there.
        let e = PgStore::open("postgres://u:secret@127.0.0.1:1/db?connect_timeout=2")
            .err()
            .expect("unreachable");
        let msg = e.to_string();
        assert!(
            msg.contains("127.0.0.1") && !msg.contains("secret"),
            "{msg}"
        );
    }
}
