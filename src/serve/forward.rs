//! The downstream side of the content filter: hand the message on over SMTP or LMTP (TCP or a
//! unix socket) with mail-send, passing envelope addresses and DSN parameters through as the
//! MTA sent them. Every failure becomes a reply the upstream side can relay: a temporary one
//! (`451`) when the downstream is unreachable or times out, so the MTA keeps the mail queued.

use mail_send::SmtpClient;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where filtered mail goes: `smtp://127.0.0.1:10026`, `lmtp://127.0.0.1:24`,
/// `lmtp:unix:/run/dovecot/lmtp`, `smtp:unix:/path`, or Postfix style `inet:host:port`
/// (SMTP) / `unix:/path` (LMTP, as Postfix's lmtp transport uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub lmtp: bool,
    pub addr: Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = if self.lmtp { "lmtp" } else { "smtp" };
        match &self.addr {
            Addr::Tcp(a) => write!(f, "{p}://{a}"),
            Addr::Unix(u) => write!(f, "{p}:unix:{}", u.display()),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        let s = s.trim();
        let (lmtp, rest) = if let Some(r) = s
            .strip_prefix("lmtp://")
            .or_else(|| s.strip_prefix("lmtp:"))
        {
            (true, r)
        } else if let Some(r) = s
            .strip_prefix("smtp://")
            .or_else(|| s.strip_prefix("smtp:"))
        {
            (false, r)
        } else if let Some(r) = s.strip_prefix("inet:") {
            (false, r)
        } else if s.starts_with("unix:") || s.starts_with('/') {
            (true, s)
        } else {
            (false, s)
        };
        let addr = if let Some(p) = rest.strip_prefix("unix:") {
            Addr::Unix(PathBuf::from(p))
        } else if rest.starts_with('/') {
            Addr::Unix(PathBuf::from(rest))
        } else if rest.contains(':') {
            Addr::Tcp(rest.to_string())
        } else {
            return Err(format!(
                "{s:?}: expected smtp://host:port, lmtp://host:port or lmtp:unix:/path"
            ));
        };
        Ok(Target { lmtp, addr })
    }
}

/// An SMTP reply to relay: code and text (enhanced status code included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The reply as sent on the wire (multi-line text kept as continuation lines).
    pub fn wire(&self) -> String {
        let lines: Vec<&str> = self.text.lines().filter(|l| !l.is_empty()).collect();
        if lines.is_empty() {
            return format!("{}\r\n", self.code);
        }
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{}{sep}{}\r\n", self.code, clean(l)));
        }
        out
    }

    fn from_response(r: &smtp_proto::Response<String>) -> Reply {
        let esc = r.esc;
        let text = if esc[0] > 0 {
            format!("{}.{}.{} {}", esc[0], esc[1], esc[2], r.message)
        } else {
            r.message.clone()
        };
        Reply { code: r.code, text }
    }

    /// Downstream unreachable, broken or too slow: the MTA must keep the mail and retry.
    pub fn tempfail(why: &str) -> Reply {
        Reply::new(451, format!("4.4.1 downstream {why}; try again later"))
    }
}

/// Keep reply text on one line of printable characters.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the downstream server said it supports.
#[derive(Debug, Clone, Copy, Default)]
struct Caps {
    dsn: bool,
    smtputf8: bool,
    eightbit: bool,
}

/// An open downstream connection, idle between transactions.
pub struct Downstream {
    client: SmtpClient<Box<dyn Io>>,
    pub lmtp: bool,
    caps: Caps,
}

fn io_fail(e: impl std::fmt::Display) -> Reply {
    tracing::warn!(error = %e, "downstream failure");
    Reply::tempfail("not available")
}

impl Downstream {
    /// Connect, read the greeting and say EHLO/LHLO.
    pub async fn connect(
        target: &Target,
        helo: &str,
        timeout: Duration,
    ) -> Result<Downstream, Reply> {
        let stream: Box<dyn Io> = match &target.addr {
            Addr::Tcp(a) => {
                let s = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(a.as_str()))
                    .await
                    .map_err(|_| Reply::tempfail("connection timed out"))?
                    .map_err(io_fail)?;
                // Commands and the final ".": small writes that must not wait for ACKs.
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            Addr::Unix(p) => Box::new(
                tokio::time::timeout(timeout, tokio::net::UnixStream::connect(p))
                    .await
                    .map_err(|_| Reply::tempfail("connection timed out"))?
                    .map_err(io_fail)?,
            ),
        };
        let mut client = SmtpClient { stream, timeout };
        let greeting = tokio::time::timeout(timeout, client.read())
            .await
            .map_err(|_| Reply::tempfail("greeting timed out"))?
            .map_err(io_fail)?;
        if greeting.code != 220 {
            let r = Reply::from_response(&greeting);
            return Err(if r.is_temporary() || r.code < 400 {
                Reply::tempfail("refused the connection")
            } else {
                r
            });
        }
        let ehlo = if target.lmtp {
            client.lhlo(helo).await
        } else {
            client.ehlo(helo).await
        }
        .map_err(io_fail)?;
        let caps = Caps {
            dsn: ehlo.has_capability(smtp_proto::EXT_DSN),
            smtputf8: ehlo.has_capability(smtp_proto::EXT_SMTP_UTF8),
            eightbit: ehlo.has_capability(smtp_proto::EXT_8BIT_MIME),
        };
        Ok(Downstream {
            client,
            lmtp: target.lmtp,
            caps,
        })
    }

    async fn cmd(&mut self, line: &str) -> Result<Reply, Reply> {
        let r = self.client.cmd(line.as_bytes()).await.map_err(io_fail)?;
        Ok(Reply::from_response(&r))
    }

    /// Keep the parameters the downstream server supports; SIZE is dropped (the rewritten
    /// message has another size).
    fn params(&self, raw: &str) -> String {
        raw.split_whitespace()
            .filter(|p| {
                let key = p.split('=').next().unwrap_or("").to_ascii_uppercase();
                match key.as_str() {
                    "SIZE" => false,
                    "RET" | "ENVID" | "NOTIFY" | "ORCPT" => self.caps.dsn,
                    "SMTPUTF8" => self.caps.smtputf8,
                    "BODY" => self.caps.eightbit,
                    _ => true,
                }
            })
            .map(|p| format!(" {p}"))
            .collect()
    }

    pub async fn mail(&mut self, addr: &str, raw_params: &str) -> Result<Reply, Reply> {
        let line = format!("MAIL FROM:<{addr}>{}\r\n", self.params(raw_params));
        self.cmd(&line).await
    }

    pub async fn rcpt(&mut self, addr: &str, raw_params: &str) -> Result<Reply, Reply> {
        let line = format!("RCPT TO:<{addr}>{}\r\n", self.params(raw_params));
        self.cmd(&line).await
    }

    /// Send the message; returns one reply (SMTP) or one per accepted recipient (LMTP).
    pub async fn data(&mut self, message: &[u8], accepted: usize) -> Result<Vec<Reply>, Reply> {
        let go = self.cmd("DATA\r\n").await?;
        if go.code != 354 {
            // DATA refused: the downstream's transaction is still open. End it, or the next
            // MAIL on this connection would be "nested".
            self.rset()
                .await
                .map_err(|_| Reply::tempfail("did not accept RSET after refusing DATA"))?;
            return Ok(vec![go; if self.lmtp { accepted } else { 1 }]);
        }
        let timeout = self.client.timeout;
        // write_message adds "\r\n.\r\n": the message's own final CRLF is that CRLF.
        let message = message.strip_suffix(b"\r\n").unwrap_or(message);
        tokio::time::timeout(timeout, self.client.write_message(message))
            .await
            .map_err(|_| Reply::tempfail("timed out receiving the message"))?
            .map_err(io_fail)?;
        let n = if self.lmtp { accepted } else { 1 };
        let replies = tokio::time::timeout(timeout, self.client.read_many(n))
            .await
            .map_err(|_| Reply::tempfail("timed out after the message"))?
            .map_err(io_fail)?;
        Ok(replies.iter().map(Reply::from_response).collect())
    }

    pub async fn rset(&mut self) -> Result<(), Reply> {
        let r = self.cmd("RSET\r\n").await?;
        if r.is_positive() {
            Ok(())
        } else {
            Err(r)
        }
    }

    pub async fn quit(mut self) {
        let _ = self.client.cmd(b"QUIT\r\n").await;
    }
}

/// xtext encoding (RFC 3461) for ENVID and ORCPT values.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            "smtp://127.0.0.1:10026".parse(),
            Ok(Target {
                lmtp: false,
                addr: Addr::Tcp("127.0.0.1:10026".into())
            })
        );
        assert_eq!(
            "lmtp:unix:/run/dovecot/lmtp".parse(),
            Ok(Target {
                lmtp: true,
                addr: Addr::Unix("/run/dovecot/lmtp".into())
            })
        );
        assert_eq!(
            "lmtp://127.0.0.1:24".parse(),
            Ok(Target {
                lmtp: true,
                addr: Addr::Tcp("127.0.0.1:24".into())
            })
        );
        assert_eq!(
            "inet:127.0.0.1:10026".parse(),
            Ok(Target {
                lmtp: false,
                addr: Addr::Tcp("127.0.0.1:10026".into())
            })
        );
        assert_eq!(
            "unix:/x".parse(),
            Ok(Target {
                lmtp: true,
                addr: Addr::Unix("/x".into())
            })
        );
        assert!("smtp://nowhere".parse::<Target>().is_err());
    }

    #[test]
    fn replies_and_xtext() {
        assert_eq!(Reply::new(250, "2.0.0 Ok").wire(), "250 2.0.0 Ok\r\n");
        assert_eq!(Reply::new(550, "one\ntwo").wire(), "550-one\r\n550 two\r\n");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }
}
