//! Talking to a running `trackless milter` over its unix socket, as an MTA would; watching a
//! daemon's stderr; killing a daemon a failed test leaves behind.

use indymilter_test::{Actions, EomAction, ProtoOpts, Status, TestConnection};
use std::path::Path;
use std::time::Duration;

/// Wait (up to 5 s) for the milter to listen on its socket, then connect offering every
/// action. The socket file appears at bind(), a moment before listen(): a refused connection
/// is retried.
pub async fn connect(sock: &Path) -> TestConnection {
    let open = || {
        TestConnection::configure()
            .available_actions(Actions::all())
            .available_opts(ProtoOpts::all())
            .read_timeout(Duration::from_secs(10))
            .open_unix(sock)
    };
    for _ in 0..200 {
        if sock.exists() {
            if let Ok(conn) = open().await {
                return conn;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    open().await.expect("connect to the milter")
}

/// One transaction from `sender` to b@example.net with `message` (CRLF lines); the milter must
/// accept it. Returns what it asked to change.
pub async fn send(conn: &mut TestConnection, sender: &str, message: &str) -> Vec<EomAction> {
    conn.mail([format!("<{sender}>")]).await.expect("mail");
    conn.rcpt(["<b@example.net>"]).await.expect("rcpt");
    let (head, body) = message.split_once("\r\n\r\n").expect("split");
    for line in head.split("\r\n") {
        let (n, v) = line.split_once(':').expect("header");
        conn.header(n, v).await.expect("header");
    }
    conn.eoh().await.expect("eoh");
    conn.body(body.as_bytes().to_vec()).await.expect("body");
    let (actions, status) = conn.eom().await.expect("eom");
    assert_eq!(status, Status::Accept);
    actions.actions
}

/// Did the milter replace the body?
pub fn rewritten(actions: &[EomAction]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, EomAction::ReplaceBody { .. }))
}

/// A daemon's stderr, read by a thread as it is written, so a test can wait for a log line
/// (a reload done or refused) instead of sleeping.
pub struct Stderr {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Stderr {
    /// Take over `child`'s piped stderr.
    pub fn capture(child: &mut std::process::Child) -> Stderr {
        use std::io::BufRead;
        let pipe = child.stderr.take().expect("stderr must be piped");
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut t = sink.lock().expect("lock");
                t.push_str(&line);
                t.push('\n');
            }
        });
        Stderr {
            text,
            reader: Some(reader),
        }
    }

    pub fn text(&self) -> String {
        self.text.lock().expect("lock").clone()
    }

    /// Wait until `needle` has appeared `count` times (at most 10 s, then fail).
    pub async fn wait_for(&self, needle: &str, count: usize) {
        for _ in 0..400 {
            if self.text().matches(needle).count() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{needle:?} not logged {count} time(s):\n{}", self.text());
    }

    /// Everything the daemon wrote, once it has exited (its stderr closed).
    pub fn finish(mut self) -> String {
        if let Some(r) = self.reader.take() {
            r.join().expect("stderr reader");
        }
        self.text()
    }
}

/// A spawned daemon that is killed if the test fails before it stops it, so a failing test
/// leaves no daemon behind (holding the test's pipes and sockets).
pub struct Daemon(Option<std::process::Child>);

impl Daemon {
    pub fn new(child: std::process::Child) -> Daemon {
        Daemon(Some(child))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }

    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("daemon already taken")
    }

    /// Hand the process over (to stop it and wait for it).
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("daemon already taken")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGTERM, wait for the exit; returns stderr. The daemon must exit 0.
pub async fn stop(daemon: Daemon) -> String {
    let child = daemon.take();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "daemon failed: {stderr}");
    stderr
}
