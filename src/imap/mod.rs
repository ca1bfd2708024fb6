//! `trackless imap`: clean a mailbox at any IMAP server, as safely as `batch` cleans a Maildir.
//!
//! - `session.rs`: the IMAP operations the sync needs (a trait: the real client or a test
//!   server that fails on purpose);
//! - `sync.rs`: one pass over a folder and the replacement protocol;
//! - `state.rs`: per folder UIDVALIDITY and the last UID handled, between runs.

pub mod client;
pub mod restore;
pub mod session;
pub mod state;
pub mod sync;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
