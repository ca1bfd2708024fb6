//! `trackless filter` on a message that makes the core panic (test-hooks builds panic on the
//! `TRACKLESS_TEST_PANIC` marker): the original comes out byte for byte, exit 0, a warning on
//! stderr names the internal error, and the tracking-log row records it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn caught_panic_passes_the_original_through_and_warns() {
    let dir = std::env::temp_dir().join(format!("trackless-filter-panic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("log.sqlite");
    let marker = "X-Test-Panic-Marker-c4e1";
    let mut raw = format!("X-Campaign: {marker}\r\n").into_bytes();
    raw.extend_from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/mailgun-newsletter.eml"))
            .expect("corpus"),
    );
    let filter = |panic_marker: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trackless"))
            .env("TRACKLESS_CONFIG", "/dev/null")
            .env("TRACKLESS_TEST_PANIC", panic_marker)
            .arg("--log")
            .arg(&log)
            .arg("filter")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&raw)
            .expect("write");
        child.wait_with_output().expect("wait")
    };

    // Without the hook armed the message is rewritten (so "unchanged" below means something).
    let expected = trackless::neutralise(&raw, &trackless::Policy::default());
    assert!(expected.changed);
    let out = filter("");
    assert!(out.status.success());
    assert_eq!(out.stdout, expected.bytes.as_ref());

    let out = filter(marker);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(out.stdout, raw, "the original must come out unchanged");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("trackless filter: passed through unchanged: internal-error")),
        "{stderr}"
    );
    let conn = rusqlite::Connection::open(&log).expect("log");
    let skipped: Vec<Option<String>> = conn
        .prepare("SELECT skipped FROM messages ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped[1]
            .as_deref()
            .is_some_and(|s| s.contains("internal-error")),
        "{skipped:?}"
    );
}
