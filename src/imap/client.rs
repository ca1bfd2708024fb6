//! The real IMAP connection: TCP, TLS (implicit or STARTTLS, certificates and host names
//! always verified), login (PLAIN, LOGIN or XOAUTH2), then the operations of `Session` on
//! async-imap. Every command has a time limit; an answer the server never gives is a lost
//! connection, not a hang.

use super::session::{Caps, ImapError, Meta, Result, Selected, Session, ToAppend};
use crate::config::{ImapAccount, ImapAuth, ImapTls};
use async_imap::imap_proto::{Response, ResponseCode, Status};
use futures_util::TryStreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Any byte stream the session runs over (plain TCP to loopback, or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

type Stream = Box<dyn Io>;

/// The connection's byte stream, noting when the server closes it: async-imap ends a FETCH,
/// LIST or STORE answer quietly at end of stream, so a connection that drops in the middle
/// would look like a short answer. Every command checks this after its answer.
#[derive(Debug)]
struct Watched<S> {
    inner: S,
    closed: Arc<AtomicBool>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        match &r {
            std::task::Poll::Ready(Ok(())) if wanted && buf.filled().len() == before => {
                self.closed.store(true, Ordering::Relaxed);
            }
            std::task::Poll::Ready(Err(_)) => self.closed.store(true, Ordering::Relaxed),
            _ => {}
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Time allowed for one command (a whole large message included).
const COMMAND_TIME: Duration = Duration::from_secs(120);
const CONNECT_TIME: Duration = Duration::from_secs(30);

/// Why an IDLE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The server reported a change (a new message, most likely).
    Changed,
    Timeout,
    /// Asked to stop (SIGTERM).
    Stopped,
}

pub struct Client {
    s: async_imap::Session<Stream>,
    /// Set when the server closed the connection (see `Watched`).
    closed: Arc<AtomicBool>,
    caps: Caps,
    /// The selected folder and its UIDVALIDITY.
    selected: Option<(String, u32)>,
}

fn fatal(e: impl std::fmt::Display) -> ImapError {
    ImapError::fatal(e.to_string())
}

/// The server's own words in an async-imap NO/BAD message (`code: …, info: Some("…")`).
fn server_text(m: &str) -> String {
    m.split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map_or(m.trim(), |(text, _)| text.trim())
        .replace("\\\"", "\"")
}

/// NO and BAD leave the connection usable; anything else does not.
fn mapped(e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error;
    match e {
        Error::No(m) => ImapError::refused(format!("the server refused: {}", server_text(&m))),
        Error::Bad(m) => ImapError::refused(format!(
            "the server rejected the command: {}",
            server_text(&m)
        )),
        Error::Validate(v) => ImapError::refused(v.to_string()),
        other => fatal(other),
    }
}

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = std::result::Result<T, async_imap::error::Error>>,
) -> Result<T> {
    match tokio::time::timeout(COMMAND_TIME, f).await {
        Ok(r) => r.map_err(mapped),
        Err(_) => Err(fatal(format!("{what}: no answer in {COMMAND_TIME:?}"))),
    }
}

/// TLS trusting the system's CAs and, when given, one more (PEM).
fn tls(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| fatal(format!("ca_file {}: {e}", path.display()));
        let mut n = 0;
        for c in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad(&"no certificate in it"));
        }
    }
    if roots.is_empty() {
        return Err(fatal(
            "TLS needs CA certificates: none found on the system (install ca-certificates, or set ca_file)",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(fatal)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn read_greeting(c: &mut async_imap::Client<Stream>) -> Result<()> {
    match tokio::time::timeout(CONNECT_TIME, c.read_response()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(fatal(
            "the server closed the connection before its greeting",
        )),
        Ok(Err(e)) => Err(fatal(e)),
        Err(_) => Err(fatal("no greeting from the server")),
    }
}

struct Sasl {
    response: String,
    sent: bool,
}

impl async_imap::Authenticator for &mut Sasl {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        // A second challenge is the server's error report (XOAUTH2): answer it empty, and the
        // server answers NO.
        if self.sent {
            return String::new();
        }
        self.sent = true;
        self.response.clone()
    }
}

fn quote(s: &str) -> Result<String> {
    if s.bytes().any(|b| b < 0x20 || b == 0x7f || b >= 0x80) {
        return Err(ImapError::refused(format!(
            "{s:?}: only ASCII names are supported"
        )));
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

fn flag_text(f: &async_imap::types::Flag<'_>) -> String {
    use async_imap::types::Flag;
    match f {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Recent => "\\Recent".into(),
        Flag::MayCreate => "\\*".into(),
        Flag::Custom(c) => c.to_string(),
    }
}

/// `1:3,7`: runs of consecutive UIDs written as ranges.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&sorted[i].to_string());
        if j > i {
            out.push(':');
            out.push_str(&sorted[j].to_string());
        }
        i = j + 1;
    }
    out
}

/// Does a folder name match an IMAP LIST pattern (`*` anything, `%` anything but the
/// hierarchy delimiter)?
pub fn glob(pattern: &str, name: &str, delimiter: Option<char>) -> bool {
    fn go(p: &[char], n: &[char], d: Option<char>) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..], d)),
            Some('%') => (0..=n.len())
                .take_while(|&i| i == 0 || Some(n[i - 1]) != d)
                .any(|i| go(&p[1..], &n[i..], d)),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..], d),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // INBOX is case-insensitive (RFC 3501).
    if pattern.eq_ignore_ascii_case("INBOX") {
        return name.eq_ignore_ascii_case("INBOX");
    }
    go(&p, &n, delimiter)
}

impl Client {
    /// Connect and log in. `secret` is the password or the OAuth access token.
    pub async fn connect(account: &ImapAccount, secret: &str) -> Result<Client> {
        let addr = (account.host.as_str(), account.port());
        let tcp = tokio::time::timeout(CONNECT_TIME, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| {
                fatal(format!(
                    "{}:{}: no connection",
                    account.host,
                    account.port()
                ))
            })?
            .map_err(|e| fatal(format!("{}:{}: {e}", account.host, account.port())))?;
        let _ = tcp.set_nodelay(true);
        let server_name = || {
            rustls_pki_types::ServerName::try_from(account.host.clone())
                .map_err(|e| fatal(format!("{}: {e}", account.host)))
        };
        let closed = Arc::new(AtomicBool::new(false));
        let watched = |inner: Stream| -> Stream {
            Box::new(Watched {
                inner,
                closed: closed.clone(),
            })
        };
        let wrap = |tcp: tokio::net::TcpStream| async {
            let connector = tls(account.ca_file.as_deref())?;
            let stream = tokio::time::timeout(CONNECT_TIME, connector.connect(server_name()?, tcp))
                .await
                .map_err(|_| fatal("TLS handshake: no answer"))?
                .map_err(|e| {
                    let m = format!("TLS with {}: {e}", account.host);
                    // A certificate that does not verify will not verify on a retry.
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        ImapError::refused(m)
                    } else {
                        fatal(m)
                    }
                })?;
            Ok::<Stream, ImapError>(watched(Box::new(stream)))
        };
        let mut client = match account.tls {
            ImapTls::Implicit => {
                let mut c = async_imap::Client::new(wrap(tcp).await?);
                read_greeting(&mut c).await?;
                c
            }
            ImapTls::Starttls => {
                let mut c = async_imap::Client::new(tcp);
                match tokio::time::timeout(CONNECT_TIME, c.read_response()).await {
                    Ok(Ok(Some(_))) => {}
                    _ => return Err(fatal("no greeting from the server")),
                }
                timed("STARTTLS", c.run_command_and_check_ok("STARTTLS", None)).await?;
                let mut c = async_imap::Client::new(wrap(c.into_inner()).await?);
                // No greeting after STARTTLS: the session goes on.
                let _ = &mut c;
                c
            }
            ImapTls::None => {
                let mut c = async_imap::Client::new(watched(Box::new(tcp)));
                read_greeting(&mut c).await?;
                c
            }
        };
        let user = account.user.as_str();
        let session = match account.auth {
            ImapAuth::Login => tokio::time::timeout(COMMAND_TIME, client.login(user, secret)).await,
            ImapAuth::Plain | ImapAuth::Xoauth2 => {
                let (mechanism, response) = if account.auth == ImapAuth::Plain {
                    ("PLAIN", format!("\0{user}\0{secret}"))
                } else {
                    (
                        "XOAUTH2",
                        format!("user={user}\x01auth=Bearer {secret}\x01\x01"),
                    )
                };
                let mut sasl = Sasl {
                    response,
                    sent: false,
                };
                let _ = &mut client;
                tokio::time::timeout(COMMAND_TIME, client.authenticate(mechanism, &mut sasl)).await
            }
        };
        let session = match session {
            Err(_) => return Err(fatal("login: no answer")),
            // Refused, not fatal: a wrong password is not retried.
            Ok(Err((e, _))) => {
                return Err(ImapError::refused(format!(
                    "login as {user} at {} failed: {}",
                    account.host,
                    mapped(e)
                )))
            }
            Ok(Ok(s)) => s,
        };
        let mut c = Client {
            s: session,
            closed,
            caps: Caps::default(),
            selected: None,
        };
        let caps = timed("CAPABILITY", c.s.capabilities()).await?;
        c.caps = Caps {
            uidplus: caps.has_str("UIDPLUS"),
            moves: caps.has_str("MOVE"),
            idle: caps.has_str("IDLE"),
            multiappend: caps.has_str("MULTIAPPEND"),
            literal_plus: caps.has_str("LITERAL+"),
        };
        Ok(c)
    }

    /// What the server says unasked (EXISTS, EXPUNGE…): not needed, and the channel that
    /// holds it is bounded.
    fn drain(&mut self) {
        while self.s.unsolicited_responses.try_recv().is_ok() {}
    }

    /// After a command: the answer was whole only if the connection is still open.
    fn alive(&mut self) -> Result<()> {
        self.drain();
        if self.closed.load(Ordering::Relaxed) {
            return Err(fatal("the server closed the connection"));
        }
        Ok(())
    }

    /// The server's hierarchy delimiter (`/` or `.`), as the top-level folders show it
    /// (async-imap reads no answer to the usual `LIST "" ""`).
    pub async fn delimiter(&mut self) -> Result<Option<char>> {
        let d = timed("LIST", async {
            let stream = self.s.list(Some(""), Some("%")).await?;
            let names: Vec<_> = stream.try_collect().await?;
            Ok(names
                .iter()
                .find_map(|n| n.delimiter().and_then(|d| d.chars().next())))
        })
        .await?;
        self.alive()?;
        Ok(d)
    }

    /// Wait in IDLE (the selected folder) until the server reports a change, `max` passes or
    /// `stop` completes; gives the connection back. Without IDLE the wait is a plain sleep.
    pub async fn idle(
        self,
        max: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(Client, Woke)> {
        let Client {
            s,
            closed,
            caps,
            selected,
        } = self;
        if !caps.idle {
            let woke = tokio::select! {
                _ = tokio::time::sleep(max) => Woke::Timeout,
                _ = stop => Woke::Stopped,
            };
            return Ok((
                Client {
                    s,
                    closed,
                    caps,
                    selected,
                },
                woke,
            ));
        }
        let mut handle = s.idle();
        timed("IDLE", handle.init()).await?;
        let woke = {
            let (wait, interrupt) = handle.wait_with_timeout(max);
            let mut interrupt = Some(interrupt);
            tokio::pin!(wait);
            tokio::pin!(stop);
            let r = tokio::select! {
                r = &mut wait => r,
                _ = &mut stop => {
                    // Dropping the stop source ends the wait at once.
                    interrupt.take();
                    wait.await
                }
            };
            drop(interrupt);
            match r.map_err(mapped)? {
                async_imap::extensions::idle::IdleResponse::NewData(_) => Woke::Changed,
                async_imap::extensions::idle::IdleResponse::Timeout => Woke::Timeout,
                async_imap::extensions::idle::IdleResponse::ManualInterrupt => Woke::Stopped,
            }
        };
        let s = timed("DONE", handle.done()).await?;
        let mut c = Client {
            s,
            closed,
            caps,
            selected,
        };
        c.alive()?;
        Ok((c, woke))
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.s.logout()).await;
    }

    /// APPEND sent by hand, to read the APPENDUID code of the answer (async-imap drops it):
    /// one message, or several in one command (MULTIAPPEND). Literals go without waiting for
    /// the go-ahead when the server has LITERAL+. The UIDVALIDITY and the new UIDs, in order,
    /// when the server says them.
    async fn append_raw(
        &mut self,
        folder: &str,
        messages: &[ToAppend<'_>],
    ) -> Result<Option<(u32, Vec<u32>)>> {
        let plus = self.caps.literal_plus;
        let part = |m: &ToAppend<'_>| {
            format!(
                "({}) \"{}\" {{{}{}}}",
                m.flags.join(" "),
                m.internal_date.trim(),
                m.message.len(),
                if plus { "+" } else { "" }
            )
        };
        let Some(first) = messages.first() else {
            return Ok(None);
        };
        let command = format!("APPEND {} {}", quote(folder)?, part(first));
        let s = &mut self.s;
        let id = s.run_command(&command).await.map_err(fatal)?;
        for (i, m) in messages.iter().enumerate() {
            if !plus {
                // The go-ahead, or the answer when the server refuses at once.
                loop {
                    let r = s
                        .read_response()
                        .await
                        .map_err(fatal)?
                        .ok_or_else(|| fatal("connection closed"))?;
                    match r.parsed() {
                        Response::Continue { .. } => break,
                        Response::Done {
                            tag,
                            status,
                            outcome,
                        } if *tag == id => {
                            let text = outcome.information.as_deref().unwrap_or("").trim();
                            return Err(match status {
                                Status::Bad => {
                                    ImapError::refused(format!("APPEND rejected: {text}"))
                                }
                                _ => ImapError::refused(format!("APPEND refused: {text}")),
                            });
                        }
                        _ => {}
                    }
                }
            }
            let stream = s.get_mut();
            stream.write_all(m.message).await.map_err(fatal)?;
            match messages.get(i + 1) {
                Some(next) => stream
                    .write_all(format!(" {}\r\n", part(next)).as_bytes())
                    .await
                    .map_err(fatal)?,
                None => stream.write_all(b"\r\n").await.map_err(fatal)?,
            }
            stream.flush().await.map_err(fatal)?;
        }
        loop {
            let r = s
                .read_response()
                .await
                .map_err(fatal)?
                .ok_or_else(|| fatal("connection closed"))?;
            if let Response::Done {
                tag,
                status,
                outcome,
            } = r.parsed()
            {
                if *tag != id {
                    continue;
                }
                return match (status, &outcome.code) {
                    (Status::Ok, Some(ResponseCode::AppendUid(v, uids))) => {
                        use async_imap::imap_proto::rfc4315::UidSetMember;
                        let mut all = Vec::new();
                        for m in uids {
                            match m {
                                UidSetMember::Uid(u) => all.push(*u),
                                UidSetMember::UidRange(r) => {
                                    // A range longer than what was sent is nonsense: no UIDs.
                                    if r.end().saturating_sub(*r.start()) as usize >= messages.len()
                                    {
                                        return Ok(None);
                                    }
                                    all.extend(r.clone());
                                }
                            }
                        }
                        Ok((all.len() == messages.len()).then_some((*v, all)))
                    }
                    (Status::Ok, _) => Ok(None),
                    _ => Err(ImapError::refused(format!(
                        "APPEND refused: {}",
                        outcome.information.as_deref().unwrap_or("").trim()
                    ))),
                };
            }
        }
    }
}

impl Session for Client {
    fn caps(&self) -> Caps {
        self.caps
    }

    async fn create(&mut self, folder: &str) -> Result<()> {
        if !self.list(folder).await?.is_empty() {
            return Ok(());
        }
        let r = timed("CREATE", self.s.create(folder)).await;
        self.alive()?;
        match r {
            // Created meanwhile by another client: fine.
            Err(e) if !e.fatal && !self.list(folder).await?.is_empty() => Ok(()),
            other => other,
        }
    }

    async fn list(&mut self, pattern: &str) -> Result<Vec<String>> {
        let names: Vec<(String, Option<char>)> = timed("LIST", async {
            let stream = self.s.list(Some(""), Some("*")).await?;
            let names: Vec<_> = stream.try_collect().await?;
            Ok(names
                .iter()
                .map(|n| {
                    (
                        n.name().to_string(),
                        n.delimiter().and_then(|d| d.chars().next()),
                    )
                })
                .collect())
        })
        .await?;
        self.alive()?;
        Ok(names
            .into_iter()
            .filter(|(n, d)| glob(pattern, n, *d))
            .map(|(n, _)| n)
            .collect())
    }

    async fn select(&mut self, folder: &str) -> Result<Selected> {
        let mailbox = timed("SELECT", self.s.select(folder)).await?;
        self.alive()?;
        let uid_validity = mailbox.uid_validity.ok_or_else(|| {
            ImapError::refused(format!("{folder}: the server gives no UIDVALIDITY"))
        })?;
        self.selected = Some((folder.to_string(), uid_validity));
        Ok(Selected {
            uid_validity,
            exists: mailbox.exists,
        })
    }

    async fn search(&mut self, criteria: &str) -> Result<Vec<u32>> {
        let found = timed("UID SEARCH", self.s.uid_search(criteria)).await?;
        self.alive()?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    async fn fetch_meta(&mut self, uids: &[u32]) -> Result<Vec<Meta>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let metas = timed("UID FETCH", async {
            let stream = self
                .s
                .uid_fetch(&set, "(UID FLAGS INTERNALDATE RFC822.SIZE)")
                .await?;
            let fetched: Vec<_> = stream.try_collect().await?;
            Ok(fetched
                .iter()
                .filter_map(|f| {
                    Some(Meta {
                        uid: f.uid?,
                        flags: f.flags().map(|fl| flag_text(&fl)).collect(),
                        internal_date: f
                            .internal_date()?
                            .format("%d-%b-%Y %H:%M:%S %z")
                            .to_string(),
                        size: u64::from(f.size?),
                    })
                })
                .collect::<Vec<_>>())
        })
        .await?;
        self.alive()?;
        Ok(metas)
    }

    async fn fetch_headers(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let heads = timed("UID FETCH BODY.PEEK[HEADER]", async {
            let stream = self.s.uid_fetch(&set, "(UID BODY.PEEK[HEADER])").await?;
            let fetched: Vec<_> = stream.try_collect().await?;
            Ok(fetched
                .iter()
                .filter_map(|f| Some((f.uid?, f.header()?.to_vec())))
                .collect::<Vec<_>>())
        })
        .await?;
        self.alive()?;
        Ok(heads)
    }

    async fn fetch_bodies(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let bodies = timed("UID FETCH BODY.PEEK[]", async {
            let stream = self.s.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
            let fetched: Vec<_> = stream.try_collect().await?;
            Ok(fetched
                .iter()
                .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
                .filter(|(u, _)| uids.contains(u))
                .collect::<Vec<_>>())
        })
        .await?;
        self.alive()?;
        Ok(bodies)
    }

    async fn append(
        &mut self,
        folder: &str,
        messages: &[ToAppend<'_>],
    ) -> Result<Option<Vec<u32>>> {
        if messages.len() > 1 && !self.caps.multiappend {
            return Err(ImapError::refused(
                "the server cannot APPEND several messages at once",
            ));
        }
        let r = tokio::time::timeout(COMMAND_TIME, self.append_raw(folder, messages))
            .await
            .map_err(|_| fatal("APPEND: no answer"))?;
        self.alive()?;
        let appended = r?;
        // The UIDs count only in the folder selected, under the UIDVALIDITY it had.
        Ok(match (appended, &self.selected) {
            (Some((v, uids)), Some((name, sv)))
                if self.caps.uidplus && name == folder && *sv == v =>
            {
                Some(uids)
            }
            _ => None,
        })
    }

    async fn uid_move(&mut self, uids: &[u32], to: &str) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let r = timed("UID MOVE", self.s.uid_mv(uid_set(uids), to)).await;
        self.alive()?;
        r
    }

    async fn uid_copy(&mut self, uids: &[u32], to: &str) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let r = timed("UID COPY", self.s.uid_copy(uid_set(uids), to)).await;
        self.alive()?;
        r
    }

    async fn mark_deleted(&mut self, uids: &[u32]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let r = timed("UID STORE", async {
            let stream = self
                .s
                .uid_store(uid_set(uids), "+FLAGS.SILENT (\\Deleted)")
                .await?;
            let _: Vec<_> = stream.try_collect().await?;
            Ok(())
        })
        .await;
        self.alive()?;
        r
    }

    async fn uid_expunge(&mut self, uids: &[u32]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let r = timed("UID EXPUNGE", async {
            let stream = self.s.uid_expunge(uid_set(uids)).await?;
            let _: Vec<_> = stream.try_collect().await?;
            Ok(())
        })
        .await;
        self.alive()?;
        r
    }

    async fn expunge(&mut self) -> Result<()> {
        let r = timed("EXPUNGE", async {
            let stream = self.s.expunge().await?;
            let _: Vec<_> = stream.try_collect().await?;
            Ok(())
        })
        .await;
        self.alive()?;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(glob("*", "a/b", Some('/')));
        assert!(glob("News/*", "News/a/b", Some('/')));
        assert!(glob("News/%", "News/a", Some('/')));
        assert!(!glob("News/%", "News/a/b", Some('/')));
        assert!(glob("inbox", "INBOX", Some('/')));
        assert!(!glob("Sent", "Sent Items", Some('/')));
        assert_eq!(uid_set(&[1, 5, 7]), "1,5,7");
        assert_eq!(uid_set(&[9, 1, 2, 3, 7, 8]), "1:3,7:9");
        assert!(quote("Trackless/Originals").is_ok());
        assert!(quote("Entwürfe").is_err());
        assert_eq!(
            server_text("code: None, info: Some(\"[CANNOT] Invalid \\\"x\\\" name.\")"),
            "[CANNOT] Invalid \"x\" name."
        );
    }
}
