//! An IMAP server in memory, for the sync's tests: folders of messages with UIDs, flags and
//! internal dates, the extensions on or off, and a connection that dies at a chosen command —
//! before the server acts on it, or after it acted but before the answer arrived.

use super::session::{Caps, ImapError, Meta, Result, Selected, Session, ToAppend};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    pub flags: Vec<String>,
    pub date: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Folder {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub msgs: Vec<Msg>,
}

#[derive(Debug, Default)]
pub struct Server {
    pub folders: BTreeMap<String, Folder>,
    pub caps: Caps,
    /// Commands served so far, over every connection.
    pub commands: usize,
    /// Messages stored by APPEND.
    pub appends: usize,
    /// APPEND refuses messages larger than this (a provider's size limit, or a full quota).
    pub append_limit: Option<usize>,
}

impl Server {
    pub fn new(caps: Caps) -> Rc<RefCell<Server>> {
        Rc::new(RefCell::new(Server {
            caps,
            ..Server::default()
        }))
    }

    pub fn folder(&mut self, name: &str) -> &mut Folder {
        let n = self.folders.len() as u32;
        self.folders.entry(name.to_string()).or_insert(Folder {
            uid_validity: 1000 + n,
            uid_next: 1,
            msgs: Vec::new(),
        })
    }

    pub fn add(&mut self, folder: &str, flags: &[&str], date: &str, body: &[u8]) -> u32 {
        let f = self.folder(folder);
        let uid = f.uid_next;
        f.uid_next += 1;
        f.msgs.push(Msg {
            uid,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            date: date.to_string(),
            body: body.to_vec(),
        });
        uid
    }
}

/// When the connection dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The n-th command of this connection (0-based) never reaches the server.
    Before(usize),
    /// The n-th command is carried out, then the connection drops before the answer.
    After(usize),
    /// The server dies in the middle of the n-th command: a MOVE has copied its messages but
    /// not yet removed them (Dovecot's MOVE is a copy, then an expunge); any other command
    /// is carried out, as with `After`.
    Halfway(usize),
}

pub struct Conn {
    pub server: Rc<RefCell<Server>>,
    selected: Option<String>,
    fault: Option<Fault>,
    n: usize,
    dead: bool,
}

impl Conn {
    pub fn new(server: Rc<RefCell<Server>>, fault: Option<Fault>) -> Conn {
        Conn {
            server,
            selected: None,
            fault,
            n: 0,
            dead: false,
        }
    }

    /// Count a command; fail it before the server acts if that is the plan.
    fn begin(&mut self) -> Result<usize> {
        if self.dead {
            return Err(ImapError::fatal("connection closed"));
        }
        let n = self.n;
        self.n += 1;
        self.server.borrow_mut().commands += 1;
        if self.fault == Some(Fault::Before(n)) {
            self.dead = true;
            return Err(ImapError::fatal("connection reset (before)"));
        }
        Ok(n)
    }

    /// The server acted: drop the answer if that is the plan.
    fn end<T>(&mut self, n: usize, v: T) -> Result<T> {
        if self.fault == Some(Fault::After(n)) || self.fault == Some(Fault::Halfway(n)) {
            self.dead = true;
            return Err(ImapError::fatal("connection reset (after)"));
        }
        Ok(v)
    }

    fn sel(&self) -> Result<String> {
        self.selected
            .clone()
            .ok_or_else(|| ImapError::refused("no folder selected"))
    }
}

fn header_value(body: &[u8], name: &str) -> Option<String> {
    let head = crate::mail::header::top_block(body);
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case(name) {
                let mut v = v.trim().to_string();
                while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
                    v.push_str(lines.next().unwrap_or("").trim());
                }
                return Some(v);
            }
        }
    }
    None
}

/// The criteria the sync sends: `UID n:*`, `SINCE d` (every message matches), `DELETED`,
/// `HEADER name "value"` (substring, as IMAP says).
fn matches(m: &Msg, criteria: &str) -> bool {
    let mut rest = criteria.trim();
    while !rest.is_empty() {
        let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
        match word {
            "UID" => {
                let (range, after) = after.split_once(' ').unwrap_or((after, ""));
                let from: u32 = range.split(':').next().unwrap_or("0").parse().unwrap_or(0);
                if m.uid < from {
                    return false;
                }
                rest = after.trim();
            }
            "SINCE" => {
                rest = after.split_once(' ').map_or("", |(_, a)| a).trim();
            }
            "ALL" => rest = after.trim(),
            "DELETED" => {
                if !m.flags.iter().any(|f| f == "\\Deleted") {
                    return false;
                }
                rest = after.trim();
            }
            "HEADER" => {
                let (name, after) = after.split_once(' ').unwrap_or((after, ""));
                let after = after.trim_start();
                // A quoted string with \" and \\ escapes.
                let mut value = String::new();
                let mut chars = after.chars();
                chars.next();
                let mut esc = false;
                let mut consumed = 1;
                for c in chars.by_ref() {
                    consumed += c.len_utf8();
                    if esc {
                        value.push(c);
                        esc = false;
                    } else if c == '\\' {
                        esc = true;
                    } else if c == '"' {
                        break;
                    } else {
                        value.push(c);
                    }
                }
                match header_value(&m.body, name) {
                    Some(v) if v.to_lowercase().contains(&value.to_lowercase()) => {}
                    _ => return false,
                }
                rest = after[consumed..].trim();
            }
            other => panic!("fake server: criterion {other} not understood"),
        }
    }
    true
}

impl Session for Conn {
    fn caps(&self) -> Caps {
        self.server.borrow().caps
    }

    async fn create(&mut self, folder: &str) -> Result<()> {
        let n = self.begin()?;
        self.server.borrow_mut().folder(folder);
        self.end(n, ())
    }

    async fn list(&mut self, pattern: &str) -> Result<Vec<String>> {
        let n = self.begin()?;
        let names = self
            .server
            .borrow()
            .folders
            .keys()
            .filter(|k| pattern == "*" || *k == pattern)
            .cloned()
            .collect();
        self.end(n, names)
    }

    async fn select(&mut self, folder: &str) -> Result<Selected> {
        let n = self.begin()?;
        let mut srv = self.server.borrow_mut();
        let Some(f) = srv.folders.get_mut(folder) else {
            return Err(ImapError::refused(format!("no folder {folder}")));
        };
        let sel = Selected {
            uid_validity: f.uid_validity,
            exists: f.msgs.len() as u32,
        };
        drop(srv);
        self.selected = Some(folder.to_string());
        self.end(n, sel)
    }

    async fn search(&mut self, criteria: &str) -> Result<Vec<u32>> {
        let n = self.begin()?;
        let sel = self.sel()?;
        let mut uids: Vec<u32> = self.server.borrow().folders[&sel]
            .msgs
            .iter()
            .filter(|m| matches(m, criteria))
            .map(|m| m.uid)
            .collect();
        // `UID n:*` always includes the last message, even below n (RFC 3501).
        if criteria.starts_with("UID ") && uids.is_empty() {
            if let Some(last) = self.server.borrow().folders[&sel].msgs.last() {
                uids.push(last.uid);
            }
        }
        self.end(n, uids)
    }

    async fn fetch_meta(&mut self, uids: &[u32]) -> Result<Vec<Meta>> {
        let n = self.begin()?;
        let sel = self.sel()?;
        let metas = self.server.borrow().folders[&sel]
            .msgs
            .iter()
            .filter(|m| uids.contains(&m.uid))
            .map(|m| Meta {
                uid: m.uid,
                flags: m.flags.clone(),
                internal_date: m.date.clone(),
                size: m.body.len() as u64,
            })
            .collect();
        self.end(n, metas)
    }

    async fn fetch_headers(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let n = self.begin()?;
        let sel = self.sel()?;
        let heads = self.server.borrow().folders[&sel]
            .msgs
            .iter()
            .filter(|m| uids.contains(&m.uid))
            .map(|m| (m.uid, crate::mail::header::top_block(&m.body).to_vec()))
            .collect();
        self.end(n, heads)
    }

    async fn fetch_bodies(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        let n = self.begin()?;
        let sel = self.sel()?;
        let bodies = self.server.borrow().folders[&sel]
            .msgs
            .iter()
            .filter(|m| uids.contains(&m.uid))
            .map(|m| (m.uid, m.body.clone()))
            .collect();
        self.end(n, bodies)
    }

    async fn append(
        &mut self,
        folder: &str,
        messages: &[ToAppend<'_>],
    ) -> Result<Option<Vec<u32>>> {
        let n = self.begin()?;
        let mut srv = self.server.borrow_mut();
        if messages.len() > 1 && !srv.caps.multiappend {
            return Err(ImapError::refused("APPEND rejected: no MULTIAPPEND"));
        }
        // All or none (RFC 3502).
        if let Some(limit) = srv.append_limit {
            if messages.iter().any(|m| m.message.len() > limit) {
                return Err(ImapError::refused(
                    "APPEND refused: [LIMIT] Mail size is too large",
                ));
            }
        }
        let mut uids = Vec::new();
        for m in messages {
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            uids.push(srv.add(folder, &flags, m.internal_date, m.message));
            srv.appends += 1;
        }
        let uidplus = srv.caps.uidplus;
        drop(srv);
        let same = self.selected.as_deref() == Some(folder);
        self.end(n, (uidplus && same).then_some(uids))
    }

    async fn uid_move(&mut self, uids: &[u32], to: &str) -> Result<()> {
        let n = self.begin()?;
        let sel = self.sel()?;
        let halfway = self.fault == Some(Fault::Halfway(n));
        let mut srv = self.server.borrow_mut();
        let from = srv.folders.get_mut(&sel).expect("selected");
        let (moved, stay): (Vec<Msg>, Vec<Msg>) = std::mem::take(&mut from.msgs)
            .into_iter()
            .partition(|m| uids.contains(&m.uid));
        from.msgs = stay;
        if halfway {
            from.msgs.extend(moved.iter().cloned());
            from.msgs.sort_by_key(|m| m.uid);
        }
        for m in moved {
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect::<Vec<_>>();
            srv.add(to, &flags, &m.date, &m.body);
        }
        drop(srv);
        self.end(n, ())
    }

    async fn uid_copy(&mut self, uids: &[u32], to: &str) -> Result<()> {
        let n = self.begin()?;
        let sel = self.sel()?;
        let mut srv = self.server.borrow_mut();
        let copied: Vec<Msg> = srv.folders[&sel]
            .msgs
            .iter()
            .filter(|m| uids.contains(&m.uid))
            .cloned()
            .collect();
        for m in copied {
            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
            srv.add(to, &flags, &m.date, &m.body);
        }
        drop(srv);
        self.end(n, ())
    }

    async fn mark_deleted(&mut self, uids: &[u32]) -> Result<()> {
        let n = self.begin()?;
        let sel = self.sel()?;
        let mut srv = self.server.borrow_mut();
        if let Some(f) = srv.folders.get_mut(&sel) {
            for m in f.msgs.iter_mut().filter(|m| uids.contains(&m.uid)) {
                if !m.flags.iter().any(|f| f == "\\Deleted") {
                    m.flags.push("\\Deleted".into());
                }
            }
        }
        drop(srv);
        self.end(n, ())
    }

    async fn uid_expunge(&mut self, uids: &[u32]) -> Result<()> {
        let n = self.begin()?;
        let sel = self.sel()?;
        if let Some(f) = self.server.borrow_mut().folders.get_mut(&sel) {
            f.msgs
                .retain(|m| !(uids.contains(&m.uid) && m.flags.iter().any(|f| f == "\\Deleted")));
        }
        self.end(n, ())
    }

    async fn expunge(&mut self) -> Result<()> {
        let n = self.begin()?;
        let sel = self.sel()?;
        if let Some(f) = self.server.borrow_mut().folders.get_mut(&sel) {
            f.msgs.retain(|m| !m.flags.iter().any(|f| f == "\\Deleted"));
        }
        self.end(n, ())
    }
}

/// The value of a header field of a message (for the tests' checks).
pub fn field(body: &[u8], name: &str) -> Option<String> {
    header_value(body, name)
}
