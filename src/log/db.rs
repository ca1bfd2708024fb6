//! Where the tracking log lives — a SQLite file or a PostgreSQL database — behind one type
//! that writes records and answers the reports the same way for both.

use super::evidence::MessageEvidence;
use super::postgres::{PgError, PgStore};
use super::record::Record;
use super::report::{By, Filter, Row};
use super::sql::Backend;
use super::store::{Store, StoreError};
use std::path::{Path, PathBuf};

/// The `[log] path` / `--log` value: a file, or a `postgres://` / `postgresql://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

impl LogTarget {
    pub fn parse(s: &str) -> LogTarget {
        let lower = s.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            LogTarget::Postgres(s.trim().to_string())
        } else {
            LogTarget::Sqlite(PathBuf::from(s))
        }
    }

    pub fn from_path(p: &Path) -> LogTarget {
        match p.to_str() {
            Some(s) => LogTarget::parse(s),
            None => LogTarget::Sqlite(p.to_path_buf()),
        }
    }

    /// For messages: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            LogTarget::Sqlite(p) => p.display().to_string(),
            LogTarget::Postgres(u) => super::postgres::redact(u),
        }
    }

    /// Does the log exist yet? (A database is assumed to; connecting tells.) A SQLite log
    /// whose only records are still spooled by the one-shot commands counts.
    pub fn exists(&self) -> bool {
        match self {
            LogTarget::Sqlite(p) => p.exists() || super::spool::path(p).exists(),
            LogTarget::Postgres(_) => true,
        }
    }
}

impl std::fmt::Display for LogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] StoreError),
    #[error(transparent)]
    Postgres(#[from] PgError),
}

/// SQLite's page cache of a log only written to, in KiB (see [`Db::for_writing`]).
const WRITER_CACHE_KIB: i64 = 8 << 10;

/// An open tracking log.
pub enum Db {
    Sqlite(Store),
    Postgres(Box<PgStore>),
}

impl Db {
    /// Open (creating and migrating as needed).
    pub fn open(target: &LogTarget) -> Result<Db, DbError> {
        Ok(match target {
            LogTarget::Sqlite(p) => Db::Sqlite(Store::open(p)?),
            LogTarget::Postgres(u) => Db::Postgres(Box::new(PgStore::open(u)?)),
        })
    }

    pub fn insert(&mut self, records: &[Record]) -> Result<(), DbError> {
        match self {
            Db::Sqlite(s) => Ok(s.insert(records)?),
            Db::Postgres(p) => Ok(p.insert(records)?),
        }
    }

    pub fn prune(&mut self, before: i64) -> Result<usize, DbError> {
        match self {
            Db::Sqlite(s) => Ok(s.prune(before)?),
            Db::Postgres(p) => Ok(p.prune(before)?),
        }
    }

    /// The SHA-256 of every kept original a message of the log refers to.
    pub fn original_hashes(&mut self) -> Result<std::collections::HashSet<String>, DbError> {
        match self {
            Db::Sqlite(s) => Ok(s.original_hashes()?),
            Db::Postgres(p) => Ok(p.original_hashes()?),
        }
    }

    pub fn summarise(&mut self, by: By, filter: &Filter) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(s) => Ok(s.summarise(by, filter)?),
            Db::Postgres(p) => Ok(p.summarise(by, filter)?),
        }
    }

    pub fn by_operator(
        &mut self,
        filter: &Filter,
        operators: &crate::core::operators::Operators,
    ) -> Result<Vec<super::remote::OperatorRow>, DbError> {
        match self {
            Db::Sqlite(s) => Ok(s.by_operator(filter, operators)?),
            Db::Postgres(p) => Ok(p.by_operator(filter, operators)?),
        }
    }

    pub fn trackers_per_week(&mut self, filter: &Filter) -> Result<Vec<(String, u64)>, DbError> {
        match self {
            Db::Sqlite(s) => Ok(s.trackers_per_week(filter)?),
            Db::Postgres(p) => Ok(p.trackers_per_week(filter)?),
        }
    }

    pub fn evidence(
        &mut self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<MessageEvidence>, DbError> {
        match self {
            Db::Sqlite(s) => Ok(s.evidence(filter, limit)?),
            Db::Postgres(p) => Ok(p.evidence(filter, limit)?),
        }
    }

    /// Every message of a sender (the filter's), oldest first, with what `report dossier`
    /// shows of it.
    pub fn dossier(
        &mut self,
        filter: &Filter,
    ) -> Result<Vec<super::dossier::LoggedMessage>, DbError> {
        match self {
            Db::Sqlite(s) => Ok(super::dossier::messages(s, filter)?),
            Db::Postgres(p) => Ok(super::dossier::messages(p.as_mut(), filter)?),
        }
    }

    /// Is the connection known to be gone (PostgreSQL restarted)? Then reopen.
    /// For a log that is only written to (the daemons' writer): SQLite's page cache kept small.
    /// The 64 MiB a report's scan is given would be most of a daemon's memory, and appending
    /// touches few pages (the tables' and indexes' last ones).
    pub fn for_writing(self) -> Db {
        match self {
            Db::Sqlite(s) => Db::Sqlite(s.with_cache_kib(WRITER_CACHE_KIB)),
            pg => pg,
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Db::Sqlite(_) => false,
            Db::Postgres(p) => p.is_closed(),
        }
    }
}
