//! `trackless filter` on a message that makes the core panic (test-hooks builds panic on the
//! `TRACKLESS_TEST_PANIC` marker): the original comes out byte for byte, exit 0, a warning on
//! stderr names the internal error, and the tracking-log row records it.

mod common;

use common::cli::{feed, trackless};

#[test]
fn caught_panic_passes_the_original_through_and_warns() {
    let dir = common::scratch("filter-panic");
    let log = dir.join("log.sqlite");
    let marker = "X-Test-Panic-Marker-c4e1";
    let mut raw = format!("X-Campaign: {marker}\r\n").into_bytes();
    raw.extend_from_slice(&common::corpus_message("mailgun-newsletter.eml"));
    let filter = |panic_marker: &str| {
        feed(
            trackless()
                .env("TRACKLESS_TEST_PANIC", panic_marker)
                .arg("--log")
                .arg(&log)
                .arg("filter"),
            &raw,
        )
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
    // The one-shot filter spools its records; opening the log imports them.
    let store = trackless::log::Store::open(&log).expect("log");
    let conn = store.conn();
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
