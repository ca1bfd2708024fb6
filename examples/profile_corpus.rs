//! Run `neutralise` over the corpus many times (for profilers: perf, callgrind).
//!     cargo build --release --example profile_corpus && perf record target/release/examples/profile_corpus
use std::path::Path;
fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let msgs: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    let policy = trackless::Policy::default();
    let mut changed = 0;
    for _ in 0..rounds {
        for m in &msgs {
            changed += usize::from(trackless::neutralise(m, &policy).changed);
        }
    }
    println!("{changed}");
}
