//! The tracking log: who tracks me, through which provider, since when. Every adapter writes
//! one record per message; `report` reads them. SQLite by default (file 0600, WAL).

pub mod evidence;
pub mod html;
pub mod record;
pub mod report;
pub mod store;
pub mod time;
pub mod writer;

pub use record::{Keep, Mode, Record};
pub use store::{Store, StoreError};
pub use writer::{LogWriter, WriterConfig};

use std::path::PathBuf;

/// Where and what to log, from the command line or config.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// None: logging is off.
    pub path: Option<PathBuf>,
    pub keep: Keep,
}

impl LogConfig {
    /// Write one record synchronously (the one-shot commands: filter, pipe, inspect).
    pub fn write_one(&self, record: &Record) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut store = Store::open(path)?;
        store.insert(std::slice::from_ref(record))
    }
}
