//! The tracking log in SQLite: created and migrated on open, WAL mode, files 0600.
//!
//! Schema (documented in README "Tracking log"):
//! - `schema_version(version)`: one row, the applied migration count;
//! - `messages`: one row per message (see `Record`); `ts` is when trackless processed it,
//!   `date` the message's Date header, `seen` the time reports use (the Date header unless it
//!   is missing or in the future, then `ts`). Retention (`prune`) goes by `ts`;
//! - `esp`: the providers named for a message, with layer, confidence and evidence (JSON);
//! - `trackers`: each tracker found (kind, action, host, vendor, rule, url);
//! - `headers` (v2): original header blocks of tracked messages, only with `--keep-headers`.

use super::record::Record;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tracking log {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("tracking log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("tracking log {path}: schema version {found} is newer than this trackless ({known})")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

/// Migrations, in order; the schema version is how many have been applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: the base schema.
    "CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        date INTEGER,
        seen INTEGER NOT NULL,
        mode TEXT NOT NULL,
        message_id_hash TEXT,
        envelope_sender TEXT,
        from_addr TEXT,
        from_domain TEXT,
        subject TEXT,
        recipients TEXT,
        changed INTEGER NOT NULL,
        tracked INTEGER NOT NULL,
        pixels INTEGER NOT NULL,
        fonts INTEGER NOT NULL,
        links_total INTEGER NOT NULL,
        links_unwrapped INTEGER NOT NULL,
        links_cleaned INTEGER NOT NULL,
        links_opaque INTEGER NOT NULL,
        skipped TEXT,
        esp TEXT,
        esp_confidence TEXT,
        jurisdiction TEXT,
        us_exposure INTEGER
     );
     CREATE INDEX messages_ts ON messages(ts);
     CREATE INDEX messages_seen ON messages(seen);
     CREATE INDEX messages_domain_seen ON messages(from_domain, seen);
     CREATE INDEX messages_from_seen ON messages(from_addr, seen);
     CREATE INDEX messages_msgid ON messages(message_id_hash);
     CREATE TABLE esp (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        layer TEXT NOT NULL,
        confidence TEXT NOT NULL,
        jurisdiction TEXT,
        us_exposure INTEGER,
        evidence TEXT NOT NULL
     );
     CREATE INDEX esp_message ON esp(message);
     CREATE TABLE trackers (
        message INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        action TEXT NOT NULL,
        host TEXT NOT NULL,
        vendor TEXT,
        rule TEXT,
        url TEXT NOT NULL
     );
     CREATE INDEX trackers_message ON trackers(message);",
    // 2: original headers of tracked messages, kept only on request (--keep-headers).
    "CREATE TABLE headers (
        message INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        block TEXT NOT NULL
     );",
    // 3: invisible layout spacers removed, counted apart from tracking pixels.
    "ALTER TABLE messages ADD COLUMN spacers INTEGER NOT NULL DEFAULT 0;",
];

/// The default log path: `$XDG_STATE_HOME/trackless/log.sqlite` (or
/// `~/.local/state/trackless/log.sqlite`) for a user, `/var/lib/trackless/log.sqlite` for the
/// daemons.
pub fn default_path(daemon: bool) -> PathBuf {
    if daemon {
        return PathBuf::from("/var/lib/trackless/log.sqlite");
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    state.join("trackless").join("log.sqlite")
}

/// An open tracking log.
pub struct Store {
    conn: Connection,
    path: String,
}

impl Store {
    /// Open (creating the file 0600 and its directory 0700 if needed) and migrate.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let io = |source| StoreError::Io {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(io)?;
                set_mode(dir, 0o700).map_err(io)?;
            }
        }
        if !path.exists() {
            create_private(path).map_err(io)?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        })?;
        let mut store = Store { conn, path: shown };
        store.setup()?;
        give_to_directory_owner(path);
        Ok(store)
    }

    /// An in-memory log (tests, `--log :memory:`).
    pub fn memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: ":memory:".into(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: ":memory:".into(),
        };
        store.setup()?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn setup(&mut self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        // WAL: readers (report) never block the writer; a crash leaves a consistent file.
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))?;
        // Reports scan the whole table: a larger page cache.
        self.conn
            .pragma_update(None, "cache_size", -65_536)
            .map_err(|e| self.err(e))?;
        self.migrate(MIGRATIONS.len())
    }

    /// Apply migrations up to `target` (tests use smaller targets to build old files).
    pub fn migrate(&mut self, target: usize) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        let sq = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(sq)?;
        let current: Option<i64> = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(sq)?;
        let current = current.unwrap_or(0);
        if current > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path,
                found: current,
                known: MIGRATIONS.len() as i64,
            });
        }
        for m in MIGRATIONS.iter().take(target).skip(current as usize) {
            tx.execute_batch(m).map_err(sq)?;
        }
        let new = (target as i64).max(current);
        if new != current {
            tx.execute("DELETE FROM schema_version", []).map_err(sq)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [new])
                .map_err(sq)?;
        }
        tx.commit().map_err(sq)
    }

    pub fn version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Insert records in one transaction (all or none).
    pub fn insert(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sq = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sq)?;
        {
            let mut msg = tx
                .prepare_cached(
                    "INSERT INTO messages (ts, date, seen, mode, message_id_hash, envelope_sender,
                        from_addr, from_domain, subject, recipients, changed, tracked, pixels,
                        fonts, links_total, links_unwrapped, links_cleaned, links_opaque, skipped,
                        esp, esp_confidence, jurisdiction, us_exposure, spacers)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
                )
                .map_err(sq)?;
            let mut esp = tx
                .prepare_cached(
                    "INSERT INTO esp (message, name, layer, confidence, jurisdiction, us_exposure, evidence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sq)?;
            let mut trk = tx
                .prepare_cached(
                    "INSERT INTO trackers (message, kind, action, host, vendor, rule, url)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sq)?;
            let mut hdr = tx
                .prepare_cached("INSERT INTO headers (message, block) VALUES (?1, ?2)")
                .map_err(sq)?;
            let mut seen_batch = tx
                .prepare_cached(
                    "SELECT 1 FROM messages WHERE message_id_hash = ?1 AND mode = 'batch' LIMIT 1",
                )
                .map_err(sq)?;
            for r in records {
                // Batch runs are repeatable: a message already logged by an earlier run is not
                // counted twice.
                if r.mode == "batch" {
                    if let Some(h) = &r.message_id_hash {
                        if seen_batch.exists([h]).map_err(sq)? {
                            continue;
                        }
                    }
                }
                msg.execute(params![
                    r.ts,
                    r.date,
                    r.seen(),
                    r.mode,
                    r.message_id_hash,
                    r.envelope_sender,
                    r.from_addr,
                    r.from_domain,
                    r.subject,
                    r.recipients,
                    r.changed,
                    r.tracked(),
                    r.pixels,
                    r.fonts,
                    r.links_total,
                    r.links_unwrapped,
                    r.links_cleaned,
                    r.links_opaque,
                    r.skipped,
                    r.esp,
                    r.esp_confidence,
                    r.jurisdiction,
                    r.us_exposure,
                    r.spacers,
                ])
                .map_err(sq)?;
                let id = tx.last_insert_rowid();
                for e in &r.esps {
                    let evidence =
                        serde_json::to_string(&e.evidence).unwrap_or_else(|_| "[]".into());
                    esp.execute(params![
                        id,
                        e.name,
                        e.layer,
                        e.confidence,
                        e.jurisdiction,
                        e.us_exposure,
                        evidence
                    ])
                    .map_err(sq)?;
                }
                for t in &r.trackers {
                    trk.execute(params![
                        id, t.kind, t.action, t.host, t.vendor, t.rule, t.url
                    ])
                    .map_err(sq)?;
                }
                if let Some(h) = &r.headers {
                    hdr.execute(params![id, h]).map_err(sq)?;
                }
            }
        }
        tx.commit().map_err(sq)
    }

    /// Delete messages processed before `before` (unix seconds); returns how many.
    pub fn prune(&mut self, before: i64) -> Result<usize, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM messages WHERE ts < ?1", [before])
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Run as root on a log in someone else's directory (`sudo trackless filter` or `report` on the
/// daemons' /var/lib/trackless/log.sqlite), the files root creates — the log itself, its -wal and
/// -shm — go to the directory's owner, or the daemons could no longer write their own log.
fn give_to_directory_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return;
        };
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        if meta.uid() == 0 {
            return;
        }
        let mut files = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            files.push(p.into());
        }
        for f in files {
            if std::fs::metadata(&f).is_ok_and(|m| m.uid() == 0) {
                if let Err(e) = std::os::unix::fs::chown(&f, Some(meta.uid()), Some(meta.gid())) {
                    tracing::warn!(file = %f.display(), error = %e, "cannot give the log file to its directory's owner");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn create_private(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}
