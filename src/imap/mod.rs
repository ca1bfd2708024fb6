//! `trackless imap`: clean a mailbox at any IMAP server, as safely as `batch` cleans a Maildir.
//!
//! - `session.rs`: the IMAP operations the sync needs (a trait: the real client or a test
//!   server that fails on purpose);
//! - `sync.rs`: one pass over a folder and the replacement protocol;
//! - `state.rs`: per folder UIDVALIDITY and the last UID handled, between runs, and the
//!   journal of replacements;
//! - `restore.rs`: `imap restore`, the journal's replacements undone;
//! - `retention.rs`: kept originals deleted once `originals_retention` has passed;
//! - `client.rs`: the real connection (TLS, login, IDLE).

pub mod client;
pub mod restore;
pub mod retention;
pub mod session;
pub mod state;
pub mod sync;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
