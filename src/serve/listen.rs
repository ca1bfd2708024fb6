//! Listening sockets: `unix:/path` (created with a given mode, a stale socket removed) or
//! `inet:host:port` (loopback unless told otherwise). Postfix's and sendmail's spellings are
//! both accepted: `inet:127.0.0.1:8891`, `inet:8891@127.0.0.1`, `local:/path`, a bare path,
//! or `127.0.0.1:8891`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "inet:{a}"),
        }
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<ListenAddr, String> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:").or_else(|| s.strip_prefix("local:")) {
            return Ok(ListenAddr::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(ListenAddr::Unix(PathBuf::from(s)));
        }
        let inet = s.strip_prefix("inet:").unwrap_or(s);
        // sendmail style: port@host
        let candidate = match inet.split_once('@') {
            Some((port, host)) => format!("{host}:{port}"),
            None => inet.to_string(),
        };
        let candidate = if candidate.starts_with(':') {
            format!("127.0.0.1{candidate}")
        } else if let Some(host) = candidate.strip_prefix("localhost:") {
            format!("127.0.0.1:{host}")
        } else {
            candidate
        };
        candidate
            .parse::<SocketAddr>()
            .map(ListenAddr::Tcp)
            .map_err(|_| format!("{s:?} is not unix:/path or inet:host:port"))
    }
}

/// A TCP or unix listener.
pub type Listener = indymilter::EitherListener<NoDelay, tokio::net::UnixListener>;

/// A TCP listener tuned for request/response protocols of small packets (milter, SMTP):
/// Nagle's algorithm off on our side, and quick ACKs, because a peer that writes a command in
/// two small segments without TCP_NODELAY (Postfix's milter client does) otherwise waits for
/// our delayed ACK: ~40 ms per exchange.
pub struct NoDelay(pub tokio::net::TcpListener);

impl indymilter::Listener for NoDelay {
    type Io = QuickAck;

    fn poll_accept(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<Self::Io>> {
        self.0.poll_accept(cx).map_ok(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            QuickAck(stream)
        })
    }
}

/// A TCP stream that re-arms TCP_QUICKACK after every read (Linux clears it on its own).
pub struct QuickAck(pub tokio::net::TcpStream);

impl QuickAck {
    fn quickack(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::io::AsRawFd;
            let one: libc::c_int = 1;
            // SAFETY: setsockopt on a socket we own, with a valid pointer to an int.
            unsafe {
                libc::setsockopt(
                    self.0.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if r.is_ready() {
            self.quickack();
        }
        r
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Bind a TCP or unix listener. A unix socket gets `mode` (e.g. 0o660 so the MTA's group can
/// connect); a stale socket left by a crashed instance is removed, a live one is an error.
pub fn bind(addr: &ListenAddr, mode: u32) -> io::Result<Listener> {
    match addr {
        ListenAddr::Tcp(a) => {
            let std = std::net::TcpListener::bind(a)?;
            std.set_nonblocking(true)?;
            Ok(indymilter::EitherListener::Tcp(NoDelay(
                tokio::net::TcpListener::from_std(std)?,
            )))
        }
        ListenAddr::Unix(path) => Ok(indymilter::EitherListener::Unix(bind_unix(path, mode)?)),
    }
}

/// Bind a unix socket with `mode`, removing a stale one.
pub fn bind_unix(path: &Path, mode: u32) -> io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another process is listening on it", path.display()),
                ))
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let std = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    std.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(std)
}

/// Parse an octal mode such as `0660`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode like 0660"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(
            "unix:/run/t.sock".parse(),
            Ok(ListenAddr::Unix("/run/t.sock".into()))
        );
        assert_eq!(
            "local:/run/t.sock".parse(),
            Ok(ListenAddr::Unix("/run/t.sock".into()))
        );
        assert_eq!(
            "/run/t.sock".parse(),
            Ok(ListenAddr::Unix("/run/t.sock".into()))
        );
        let tcp = ListenAddr::Tcp("127.0.0.1:8891".parse().unwrap());
        assert_eq!("inet:127.0.0.1:8891".parse(), Ok(tcp.clone()));
        assert_eq!("inet:8891@127.0.0.1".parse(), Ok(tcp.clone()));
        assert_eq!("127.0.0.1:8891".parse(), Ok(tcp.clone()));
        assert_eq!("inet:localhost:8891".parse(), Ok(tcp.clone()));
        assert_eq!("inet::8891".parse(), Ok(tcp));
        assert!("inet:nowhere".parse::<ListenAddr>().is_err());
        assert_eq!(parse_mode("0660"), Ok(0o660));
    }

    #[test]
    fn stale_socket_is_replaced_live_one_refused() {
        let dir = std::env::temp_dir().join(format!("trackless-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sock");
        // A stale socket: bound then dropped without unlinking.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let live = bind_unix(&path, 0o660).unwrap();
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o660
            );
            let err = bind_unix(&path, 0o660).err().unwrap();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
            drop(live);
        });
        std::fs::write(dir.join("file"), b"x").unwrap();
        assert!(bind_unix(&dir.join("file"), 0o600).is_err());
    }
}
