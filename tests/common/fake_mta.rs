//! A small downstream SMTP/LMTP server for the content-filter tests: records every transaction
//! and answers as told (accept, temporary or permanent failure, slowness, per-recipient
//! LMTP results keyed on the recipient's local part).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub mail: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Accept,
    TempFail,
    PermFail,
    /// Sleep this long before answering 250.
    Slow(Duration),
    /// Refuse the DATA command itself (554); the transaction stays open, as on a real server.
    RefuseData,
}

#[derive(Clone)]
pub struct FakeMta {
    pub addr: std::net::SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub final_reply: Arc<Mutex<Final>>,
    /// Set: a connection that has finished a transaction is closed at its next command, as a
    /// server whose idle timeout fired meanwhile does: with this reply first (Postfix says
    /// "421 4.4.2 … Error: timeout exceeded"), or silently when empty.
    pub idle_close: Arc<Mutex<Option<&'static str>>>,
}

impl FakeMta {
    pub async fn start(lmtp: bool) -> FakeMta {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let final_reply = Arc::new(Mutex::new(Final::Accept));
        let idle_close = Arc::new(Mutex::new(None));
        let (r, f, i) = (received.clone(), final_reply.clone(), idle_close.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, f, i) = (r.clone(), f.clone(), i.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, lmtp, r, f, i).await;
                });
            }
        });
        FakeMta {
            addr,
            received,
            final_reply,
            idle_close,
        }
    }

    pub fn set_idle_close(&self, reply: Option<&'static str>) {
        *self.idle_close.lock().expect("lock") = reply;
    }

    pub fn set_final(&self, f: Final) {
        *self.final_reply.lock().expect("lock") = f;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    lmtp: bool,
    received: Arc<Mutex<Vec<Received>>>,
    final_reply: Arc<Mutex<Final>>,
    idle_close: Arc<Mutex<Option<&'static str>>>,
) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    wr.write_all(b"220 fake ESMTP\r\n").await?;
    let mut cur = Received::default();
    let mut line = String::new();
    let mut delivered = false;
    loop {
        line.clear();
        if rd.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if delivered {
            let close = *idle_close.lock().expect("lock");
            if let Some(reply) = close {
                wr.write_all(reply.as_bytes()).await?;
                return Ok(());
            }
        }
        let upper = line.to_ascii_uppercase();
        // Like a real server: a greeting (EHLO/HELO/LHLO) or RSET ends any open transaction,
        // MAIL inside a transaction is refused ("nested MAIL"), RCPT needs MAIL and DATA a
        // recipient.
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("LHLO") {
            cur = Received::default();
            "250-fake\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n".into()
        } else if upper.starts_with("HELO") {
            cur = Received::default();
            "250 fake\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            if !cur.mail.is_empty() {
                "503 5.5.1 Error: nested MAIL command\r\n".into()
            } else {
                cur = Received {
                    mail: line.trim_end().to_string(),
                    ..Received::default()
                };
                "250 2.1.0 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") && cur.mail.is_empty() {
            "503 5.5.1 Error: need MAIL command\r\n".into()
        } else if upper.starts_with("DATA") && cur.rcpts.is_empty() {
            "554 5.5.1 Error: no valid recipients\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let l = line.to_ascii_lowercase();
            if l.contains("reject") {
                "550 5.1.1 no such user\r\n".into()
            } else if l.contains("tempfail") {
                "450 4.2.0 try later\r\n".into()
            } else {
                cur.rcpts.push(line.trim_end().to_string());
                "250 2.1.5 ok\r\n".into()
            }
        } else if upper.starts_with("DATA")
            && *final_reply.lock().expect("lock") == Final::RefuseData
        {
            "554 5.7.1 DATA refused\r\n".into()
        } else if upper.starts_with("DATA") {
            wr.write_all(b"354 go\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if rd.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") {
                    l[1..].to_vec()
                } else {
                    l
                };
                data.extend_from_slice(&l);
            }
            // The CRLF before the terminating dot belongs to the message.
            cur.data = data;
            delivered = true;
            let f = *final_reply.lock().expect("lock");
            let rcpts = cur.rcpts.clone();
            received
                .lock()
                .expect("lock")
                .push(std::mem::take(&mut cur));
            let one = match f {
                Final::Accept => "250 2.0.0 queued as FAKE\r\n".to_string(),
                Final::TempFail => "451 4.3.0 local problem\r\n".to_string(),
                Final::PermFail => "554 5.6.0 content rejected\r\n".to_string(),
                Final::Slow(d) => {
                    tokio::time::sleep(d).await;
                    "250 2.0.0 queued late\r\n".to_string()
                }
                Final::RefuseData => unreachable!("DATA was refused"),
            };
            if lmtp {
                rcpts
                    .iter()
                    .map(|r| {
                        if r.contains("quota") {
                            "452 4.2.2 mailbox full\r\n".to_string()
                        } else {
                            one.clone()
                        }
                    })
                    .collect()
            } else {
                one
            }
        } else if upper.starts_with("RSET") {
            cur = Received::default();
            "250 2.0.0 ok\r\n".into()
        } else if upper.starts_with("QUIT") {
            wr.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "500 5.5.1 what\r\n".into()
        };
        wr.write_all(reply.as_bytes()).await?;
    }
}
