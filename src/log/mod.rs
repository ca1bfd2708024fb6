//! The tracking log: who tracks me, through which provider, since when. Every adapter writes
//! one record per message; `report` reads them. SQLite by default (file 0600, WAL).

pub mod db;
pub mod evidence;
pub mod html;
pub mod postgres;
pub mod record;
pub mod report;
pub mod schema;
pub mod sql;
pub mod store;
pub mod time;
pub mod writer;

pub use db::{Db, DbError, LogTarget};
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
    /// Write one record synchronously (the one-shot commands: filter, pipe, inspect).
    pub fn write_one(&self, record: &Record) -> Result<(), DbError> {
        self.write(std::slice::from_ref(record))
    }

    /// Write records in one transaction.
    pub fn write(&self, records: &[Record]) -> Result<(), DbError> {
        let Some(target) = &self.path else {
            return Ok(());
        };
        Db::open(target)?.insert(records)
    }
}
