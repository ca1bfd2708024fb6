//! The client side of SMTP and LMTP for the content-filter tests: building pipelined sessions,
//! reading replies, and what the filter is expected to forward.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SMTP DATA encoding: dot-stuff and terminate.
pub fn stuffed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// One transaction, without greeting or QUIT: the MAIL and RCPT command lines as given, DATA,
/// and the message dot-stuffed.
pub fn transaction(mail: &str, rcpts: &[&str], msg: &[u8]) -> Vec<u8> {
    let mut s = format!("{mail}\r\n").into_bytes();
    for r in rcpts {
        s.extend_from_slice(format!("{r}\r\n").as_bytes());
    }
    s.extend_from_slice(b"DATA\r\n");
    s.extend_from_slice(&stuffed(msg));
    s
}

/// A whole session: `greet` (EHLO, HELO or LHLO) from client.test, one transaction, QUIT.
pub fn session(greet: &str, mail: &str, rcpts: &[&str], msg: &[u8]) -> Vec<u8> {
    let mut s = format!("{greet} client.test\r\n").into_bytes();
    s.extend_from_slice(&transaction(mail, rcpts, msg));
    s.extend_from_slice(b"QUIT\r\n");
    s
}

/// What the filter forwards for `msg`: `trackless filter`'s output, ending in CRLF. The
/// message must be one that gets rewritten.
pub fn forwarded(msg: &[u8]) -> Vec<u8> {
    let out = trackless::neutralise(msg, &trackless::Policy::default());
    assert!(out.changed, "test message has no trackers");
    let mut want = out.bytes.to_vec();
    if !want.ends_with(b"\r\n") {
        want.extend_from_slice(b"\r\n");
    }
    want
}

/// Speak to a server: send `input` in one write (pipelining), read until `replies` reply lines
/// (final lines, not continuations) have come back after the greeting.
pub async fn converse(addr: std::net::SocketAddr, input: &[u8], replies: usize) -> Vec<String> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    exchange(&mut s, input, replies + 1).await
}

/// Write `input` on an open session and read `replies` final reply lines (continuation lines
/// skipped), for at most 30 s; fewer if the server closes the connection.
pub async fn exchange(s: &mut TcpStream, input: &[u8], replies: usize) -> Vec<String> {
    s.write_all(input).await.expect("write");
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while out.len() < replies {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("reply timeout")
            .expect("read");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if line.as_bytes().get(3) != Some(&b'-') {
                out.push(line);
            }
        }
    }
    out
}
