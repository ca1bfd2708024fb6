//! Large encoded HTML parts are decoded, rewritten and encoded again a piece at a time (and the
//! largest rewritten part spliced into the output in place), to hold less memory. That path
//! must give the same content and the same findings as the whole-part one: every corpus message,
//! every fuzz seed and generated newsletters (quoted-printable and base64, small and over the
//! piece size) go through both and are compared.

mod common;

use common::newsletter::{newsletter, Spec};
use trackless::{neutralise, Policy};

fn policies() -> (Policy, Policy) {
    let whole = Policy {
        limits: trackless::Limits {
            stream_above: usize::MAX,
            ..trackless::Limits::default()
        },
        ..Policy::default()
    };
    let streamed = Policy {
        limits: trackless::Limits {
            stream_above: 0,
            ..trackless::Limits::default()
        },
        ..Policy::default()
    };
    (whole, streamed)
}

fn same(raw: &[u8], whole: &Policy, streamed: &Policy, what: &str) {
    let a = neutralise(raw, whole);
    let b = neutralise(raw, streamed);
    if a.bytes != b.bytes {
        assert!(
            common::invariants::as_read(&a.bytes) == common::invariants::as_read(&b.bytes),
            "{what}: the output differs"
        );
    }
    assert_eq!(a.changed, b.changed, "{what}");
    assert_eq!(
        format!("{:?}", a.findings),
        format!("{:?}", b.findings),
        "{what}: the findings differ"
    );
    assert_eq!(
        format!("{:?}", a.remote),
        format!("{:?}", b.remote),
        "{what}"
    );
}

#[test]
fn the_streamed_path_gives_the_same_bytes_on_the_corpus_and_the_fuzz_seeds() {
    let (whole, streamed) = policies();
    let mut n = 0;
    for f in common::corpus_files() {
        same(
            &std::fs::read(&f).expect("read"),
            &whole,
            &streamed,
            &f.display().to_string(),
        );
        n += 1;
    }
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/message");
    for e in std::fs::read_dir(&seeds).expect("fuzz/seeds/message") {
        let p = e.expect("entry").path();
        same(
            &std::fs::read(&p).expect("read"),
            &whole,
            &streamed,
            &p.display().to_string(),
        );
        n += 1;
    }
    assert!(n > 1000, "only {n} messages compared");
}

#[test]
fn large_newsletters_are_rewritten_the_same_piece_by_piece() {
    let (whole, streamed) = policies();
    let default = Policy::default();
    for (seed, size, base64) in [
        (1, 60 << 10, false),
        (2, 60 << 10, true),
        (3, 5 << 20, false),
        (4, 5 << 20, true),
    ] {
        let raw = newsletter(Spec {
            seed,
            size,
            links: 40,
            base64,
        });
        let what = format!("{size} bytes, base64 {base64}");
        same(&raw, &whole, &streamed, &what);
        // The shipped limit streams the 5 MiB ones: still rewritten, trackers gone.
        let out = neutralise(&raw, &default);
        assert!(out.changed, "{what}");
        assert!(
            !common::all_text(&out.bytes).contains("awstrack.me/I0/"),
            "{what}: the pixel is still there"
        );
    }
}
