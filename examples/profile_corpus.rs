//! Run `neutralise` over a directory of messages many times (for profilers: perf, callgrind).
//! Default: the sample corpus. For the hard case, generated newsletters first:
//!     cargo run --release --example newsletter -- /tmp/nl 500
//!     cargo build --release --example profile_corpus
//!     perf record -g target/release/examples/profile_corpus 20 /tmp/nl
//! With `--floor` as the third argument it runs the floor of `benches/throughput.rs` instead
//! (mail-parser, one lol_html pass with an `img[src]` and an `a[href]` handler), so that the
//! instruction counts of the two compare under callgrind (run 1 and 2 rounds; the difference
//! is one round without the start-up).
use mail_parser::MessageParser;
use std::path::PathBuf;

#[path = "../tests/common/floor.rs"]
mod floor;
use floor::floor;

// The binary's allocator, for the floor and for neutralise alike (see `trackless::allocator`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: trackless::allocator::Allocator = trackless::allocator::Allocator;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let floor_only = args.next().is_some_and(|a| a == "--floor");
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
    let parser = MessageParser::new();
    let mut changed = 0;
    for _ in 0..rounds {
        for m in &msgs {
            changed += usize::from(if floor_only {
                floor(&parser, m)
            } else {
                trackless::neutralise(m, &policy).changed
            });
        }
    }
    println!("{changed}");
}
