//! Every reproducer the fuzzers found, replayed in plain `cargo test` through the same checks
//! the fuzz targets make (tests/common/fuzz_checks.rs): `fuzz/regressions/TARGET/NAME` is an
//! input of target TARGET. A crash, hang or broken property that the fuzzers found once stays
//! fixed. The seed corpora (`fuzz/seeds/TARGET/`) run too, so the checks themselves are
//! exercised on real-shaped input in every test run.

#[path = "common/fuzz_checks.rs"]
mod fuzz_checks;

use std::path::{Path, PathBuf};

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Run `check` on every input of `target`, reporting each failure by file name.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let mut failures = Vec::new();
    let mut n = 0;
    for kind in ["regressions", "seeds"] {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).expect("read input");
            n += 1;
            if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    n
}

#[test]
fn message() {
    assert!(replay("message", fuzz_checks::message) > 0);
}

#[test]
fn html_body() {
    assert!(replay("html_body", |d| fuzz_checks::body("html", d)) > 0);
}

#[test]
fn text_body() {
    assert!(replay("text_body", |d| fuzz_checks::body("plain", d)) > 0);
}

#[test]
fn link() {
    assert!(replay("link", fuzz_checks::link) > 0);
}

#[test]
fn mbox() {
    replay("mbox", fuzz_checks::mbox);
}

#[test]
fn config() {
    replay("config", fuzz_checks::config);
}

#[test]
fn rules() {
    replay("rules", fuzz_checks::rules);
}

#[test]
fn clearurls() {
    replay("clearurls", fuzz_checks::clearurls);
}
