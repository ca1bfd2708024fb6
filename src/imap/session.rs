//! What the sync needs from an IMAP connection, as plain operations: a real server speaks them
//! through `client.rs`; tests use an in-memory server that can fail at any step.

use std::fmt;

/// An error of the connection or of the server; the sync stops at it and a later run resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapError {
    pub message: String,
    /// The connection is gone (or in an unknown state): reconnect before anything else.
    pub fatal: bool,
}

impl ImapError {
    pub fn fatal(message: impl Into<String>) -> ImapError {
        ImapError {
            message: message.into(),
            fatal: true,
        }
    }

    /// The server said NO or BAD to one command; the connection is still usable.
    pub fn refused(message: impl Into<String>) -> ImapError {
        ImapError {
            message: message.into(),
            fatal: false,
        }
    }
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImapError {}

pub type Result<T> = std::result::Result<T, ImapError>;

/// The extensions the sync cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// RFC 4315: APPENDUID and UID EXPUNGE.
    pub uidplus: bool,
    /// RFC 6851: UID MOVE.
    pub moves: bool,
    /// RFC 2177.
    pub idle: bool,
    /// RFC 3502: several messages in one APPEND, all stored or none.
    pub multiappend: bool,
    /// RFC 7888: literals sent without waiting for the server's go-ahead.
    pub literal_plus: bool,
}

/// A folder once selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub uid_validity: u32,
    pub exists: u32,
}

/// A message's metadata (FETCH FLAGS INTERNALDATE RFC822.SIZE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub uid: u32,
    pub flags: Vec<String>,
    /// As the server wrote it (`30-Nov-2026 21:00:00 +0000`): handed back verbatim to APPEND.
    pub internal_date: String,
    pub size: u64,
}

impl Meta {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// A message to APPEND, with its flags and INTERNALDATE.
#[derive(Debug, Clone, Copy)]
pub struct ToAppend<'a> {
    pub flags: &'a [String],
    pub internal_date: &'a str,
    pub message: &'a [u8],
}

/// One IMAP connection, logged in. `search` takes the criteria of UID SEARCH as the server
/// reads them (`UID 5:* SINCE 1-Nov-2026`) and returns UIDs; the others name one message by
/// its UID in the selected folder.
#[allow(async_fn_in_trait)]
pub trait Session {
    fn caps(&self) -> Caps;
    async fn create(&mut self, folder: &str) -> Result<()>;
    /// Folder names matching an IMAP LIST pattern (`*`, `%`).
    async fn list(&mut self, pattern: &str) -> Result<Vec<String>>;
    async fn select(&mut self, folder: &str) -> Result<Selected>;
    async fn search(&mut self, criteria: &str) -> Result<Vec<u32>>;
    async fn fetch_meta(&mut self, uids: &[u32]) -> Result<Vec<Meta>>;
    /// The header blocks of these messages (BODY.PEEK[HEADER]).
    async fn fetch_headers(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>>;
    /// Whole messages (BODY.PEEK[]: never sets \Seen), in one command; a message gone
    /// meanwhile is missing from the answer.
    async fn fetch_bodies(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>>;
    /// One whole message; None if it is gone.
    async fn fetch_body(&mut self, uid: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .fetch_bodies(&[uid])
            .await?
            .into_iter()
            .find(|(u, _)| *u == uid)
            .map(|(_, b)| b))
    }
    /// One APPEND command with these messages (more than one only with MULTIAPPEND: all are
    /// stored or none); their new UIDs, in order, when the server says them (APPENDUID) and
    /// the folder is the selected one.
    async fn append(&mut self, folder: &str, messages: &[ToAppend<'_>])
        -> Result<Option<Vec<u32>>>;
    /// UID MOVE of these messages (RFC 6851).
    async fn uid_move(&mut self, uids: &[u32], to: &str) -> Result<()>;
    async fn uid_copy(&mut self, uids: &[u32], to: &str) -> Result<()>;
    async fn mark_deleted(&mut self, uids: &[u32]) -> Result<()>;
    /// UID EXPUNGE of these messages only (UIDPLUS).
    async fn uid_expunge(&mut self, uids: &[u32]) -> Result<()>;
    /// EXPUNGE every \Deleted message of the selected folder.
    async fn expunge(&mut self) -> Result<()>;
}
