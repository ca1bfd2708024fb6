//! Write generated newsletters (the hard case of the benchmarks) as files.
//!
//!   cargo run --release --example newsletter -- DIR [COUNT] [SIZE_KB]
//!
//! COUNT files `DIR/NNNNN.eml` (default 1); without SIZE_KB they vary between 50 and 150 KB
//! with 20-60 wrapped links, one in three in base64; with SIZE_KB each is that size, in
//! quoted-printable, with 40 links.

#[path = "../tests/common/newsletter.rs"]
mod newsletter;

use newsletter::{newsletter, Spec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: newsletter DIR [COUNT] [SIZE_KB]");
        std::process::exit(2);
    };
    let count: u64 = args.get(1).map_or(1, |n| n.parse().expect("COUNT"));
    let size: Option<usize> = args.get(2).map(|n| n.parse().expect("SIZE_KB"));
    std::fs::create_dir_all(dir).expect("DIR");
    for seed in 0..count {
        let spec = match size {
            Some(kb) => Spec {
                size: kb << 10,
                ..Spec::typical(seed)
            },
            None => Spec::varied(seed),
        };
        let path = format!("{dir}/{seed:05}.eml");
        std::fs::write(&path, newsletter(spec)).expect("write");
    }
}
