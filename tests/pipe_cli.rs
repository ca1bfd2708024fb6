//! `trackless pipe` with a stand-in sendmail: the message handed on is what `trackless
//! filter` writes; envelope arguments are passed as Postfix gave them; any failure to hand on
//! exits 75 (EX_TEMPFAIL), never 69.

mod common;

use common::cli::{assert_exit, feed, spawn_piped, trackless};
use common::corpus_message as corpus;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A sendmail that records its arguments and stdin, then exits with `code`.
fn fake_sendmail(dir: &Path, code: i32) -> PathBuf {
    let path = dir.join("sendmail");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/args'\ncat > '{d}/message'\nexit {code}\n",
            d = dir.display()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// `trackless GLOBAL pipe -f SENDER --sendmail SENDMAIL -- RCPTS`, its log under `dir`.
fn pipe(
    dir: &Path,
    global: &[&std::ffi::OsStr],
    sender: &str,
    sendmail: &Path,
    rcpts: &[&str],
) -> Command {
    let mut c = trackless();
    c.env("XDG_STATE_HOME", dir)
        .args(global)
        .args(["pipe", "-f", sender, "--sendmail"])
        .arg(sendmail)
        .arg("--")
        .args(rcpts);
    c
}

fn run_pipe(dir: &Path, sendmail: &Path, input: &[u8]) -> std::process::Output {
    feed(
        &mut pipe(
            dir,
            &[],
            "bounce@esp.example",
            sendmail,
            &["jane@example.net", "bob@example.net"],
        ),
        input,
    )
}

#[test]
fn hands_the_rewritten_message_to_sendmail() {
    let dir = common::scratch("ok");
    let sendmail = fake_sendmail(&dir, 0);
    let raw = corpus("mailgun-newsletter.eml");
    let out = run_pipe(&dir, &sendmail, &raw);
    assert_exit(&out, 0);
    let args = std::fs::read_to_string(dir.join("args")).expect("args");
    assert_eq!(
        args,
        "-G\n-i\n-f\nbounce@esp.example\n--\njane@example.net\nbob@example.net\n"
    );
    let handed = std::fs::read(dir.join("message")).expect("message");
    let expected = trackless::neutralise(&raw, &trackless::Policy::default());
    assert!(expected.changed);
    assert_eq!(handed, expected.bytes.as_ref());
    // Pipe logs like every adapter: one row for the message (spooled beside the log, which
    // the next open imports).
    let log = dir.join("trackless/log.sqlite");
    assert!(
        trackless::log::spool::path(&log).exists(),
        "pipe spooled no record"
    );
    let rows: Vec<(String, Option<String>)> = trackless::log::Store::open(&log)
        .expect("open the log")
        .conn()
        .prepare("SELECT mode, envelope_sender FROM messages")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        [("pipe".to_string(), Some("bounce@esp.example".to_string()))]
    );
}

#[test]
fn failure_to_hand_on_is_a_temporary_failure() {
    let dir = common::scratch("fail");
    let raw = corpus("mailgun-newsletter.eml");
    let out = run_pipe(&dir, &fake_sendmail(&dir, 69), &raw);
    assert_eq!(out.status.code(), Some(75));
    // The stand-in did run and got the message: 75 is its failure passed on.
    assert!(dir.join("message").exists());
    let out = run_pipe(&dir, &dir.join("no-such-sendmail"), &raw);
    assert_eq!(out.status.code(), Some(75));
}

/// A broken rules file defers the mail (75) — with a sendmail that works, so that the rules
/// are the only thing that can fail: the same invocation without them hands the message on.
#[test]
fn broken_rules_defer_the_mail() {
    let dir = common::scratch("rules");
    let sendmail = fake_sendmail(&dir, 0);
    let raw = corpus("mailgun-newsletter.eml");
    let rules = dir.join("bad.toml");
    std::fs::write(&rules, "[[open]]\nid='x'\npath='/('\n").expect("rules");
    let run = |extra: &[&std::ffi::OsStr]| {
        let mut child = spawn_piped(&mut pipe(
            &dir,
            extra,
            "a@b.example",
            &sendmail,
            &["c@d.example"],
        ));
        // The message may not be read at all: a closed pipe is not an error here.
        let _ = child.stdin.take().expect("stdin").write_all(&raw);
        child.wait_with_output().expect("wait")
    };

    let out = run(&["--rules".as_ref(), rules.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("bad.toml"),
        "the error names the file: {stderr}"
    );
    assert!(
        !dir.join("message").exists(),
        "sendmail ran although the rules are broken"
    );

    let out = run(&[]);
    assert_exit(&out, 0);
    let handed = std::fs::read(dir.join("message")).expect("sendmail got the message");
    let expected = trackless::neutralise(&raw, &trackless::Policy::default());
    assert!(expected.changed);
    assert_eq!(handed, expected.bytes.as_ref());
}

/// A message that makes the core panic (test-hooks builds, `TRACKLESS_TEST_PANIC`) is handed on
/// as it came, exit 0, with a warning on stderr naming the internal error.
#[test]
fn caught_panic_hands_the_original_on_and_warns() {
    let dir = common::scratch("panic");
    let sendmail = fake_sendmail(&dir, 0);
    let marker = "X-Test-Panic-Marker-51d0";
    let mut raw = format!("X-Campaign: {marker}\n").into_bytes();
    raw.extend_from_slice(&corpus("mailgun-newsletter.eml"));
    let out = feed(
        pipe(
            &dir,
            &[],
            "bounce@esp.example",
            &sendmail,
            &["jane@example.net"],
        )
        .env("TRACKLESS_TEST_PANIC", marker),
        &raw,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(std::fs::read(dir.join("message")).expect("message"), raw);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("trackless pipe: passed on unchanged: internal-error")),
        "{stderr}"
    );
}
