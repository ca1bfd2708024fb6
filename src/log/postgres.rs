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

use super::evidence::{message_id_of, EspEvidence, MessageEvidence, TrackerEvidence};
use super::record::Record;
use super::report::{self, By, Filter, Param, Row, ScanRow, Summary};
use super::time;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, NoTls};
use std::time::Duration;

/// Migrations, in order, mirroring the SQLite ones (store.rs) column for column.
pub const MIGRATIONS: &[&str] = &[
    "CREATE TABLE messages (
        id BIGSERIAL PRIMARY KEY,
        ts BIGINT NOT NULL,
        date BIGINT,
        seen BIGINT NOT NULL,
        mode TEXT NOT NULL,
        message_id_hash TEXT,
        envelope_sender TEXT,
        from_addr TEXT,
        from_domain TEXT,
        subject TEXT,
        recipients TEXT,
        changed BIGINT NOT NULL,
        tracked BIGINT NOT NULL,
        pixels BIGINT NOT NULL,
        fonts BIGINT NOT NULL,
        links_total BIGINT NOT NULL,
        links_unwrapped BIGINT NOT NULL,
        links_cleaned BIGINT NOT NULL,
        links_opaque BIGINT NOT NULL,
        skipped TEXT,
        esp TEXT,
        esp_confidence TEXT,
        jurisdiction TEXT,
        us_exposure BIGINT
     );
     CREATE INDEX messages_ts ON messages(ts);
     CREATE INDEX messages_seen ON messages(seen);
     CREATE INDEX messages_domain_seen ON messages(from_domain, seen);
     CREATE INDEX messages_from_seen ON messages(from_addr, seen);
     CREATE INDEX messages_msgid ON messages(message_id_hash);
     CREATE TABLE esp (
        id BIGSERIAL PRIMARY KEY,
        message BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        layer TEXT NOT NULL,
        confidence TEXT NOT NULL,
        jurisdiction TEXT,
        us_exposure BIGINT,
        evidence TEXT NOT NULL
     );
     CREATE INDEX esp_message ON esp(message);
     CREATE TABLE trackers (
        id BIGSERIAL PRIMARY KEY,
        message BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        action TEXT NOT NULL,
        host TEXT NOT NULL,
        vendor TEXT,
        rule TEXT,
        url TEXT NOT NULL
     );
     CREATE INDEX trackers_message ON trackers(message);",
    "CREATE TABLE headers (
        message BIGINT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        block TEXT NOT NULL
     );",
    "ALTER TABLE messages ADD COLUMN spacers BIGINT NOT NULL DEFAULT 0;",
];

/// Any key for `pg_advisory_xact_lock`, the same in every trackless.
const MIGRATION_LOCK: i64 = 0x7472_6163_6b6c_6573; // "trackles"

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
        let mut store = PgStore { client, url: shown };
        store.migrate(MIGRATIONS.len())?;
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

    /// Apply migrations up to `target` in one transaction under an advisory lock.
    pub fn migrate(&mut self, target: usize) -> Result<(), PgError> {
        let url = self.url.clone();
        let db = |e: postgres::Error| PgError::Db {
            url: url.clone(),
            message: describe(&e),
        };
        let mut tx = self.client.transaction().map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(db)?;
        let current: i64 = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(db)?
            .map_or(0, |r| r.get(0));
        if current > MIGRATIONS.len() as i64 {
            return Err(PgError::TooNew {
                url: url.clone(),
                found: current,
                known: MIGRATIONS.len() as i64,
            });
        }
        for m in MIGRATIONS.iter().take(target).skip(current as usize) {
            tx.batch_execute(m).map_err(db)?;
        }
        let new = (target as i64).max(current);
        if new != current {
            tx.execute("DELETE FROM schema_version", &[]).map_err(db)?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&new])
                .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    pub fn version(&mut self) -> Result<i64, PgError> {
        let r = self
            .client
            .query_one("SELECT version FROM schema_version", &[])
            .map_err(|e| self.err(e))?;
        Ok(r.get(0))
    }

    /// Insert records in one transaction (all or none), skipping batch-mode messages already
    /// logged (as the SQLite log does).
    pub fn insert(&mut self, records: &[Record]) -> Result<(), PgError> {
        let url = self.url.clone();
        let db = |e: postgres::Error| PgError::Db {
            url: url.clone(),
            message: describe(&e),
        };
        let mut tx = self.client.transaction().map_err(db)?;
        let msg = tx
            .prepare(
                "INSERT INTO messages (ts, date, seen, mode, message_id_hash, envelope_sender,
                    from_addr, from_domain, subject, recipients, changed, tracked, pixels,
                    fonts, links_total, links_unwrapped, links_cleaned, links_opaque, skipped,
                    esp, esp_confidence, jurisdiction, us_exposure, spacers)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18, $19, $20, $21, $22, $23, $24)
                 RETURNING id",
            )
            .map_err(db)?;
        let esp = tx
            .prepare(
                "INSERT INTO esp (message, name, layer, confidence, jurisdiction, us_exposure, evidence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .map_err(db)?;
        let trk = tx
            .prepare(
                "INSERT INTO trackers (message, kind, action, host, vendor, rule, url)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .map_err(db)?;
        let hdr = tx
            .prepare("INSERT INTO headers (message, block) VALUES ($1, $2)")
            .map_err(db)?;
        let seen_batch = tx
            .prepare("SELECT 1 FROM messages WHERE message_id_hash = $1 AND mode = 'batch' LIMIT 1")
            .map_err(db)?;
        let b = |v: bool| i64::from(v);
        let n = |v: u32| i64::from(v);
        for r in records {
            if r.mode == "batch" {
                if let Some(h) = &r.message_id_hash {
                    if tx.query_opt(&seen_batch, &[h]).map_err(db)?.is_some() {
                        continue;
                    }
                }
            }
            let us = r.us_exposure.map(b);
            let row = tx
                .query_one(
                    &msg,
                    &[
                        &r.ts,
                        &r.date,
                        &r.seen(),
                        &r.mode,
                        &r.message_id_hash,
                        &r.envelope_sender,
                        &r.from_addr,
                        &r.from_domain,
                        &r.subject,
                        &r.recipients,
                        &b(r.changed),
                        &b(r.tracked()),
                        &n(r.pixels),
                        &n(r.fonts),
                        &n(r.links_total),
                        &n(r.links_unwrapped),
                        &n(r.links_cleaned),
                        &n(r.links_opaque),
                        &r.skipped,
                        &r.esp,
                        &r.esp_confidence,
                        &r.jurisdiction,
                        &us,
                        &n(r.spacers),
                    ],
                )
                .map_err(db)?;
            let id: i64 = row.get(0);
            for e in &r.esps {
                let evidence = serde_json::to_string(&e.evidence).unwrap_or_else(|_| "[]".into());
                let us = e.us_exposure.map(b);
                tx.execute(
                    &esp,
                    &[
                        &id,
                        &e.name,
                        &e.layer,
                        &e.confidence,
                        &e.jurisdiction,
                        &us,
                        &evidence,
                    ],
                )
                .map_err(db)?;
            }
            for t in &r.trackers {
                tx.execute(
                    &trk,
                    &[&id, &t.kind, &t.action, &t.host, &t.vendor, &t.rule, &t.url],
                )
                .map_err(db)?;
            }
            if let Some(h) = &r.headers {
                tx.execute(&hdr, &[&id, h]).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Delete messages processed before `before` (unix seconds); returns how many.
    pub fn prune(&mut self, before: i64) -> Result<usize, PgError> {
        let n = self
            .client
            .execute("DELETE FROM messages WHERE ts < $1", &[&before])
            .map_err(|e| self.err(e))?;
        Ok(n as usize)
    }

    /// The report rows: one streamed scan, grouped by the same code as the SQLite report.
    pub fn summarise(&mut self, by: By, filter: &Filter) -> Result<Vec<Row>, PgError> {
        let (cond, params) = filter.condition(|n| format!("${n}"));
        let sql = report::scan_sql(by, &cond);
        let params = bind(&params);
        let mut summary = Summary::new(by);
        let url = self.url.clone();
        let db = |e: postgres::Error| PgError::Db {
            url: url.clone(),
            message: describe(&e),
        };
        let mut rows = self
            .client
            .query_raw(&sql, params.iter().map(|p| p.as_ref() as &dyn ToSql))
            .map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let int = |i: usize| r.get::<_, Option<i64>>(i).unwrap_or(0);
            summary.add(&ScanRow {
                key: r.get(0),
                esp: r.get(1),
                jurisdiction: r.get(2),
                from_domain: r.get(3),
                tracked: int(4),
                pixels: int(5),
                fonts: int(6),
                links_unwrapped: int(7),
                links_cleaned: int(8),
                links_opaque: int(9),
                us_exposure: int(10),
                seen: int(11),
                spacers: int(12),
            });
        }
        Ok(summary.finish())
    }

    /// Trackers per week (Monday), as the SQLite report computes them.
    pub fn trackers_per_week(&mut self, filter: &Filter) -> Result<Vec<(String, u64)>, PgError> {
        let (cond, params) = filter.condition(|n| format!("${n}"));
        let sql = report::weeks_sql(&cond);
        let params = bind(&params);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let rows = self.client.query(&sql, &refs).map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let week: i64 = r.get(0);
                let n: Option<i64> = r.get(1);
                (time::date(week), n.unwrap_or(0).max(0) as u64)
            })
            .collect())
    }

    /// Tracked messages of a sender or domain, newest first, with their evidence.
    pub fn evidence(
        &mut self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<MessageEvidence>, PgError> {
        let (cond, params) = filter.condition(|n| format!("${n}"));
        let mut params = bind(&params);
        params.push(Box::new(limit as i64));
        let sql = format!(
            "SELECT id, ts, date, from_addr, envelope_sender, message_id_hash, subject, mode
             FROM messages WHERE {cond} AND tracked = 1 ORDER BY seen DESC, id DESC LIMIT ${}",
            params.len()
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let rows = self.client.query(&sql, &refs).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            let esp: Vec<EspEvidence> = self
                .client
                .query(
                    "SELECT name, layer, confidence, jurisdiction, us_exposure, evidence FROM esp
                     WHERE message = $1 ORDER BY layer DESC, id",
                    &[&id],
                )
                .map_err(|e| self.err(e))?
                .iter()
                .map(|e| EspEvidence {
                    name: e.get(0),
                    layer: e.get(1),
                    confidence: e.get(2),
                    jurisdiction: e.get(3),
                    us_exposure: e.get::<_, Option<i64>>(4).map(|v| v != 0),
                    evidence: serde_json::from_str(e.get::<_, &str>(5)).unwrap_or_default(),
                })
                .collect();
            let trackers: Vec<TrackerEvidence> = self
                .client
                .query(
                    "SELECT kind, action, host, vendor, rule, url FROM trackers
                     WHERE message = $1 ORDER BY id",
                    &[&id],
                )
                .map_err(|e| self.err(e))?
                .iter()
                .map(|t| TrackerEvidence {
                    kind: t.get(0),
                    action: t.get(1),
                    host: t.get(2),
                    vendor: t.get(3),
                    rule: t.get(4),
                    url: t.get(5),
                })
                .collect();
            let headers: Option<String> = self
                .client
                .query_opt("SELECT block FROM headers WHERE message = $1", &[&id])
                .map_err(|e| self.err(e))?
                .map(|h| h.get(0));
            let message_id = headers.as_deref().and_then(message_id_of);
            let date: Option<i64> = r.get(2);
            out.push(MessageEvidence {
                processed: time::datetime(r.get(1)),
                date: date.map(time::datetime),
                from: r.get(3),
                envelope_sender: r.get(4),
                message_id,
                message_id_sha256: r.get(5),
                subject: r.get(6),
                mode: r.get(7),
                trackers_not_sent_through: super::evidence::not_sent_through(&esp, &trackers),
                esp,
                trackers,
                headers,
            });
        }
        Ok(out)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

fn bind(params: &[Param]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync> {
            match p {
                Param::Int(i) => Box::new(*i),
                Param::Text(t) => Box::new(t.clone()),
            }
        })
        .collect()
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
