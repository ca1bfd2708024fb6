//! The SMTP/LMTP content filter's session loop over an in-memory stream: the input is what the
//! upstream MTA sends (commands, DATA with dot-stuffing, pipelining, garbage). A small sink
//! on a unix socket plays the downstream server and accepts everything. The session must end
//! (EOF after the input) without panicking, within the time bound, and every reply must be an
//! SMTP reply line. The first byte picks SMTP or LMTP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::runtime::Runtime;
use trackless::log::Keep;
use trackless::serve::forward::Target;
use trackless::serve::smtp::{session, Proto, ServerConfig};
use trackless::serve::{Overload, Shared};
use trackless::Policy;

struct World {
    rt: Runtime,
    shared: Arc<Shared>,
    cfg: [Arc<ServerConfig>; 2],
}

/// The downstream: greets, says yes to every command, reads DATA up to the lone dot.
async fn sink(stream: tokio::net::UnixStream, lmtp: bool) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let _ = wr.write_all(b"220 sink ESMTP\r\n").await;
    let mut line = Vec::new();
    let mut rcpts = 0usize;
    loop {
        line.clear();
        if rd.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let reply: Vec<u8> = if upper.starts_with(b"EHLO") || upper.starts_with(b"LHLO") {
            b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 SIZE 100000000\r\n".to_vec()
        } else if upper.starts_with(b"RCPT") {
            rcpts += 1;
            b"250 ok\r\n".to_vec()
        } else if upper.starts_with(b"DATA") {
            let _ = wr.write_all(b"354 go\r\n").await;
            loop {
                line.clear();
                if rd.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == b".\r\n" || line == b".\n" {
                    break;
                }
            }
            let n = if lmtp { rcpts.max(1) } else { 1 };
            rcpts = 0;
            b"250 queued\r\n".repeat(n)
        } else if upper.starts_with(b"QUIT") {
            let _ = wr.write_all(b"221 bye\r\n").await;
            return;
        } else {
            if upper.starts_with(b"RSET") || upper.starts_with(b"MAIL") {
                rcpts = 0;
            }
            b"250 ok\r\n".to_vec()
        };
        if wr.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("trackless-fuzz-smtp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut targets = Vec::new();
        for (name, lmtp) in [("smtp.sock", false), ("lmtp.sock", true)] {
            let path = dir.join(name);
            let _ = std::fs::remove_file(&path);
            let listener = rt
                .block_on(async { tokio::net::UnixListener::bind(&path) })
                .expect("bind");
            rt.spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    tokio::spawn(sink(s, lmtp));
                }
            });
            let scheme = if lmtp { "lmtp" } else { "smtp" };
            targets.push(format!("{scheme}:unix:{}", path.display()));
        }
        let shared = Arc::new(Shared::new(
            Policy::default(),
            1,
            Overload::Accept,
            None,
            Keep::default(),
            None,
        )
        .expect("threads"));
        let cfg = |proto, target: &str| {
            Arc::new(ServerConfig {
                proto,
                hostname: "filter.fuzz".into(),
                max_size: 1 << 20,
                max_recipients: 20,
                command_timeout: Duration::from_millis(500),
                data_timeout: Duration::from_millis(500),
                downstream_timeout: Duration::from_millis(500),
                forward: target.parse::<Target>().expect("target"),
            })
        };
        let cfg = [cfg(Proto::Smtp, &targets[0]), cfg(Proto::Lmtp, &targets[1])];
        World { rt, shared, cfg }
    })
}

fuzz_target!(init: { let _ = world(); }, |data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let w = world();
    let cfg = w.cfg[(mode & 1) as usize].clone();
    let shared = w.shared.clone();
    let input = input.to_vec();
    let replies = w.rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(session(server, shared, cfg, stop));
        let talk = async {
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let write = async {
                let _ = wr.write_all(&input).await;
                let _ = wr.shutdown().await;
            };
            let mut replies = Vec::new();
            let read = rd.read_to_end(&mut replies);
            let (_, r) = tokio::join!(write, read);
            let _ = r;
            replies
        };
        let replies = tokio::time::timeout(Duration::from_secs(5), talk)
            .await
            .expect("session did not end within 5 s of its input");
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("session task failed: {e}"),
            Err(_) => panic!("session did not end"),
        }
        replies
    });
    for line in replies.split_inclusive(|&b| b == b'\n') {
        let ok = line.len() >= 6
            && line[..3].iter().all(u8::is_ascii_digit)
            && matches!(line[3], b' ' | b'-')
            && line.ends_with(b"\r\n");
        assert!(ok, "not an SMTP reply line: {:?}", String::from_utf8_lossy(line));
    }
});
