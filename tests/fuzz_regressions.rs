//! Every reproducer the fuzzers found, replayed in plain `cargo test` through the same checks
//! the fuzz targets make (tests/common/fuzz_checks.rs): `fuzz/regressions/TARGET/NAME` is an
//! input of target TARGET. A crash, hang or broken property that the fuzzers found once stays
//! fixed. A sample of the seed corpora (`fuzz/seeds/TARGET/`, the minimised corpora the fuzzers
//! grew: every Nth file, at most `SEED_SAMPLE` per target, so that the test stays quick) runs
//! too, so the checks themselves are exercised on real-shaped input in every test run;
//! `TRACKLESS_ALL_SEEDS=1` replays all of them. The `milter` and `smtp_session` targets are
//! replayed only by fuzzing (their checks live in the targets); `milter_wire`'s are here.

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

/// How many seed inputs of a target a plain test run replays.
const SEED_SAMPLE: usize = 60;

/// Every regression input of `target` and a sample of its seeds (evenly spread, always the
/// same files).
fn chosen(target: &str) -> Vec<PathBuf> {
    let mut files = inputs("regressions", target);
    let seeds = inputs("seeds", target);
    let all = std::env::var_os("TRACKLESS_ALL_SEEDS").is_some_and(|v| v == "1");
    let step = if all {
        1
    } else {
        seeds.len().div_ceil(SEED_SAMPLE).max(1)
    };
    files.extend(seeds.into_iter().step_by(step));
    files
}

/// Run `check` on the chosen inputs of `target`, reporting each failure by file name.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let mut failures = Vec::new();
    let mut n = 0;
    for path in chosen(target) {
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

#[test]
fn milter_wire() {
    assert!(replay("milter_wire", fuzz_checks::milter_wire) > 0);
}
