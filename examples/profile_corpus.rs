//! Run `neutralise` over a directory of messages many times (for profilers: perf, callgrind).
//! Default: the sample corpus. For the hard case, generated newsletters first:
//!     cargo run --release --example newsletter -- /tmp/nl 500
//!     cargo build --release --example profile_corpus
//!     perf record -g target/release/examples/profile_corpus 20 /tmp/nl
//! With `--floor` as the third argument it runs the floor of `benches/throughput.rs` instead
//! (mail-parser, one lol_html pass with an `img[src]` and an `a[href]` handler), so that the
//! instruction counts of the two compare under callgrind (run 1 and 2 rounds; the difference
//! is one round without the start-up).
use lol_html::{HtmlRewriter, Settings};
use mail_parser::{MessageParser, PartType};
use std::hint::black_box;
use std::path::PathBuf;

fn floor(parser: &MessageParser, m: &[u8]) -> bool {
    let Some(parsed) = parser.parse(black_box(m)) else {
        return false;
    };
    for part in &parsed.parts {
        let PartType::Html(html) = &part.body else {
            continue;
        };
        let mut out = Vec::with_capacity(html.len());
        let settings = Settings {
            element_content_handlers: vec![
                lol_html::element!("img[src]", |el| {
                    black_box(el.get_attribute("src"));
                    Ok(())
                }),
                lol_html::element!("a[href]", |el| {
                    black_box(el.get_attribute("href"));
                    Ok(())
                }),
            ],
            ..Settings::new()
        };
        let mut rw = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
        if rw.write(html.as_bytes()).and_then(|()| rw.end()).is_err() {
            return false;
        }
        black_box(out);
    }
    true
}

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
