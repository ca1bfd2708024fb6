//! The milter binary as a daemon: SIGHUP reloads the rules without dropping connections, a
//! broken rules file keeps the rules in force (not the built-in ones), SIGTERM stops it
//! cleanly and removes its unix socket.

mod common;

use common::milter::{rewritten, send, Daemon, Stderr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trackless-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// A visible image (300×100, so no size heuristic catches it) on a host the built-in rules do
/// not know: only the user's rule makes it a tracker.
const MESSAGE: &str = "From: a@shop.example\r\nTo: b@example.net\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n<html><body><img src=\"https://beacon.local.example/x.png\" width=\"300\" height=\"100\"><p>Hello</p></body></html>\r\n";

const CUSTOM_RULE: &str =
    "[[open]]\nid = 'local.beacon'\nvendor = 'Local'\nhosts = ['beacon.local.example']\nbeacon = 'any'\n";

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_rules_sigterm_stops_cleanly() {
    // The built-in rules leave the image alone: what the custom rule does is the user's.
    let defaults = trackless::neutralise(MESSAGE.as_bytes(), &trackless::Policy::default());
    assert!(!defaults.changed && defaults.skips().next().is_none());

    let dir = scratch();
    let rules = dir.join("local.toml");
    std::fs::write(&rules, CUSTOM_RULE).expect("rules");
    let sock = dir.join("milter.sock");
    let mut daemon = Daemon::new(
        Command::new(env!("CARGO_BIN_EXE_trackless"))
            .env("TRACKLESS_CONFIG", "/dev/null")
            .args(["--no-log", "--rules"])
            .arg(&rules)
            .args(["milter", "--listen"])
            .arg(format!("unix:{}", sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let stderr = Stderr::capture(daemon.child());
    let mut conn = common::milter::connect(&sock).await;
    let actions = send(&mut conn, "a@shop.example", MESSAGE).await;
    assert!(rewritten(&actions), "custom rule not applied: {actions:?}");

    // A broken rules file on reload keeps the rules in force: the custom rule still applies
    // (the built-in rules alone would leave the image).
    std::fs::write(&rules, "[[open]]\nid = 'x'\npath = '/('\n").expect("rules");
    signal(daemon.id(), "-HUP");
    stderr
        .wait_for("reload failed; keeping the current rules", 1)
        .await;
    let actions = send(&mut conn, "a@shop.example", MESSAGE).await;
    assert!(
        rewritten(&actions),
        "a broken reload dropped the rules in force: {actions:?}"
    );

    // Drop the rule and reload: the same connection now gets no changes.
    std::fs::write(&rules, "[[open]]\nid = 'local.beacon'\ndisabled = true\n").expect("rules");
    signal(daemon.id(), "-HUP");
    stderr.wait_for("rules and configuration reloaded", 1).await;
    let actions = send(&mut conn, "a@shop.example", MESSAGE).await;
    assert!(actions.is_empty(), "rules not reloaded: {actions:?}");

    // And back: the rule applies again.
    std::fs::write(&rules, CUSTOM_RULE).expect("rules");
    signal(daemon.id(), "-HUP");
    stderr.wait_for("rules and configuration reloaded", 2).await;
    let actions = send(&mut conn, "a@shop.example", MESSAGE).await;
    assert!(rewritten(&actions), "rule not reloaded: {actions:?}");
    conn.close().await.expect("close");

    signal(daemon.id(), "-TERM");
    let mut child = daemon.take();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    let log = stderr.finish();
    assert!(status.success(), "{log}");
    assert!(!sock.exists(), "socket left behind");
    assert!(log.contains("stopped"), "{log}");
}
