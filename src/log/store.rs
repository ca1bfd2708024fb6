//! The tracking log in SQLite: created and migrated on open, WAL mode, files 0600.
//!
//! The schema and every statement are in `schema.rs` and `sql.rs`, shared with PostgreSQL.

use super::record::Record;
use super::schema::Dialect;
use super::sql::{Arg, Backend, Cell};
use rusqlite::Connection;
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

/// The page size of a new SQLite log.
const PAGE_SIZE: i64 = 16_384;

/// The spool files already imported, by name: SQLite only, outside the shared schema (the
/// one-shot writers spool only to a SQLite log).
const SPOOL_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS spool_import (name TEXT PRIMARY KEY, ts INTEGER NOT NULL)";

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
        super::spool::import(&mut store, path)?;
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
        // A new log gets 16 KiB pages instead of SQLite's 4: a newsletter's record (the
        // message, its provider, some forty tracker URLs) then touches a page or two per table
        // instead of five, and the writer's WAL frames and checkpoints take that many fewer
        // writes (~11 % less CPU a record, `examples/log_write_rate`). A log that exists keeps
        // its size (WAL mode cannot change it).
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if pages == 0 {
            self.conn
                .pragma_update(None, "page_size", PAGE_SIZE)
                .map_err(|e| self.err(e))?;
        }
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
        // The usual case, a log already at this version: one read, no write lock.
        if self.version().ok() == Some(super::schema::VERSION as i64) {
            return Ok(());
        }
        self.migrate(super::schema::VERSION)
    }

    /// The page cache set to `kib` KiB (on failure, left as it was: only memory is at stake).
    pub fn with_cache_kib(self, kib: i64) -> Store {
        if let Err(e) = self.conn.pragma_update(None, "cache_size", -kib) {
            tracing::debug!(error = %e, "could not set the tracking log's page cache");
        }
        self
    }

    /// Was the spool file `name` imported already (see `spool.rs`)?
    pub fn spool_imported(&mut self, name: &str) -> Result<bool, StoreError> {
        self.batch(SPOOL_TABLE)?;
        let mut found = false;
        self.query(
            "SELECT 1 FROM spool_import WHERE name = ?1",
            &[Arg::Text(name)],
            &mut |_| found = true,
        )?;
        Ok(found)
    }

    /// Insert spooled records and, in the same transaction, the name of the file they came
    /// from.
    pub fn insert_spooled(&mut self, records: &[Record], name: &str) -> Result<(), StoreError> {
        self.batch(SPOOL_TABLE)?;
        super::sql::insert_and(self, records, |b| {
            b.execute(
                "INSERT OR IGNORE INTO spool_import (name, ts) VALUES (?1, ?2)",
                &[Arg::Text(name), Arg::Int(super::time::now())],
            )
            .map(|_| ())
        })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Null => ValueRef::Null,
            Arg::Int(i) => ValueRef::Integer(i),
            Arg::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

impl Backend for Store {
    type Error = StoreError;
    const DIALECT: Dialect = Dialect::Sqlite;

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }

    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let n = stmt
            .execute(rusqlite::params_from_iter(args))
            .map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    fn query(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        row: &mut dyn FnMut(&[Cell<'_>]),
    ) -> Result<(), StoreError> {
        use rusqlite::types::ValueRef;
        let err = |e| StoreError::Sqlite {
            path: self.path.clone(),
            source: e,
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                cells.push(match r.get_ref(i).map_err(err)? {
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Text(t) => std::str::from_utf8(t).map_or(Cell::Null, Cell::Text),
                    _ => Cell::Null,
                });
            }
            row(&cells);
        }
        Ok(())
    }

    fn insert_id(&mut self, insert: &str, args: &[Arg<'_>]) -> Result<i64, StoreError> {
        self.execute(insert, args)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn too_new(&self, found: i64) -> StoreError {
        StoreError::TooNew {
            path: self.path.clone(),
            found,
            known: super::schema::VERSION as i64,
        }
    }
}

/// Run as root on a log in someone else's directory (`sudo trackless filter` or `report` on the
/// daemons' /var/lib/trackless/log.sqlite), the files root creates — the log itself, its -wal and
/// -shm — go to the directory's owner, or the daemons could no longer write their own log.
pub(super) fn give_to_directory_owner(path: &Path) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_log_has_large_pages_and_an_old_one_keeps_its_own() {
        let dir = std::env::temp_dir().join(format!("trackless-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let page = |s: &Store| -> i64 {
            s.conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("pragma")
        };
        let new = dir.join("new.sqlite");
        let store = Store::open(&new).expect("open");
        assert_eq!(page(&store), PAGE_SIZE);
        drop(store);
        assert_eq!(page(&Store::open(&new).expect("reopen")), PAGE_SIZE);
        // A log made with SQLite's default pages (as every log was before): opened, migrated
        // and written as it is.
        let old = dir.join("old.sqlite");
        {
            let c = Connection::open(&old).expect("sqlite");
            c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
                .expect("old log");
            let size: i64 = c
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("pragma");
            assert_eq!(size, 4096);
        }
        let mut store = Store::open(&old).expect("open old");
        assert_eq!(page(&store), 4096);
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/corpus/mailgun-newsletter.eml"
        ))
        .expect("corpus");
        let out = crate::neutralise(&raw, &crate::Policy::default());
        let r = Record::new(
            &raw,
            &out,
            super::super::Mode::Milter,
            None,
            &[],
            super::super::Keep::default(),
            1,
        );
        assert!(!r.trackers.is_empty());
        super::super::sql::insert(&mut store, &[r]).expect("insert");
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM trackers", [], |r| r.get(0))
            .expect("count");
        assert!(rows > 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_writer_keeps_a_small_page_cache() {
        let dir = std::env::temp_dir().join(format!("trackless-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("log.sqlite");
        let cache = |s: &Store| -> i64 {
            s.conn
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .expect("pragma")
        };
        let store = Store::open(&path).expect("open");
        assert_eq!(cache(&store), -65_536, "reports scan with a large cache");
        let store = store.with_cache_kib(8 << 10);
        assert_eq!(cache(&store), -8_192);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
