//! The milter binary as a daemon: SIGHUP reloads the rules without dropping connections,
//! SIGTERM stops it cleanly and removes its unix socket.

use indymilter_test::{Actions, EomAction, ProtoOpts, Status, TestConnection};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trackless-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

const MESSAGE: &str = "From: a@shop.example\r\nTo: b@example.net\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n<html><body><img src=\"https://beacon.local.example/x.png\" width=\"300\" height=\"100\"><p>Hello</p></body></html>\r\n";

async fn send(conn: &mut TestConnection) -> Vec<EomAction> {
    conn.mail(["<a@shop.example>"]).await.expect("mail");
    conn.rcpt(["<b@example.net>"]).await.expect("rcpt");
    let (head, body) = MESSAGE.split_once("\r\n\r\n").expect("split");
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

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_rules_sigterm_stops_cleanly() {
    let dir = scratch();
    let rules = dir.join("local.toml");
    std::fs::write(
        &rules,
        "[[open]]\nid = 'local.beacon'\nvendor = 'Local'\nhosts = ['beacon.local.example']\n",
    )
    .expect("rules");
    let sock = dir.join("milter.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_trackless"))
        .env("TRACKLESS_CONFIG", "/dev/null")
        .args(["--no-log", "--rules"])
        .arg(&rules)
        .args(["milter", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut conn = TestConnection::configure()
        .available_actions(Actions::all())
        .available_opts(ProtoOpts::all())
        .read_timeout(Duration::from_secs(10))
        .open_unix(&sock)
        .await
        .expect("connect");
    let actions = send(&mut conn).await;
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, EomAction::ReplaceBody { .. })),
        "rule not applied: {actions:?}"
    );

    // Drop the rule and reload: the same connection now gets no changes.
    std::fs::write(&rules, "[[open]]\nid = 'local.beacon'\ndisabled = true\n").expect("rules");
    signal(child.id(), "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let actions = send(&mut conn).await;
    assert!(actions.is_empty(), "rules not reloaded: {actions:?}");

    // A broken rules file on reload keeps the current rules (and the daemon).
    std::fs::write(&rules, "[[open]]\nid = 'x'\npath = '/('\n").expect("rules");
    signal(child.id(), "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(send(&mut conn).await.is_empty());
    conn.close().await.expect("close");

    signal(child.id(), "-TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sock.exists(), "socket left behind");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("rules and configuration reloaded"), "{log}");
    assert!(
        log.contains("reload failed; keeping the current rules"),
        "{log}"
    );
}
