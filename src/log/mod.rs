//! The tracking log: who tracks me, through which provider, since when. Every adapter writes
//! one record per message; `report` reads them. SQLite by default (file 0600, WAL).

pub mod db;
pub mod dossier;
pub mod evidence;
pub mod html;
pub mod originals;
pub mod postgres;
pub mod record;
pub mod remote;
pub mod report;
pub mod schema;
pub mod spool;
pub mod sql;
pub mod store;
pub mod time;
pub mod writer;

pub use db::{Db, DbError, LogTarget};
pub use originals::{KeepOriginals, Originals};
pub use record::{Keep, Mode, Record};
pub use sql::Backend;
pub use store::{Store, StoreError};
pub use writer::{LogWriter, WriterConfig};

/// Where and what to log, from the command line or config.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// None: logging is off.
    pub path: Option<LogTarget>,
    pub keep: Keep,
}

impl LogConfig {
    /// Write one record (the one-shot commands: filter, pipe, inspect). To a SQLite log it is
    /// appended to the log's spool, which the next open of the log imports (`spool.rs`):
    /// opening SQLite once per message cost more than the rewrite.
    pub fn write_one(&self, record: &Record) -> Result<(), DbError> {
        match &self.path {
            Some(LogTarget::Sqlite(p)) if p.as_os_str() != ":memory:" => spool::append(p, record)
                .map_err(|source| {
                    DbError::Sqlite(StoreError::Io {
                        path: spool::path(p).display().to_string(),
                        source,
                    })
                }),
            _ => self.write(std::slice::from_ref(record)),
        }
    }

    /// Write records in one transaction.
    pub fn write(&self, records: &[Record]) -> Result<(), DbError> {
        let Some(target) = &self.path else {
            return Ok(());
        };
        Db::open(target)?.insert(records)
    }
}
