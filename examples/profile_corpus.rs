//! Run `neutralise` over a directory of messages many times (for profilers: perf, callgrind).
//! Default: the sample corpus. For the hard case, generated newsletters first:
//!     cargo run --release --example newsletter -- /tmp/nl 500
//!     cargo build --release --example profile_corpus
//!     perf record -g target/release/examples/profile_corpus 20 /tmp/nl
use std::path::PathBuf;
fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    let msgs: Vec<Vec<u8>> = files
        .iter()
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
