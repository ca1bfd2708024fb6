//! Throughput of `neutralise` over the corpus, beside a bare lol_html pass (no handlers) over
//! the same HTML bytes. Prints MB/s, messages/s and the ratio (target: >= 60 %).
//!
//!     cargo bench --bench throughput            # ~3 s per measurement
//!     TRACKLESS_BENCH_SECS=10 cargo bench --bench throughput

use lol_html::{HtmlRewriter, Settings};
use mail_parser::{MessageParser, PartType};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use trackless::{neutralise, Policy};

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

/// The decoded HTML of every message (what the rewriter sees), collected with mail-parser.
fn html_parts(msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    fn walk(m: &mail_parser::Message<'_>, out: &mut Vec<Vec<u8>>) {
        for p in &m.parts {
            match &p.body {
                PartType::Html(h) => out.push(h.as_bytes().to_vec()),
                PartType::Message(inner) => walk(inner, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for raw in msgs {
        if let Some(m) = MessageParser::new().parse(raw) {
            walk(&m, &mut out);
        }
    }
    out
}

/// Run `f` over the whole set repeatedly for at least `secs`; returns seconds per round.
fn measure(secs: f64, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        f();
        rounds += 1;
    }
    start.elapsed().as_secs_f64() / rounds as f64
}

fn main() {
    let secs: f64 = std::env::var("TRACKLESS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let msgs = corpus();
    let htmls = html_parts(&msgs);
    let msg_bytes: usize = msgs.iter().map(Vec::len).sum();
    let html_bytes: usize = htmls.iter().map(Vec::len).sum();
    let policy = Policy::default();

    let t_core = measure(secs, || {
        for m in &msgs {
            black_box(neutralise(black_box(m), &policy));
        }
    });
    let t_bare = measure(secs, || {
        for h in &htmls {
            let mut out = Vec::with_capacity(h.len());
            let mut rw = HtmlRewriter::new(Settings::new(), |c: &[u8]| out.extend_from_slice(c));
            rw.write(h).expect("write");
            rw.end().expect("end");
            black_box(out);
        }
    });
    let mb = |bytes: usize, t: f64| bytes as f64 / t / 1e6;
    println!(
        "corpus: {} messages, {} bytes; {} HTML parts, {} bytes",
        msgs.len(),
        msg_bytes,
        htmls.len(),
        html_bytes
    );
    println!(
        "neutralise:     {:8.1} MB/s of mail, {:8.0} messages/s ({:.3} ms per corpus round)",
        mb(msg_bytes, t_core),
        msgs.len() as f64 / t_core,
        t_core * 1e3
    );
    println!(
        "bare lol_html:  {:8.1} MB/s of HTML ({:.3} ms per corpus round)",
        mb(html_bytes, t_bare),
        t_bare * 1e3
    );
    println!(
        "ratio (bare pass time / neutralise time over the same corpus): {:.0} %",
        t_bare / t_core * 100.0
    );
}
