//! Throughput of `neutralise` over the corpus, beside a bare lol_html pass (no handlers) over
//! the same HTML bytes. Prints MB/s, messages/s and the ratio (target: >= 60 %).
//!
//! Then the hard case: 500 generated 50–150 KB newsletters (quoted-printable and base64,
//! 20–60 wrapped links, every one rewritten) through `neutralise`, beside the floor — the least
//! work any correct filter must do: mail-parser, then one lol_html pass over each HTML part with
//! an `img` and an `a[href]` handler that read the URL, no re-encoding. Prints both in
//! messages/s and their ratio (issue 19's target: neutralise at >= 0.6 of the floor).
//!
//!     cargo bench --bench throughput            # ~3 s per measurement
//!     TRACKLESS_BENCH_SECS=10 cargo bench --bench throughput
//!     TRACKLESS_BENCH_NEWSLETTERS=only cargo bench --bench throughput   # the hard case alone

#[path = "../tests/common/floor.rs"]
mod floor;
#[path = "../tests/common/newsletter.rs"]
mod newsletter;

use lol_html::{HtmlRewriter, Settings};
use mail_parser::{MessageParser, PartType};
use std::hint::black_box;

// The binary's allocator, for the floor and for neutralise alike (see `trackless::allocator`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: trackless::allocator::Allocator = trackless::allocator::Allocator;
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

/// neutralise against the floor over generated newsletters.
fn newsletters(secs: f64) {
    let msgs = newsletter::varied(0, 500);
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    let policy = Policy::default();
    let rewritten = msgs
        .iter()
        .filter(|m| neutralise(m, &policy).changed)
        .count();
    assert_eq!(rewritten, msgs.len(), "every newsletter must be rewritten");
    let core = || {
        for m in &msgs {
            black_box(neutralise(black_box(m), &policy));
        }
    };
    let parser = MessageParser::new();
    assert!(
        msgs.iter().all(|m| floor::floor(&parser, m)),
        "the floor reads every newsletter"
    );
    let floor = || {
        for m in &msgs {
            black_box(floor::floor(&parser, m));
        }
    };
    // Rounds of the two alternate, so that this machine's drift (±30 % within minutes) hits
    // both alike; the medians of the round times, and of each pair's ratio, are reported.
    let (mut cores, mut floors, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    core();
    floor();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(2.0 * secs) || ratios.len() < 3 {
        let t = Instant::now();
        core();
        let c = t.elapsed().as_secs_f64();
        let t = Instant::now();
        floor();
        let f = t.elapsed().as_secs_f64();
        cores.push(c);
        floors.push(f);
        ratios.push(f / c);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (t_core, t_floor) = (median(&mut cores), median(&mut floors));
    let ratio = median(&mut ratios);
    let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
    let per_s = |t: f64| msgs.len() as f64 / t;
    println!(
        "newsletters: {} generated, {:.0} KB on average, every one rewritten",
        msgs.len(),
        bytes as f64 / msgs.len() as f64 / 1024.0
    );
    println!(
        "neutralise:                 {:6.0} messages/s ({:.1} MB/s)",
        per_s(t_core),
        bytes as f64 / t_core / 1e6
    );
    println!(
        "floor (mail-parser + one lol_html pass, img and a[href] read): {:6.0} messages/s",
        per_s(t_floor)
    );
    println!(
        "neutralise / floor: {ratio:.2} (median of {} alternated pairs, {lo:.2}-{hi:.2}; target >= 0.6)",
        ratios.len()
    );
}

fn main() {
    let secs: f64 = std::env::var("TRACKLESS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let which = std::env::var("TRACKLESS_BENCH_NEWSLETTERS").unwrap_or_default();
    if which != "skip" {
        newsletters(secs);
    }
    if which == "only" {
        return;
    }
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
    let no_links = Policy {
        links: false,
        ..Policy::default()
    };
    let t_no_links = measure(secs, || {
        for m in &msgs {
            black_box(neutralise(black_box(m), &no_links));
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
    // Where the time goes: the same HTML through lol_html with our selectors and handlers that
    // do nothing, and through our real handlers alone (no MIME work).
    let t_selectors = measure(secs, || {
        for h in &htmls {
            let mut out = Vec::with_capacity(h.len());
            let noop = |_: &mut lol_html::html_content::Element| Ok(());
            let settings = Settings {
                element_content_handlers: vec![
                    lol_html::element!("img[src], input[src]", noop),
                    lol_html::element!("[background]", noop),
                    lol_html::element!("[style]", noop),
                    lol_html::element!("link[href]", noop),
                    lol_html::element!("a[href], area[href]", noop),
                    lol_html::text!("style", |_| Ok(())),
                ],
                ..Settings::new()
            };
            let mut rw = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
            rw.write(h).expect("write");
            rw.end().expect("end");
            black_box(out);
        }
    });
    let t_handlers = measure(secs, || {
        for h in &htmls {
            let link_rules = policy.rules.links();
            let judge = |url: &str| trackless::internals::process(url, &link_rules);
            let ctx = trackless::internals::PartCtx {
                part: "1",
                deadline: Instant::now() + Duration::from_secs(10),
                memory: policy.limits.html_memory,
                open: &policy.rules.open,
                font: &policy.rules.font,
                heuristics: &policy.heuristics,
                links: Some(&judge),
                opaque_links: policy.opaque_links,
            };
            let mut findings = Vec::new();
            let mut remote = Vec::new();
            black_box(
                trackless::internals::rewrite(
                    h,
                    encoding_rs::UTF_8,
                    &ctx,
                    &mut findings,
                    &mut remote,
                )
                .ok(),
            );
        }
    });
    let heads: Vec<&[u8]> = msgs
        .iter()
        .map(|m| {
            let end = m.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
            let end = end.or_else(|| m.windows(2).position(|w| w == b"\n\n").map(|i| i + 2));
            &m[..end.unwrap_or(m.len())]
        })
        .collect();
    let t_esp = measure(secs, || {
        for h in &heads {
            black_box(trackless::internals::attribute(
                &trackless::internals::Headers::parse(h),
                &[],
                &policy.rules.esp,
                &policy.trust,
            ));
        }
    });
    let mime = MessageParser::new()
        .with_mime_headers()
        .default_header_ignore();
    let t_mime = measure(secs, || {
        for m in &msgs {
            black_box(mime.parse(m));
        }
    });

    let mb = |bytes: usize, t: f64| bytes as f64 / t / 1e6;
    let ms = |t: f64| t * 1e3;
    println!(
        "corpus: {} messages, {} bytes; {} HTML parts, {} bytes",
        msgs.len(),
        msg_bytes,
        htmls.len(),
        html_bytes
    );
    println!(
        "neutralise:                 {:8.1} MB/s of mail, {:6.0} messages/s ({:.3} ms per corpus round)",
        mb(msg_bytes, t_core),
        msgs.len() as f64 / t_core,
        ms(t_core)
    );
    println!(
        "neutralise without links:   {:8.1} MB/s of mail ({:.3} ms); links cost {:.0} % of the time",
        mb(msg_bytes, t_no_links),
        ms(t_no_links),
        (t_core - t_no_links) / t_core * 100.0
    );
    println!(
        "bare lol_html (no handlers):{:8.1} MB/s of HTML ({:.3} ms)",
        mb(html_bytes, t_bare),
        ms(t_bare)
    );
    println!(
        "lol_html, our selectors, no-op handlers: {:.3} ms",
        ms(t_selectors)
    );
    println!(
        "lol_html, our handlers (HTML only):      {:.3} ms",
        ms(t_handlers)
    );
    println!(
        "mail-parser MIME parse:                  {:.3} ms",
        ms(t_mime)
    );
    println!(
        "ESP attribution (headers):               {:.3} ms",
        ms(t_esp)
    );
    println!(
        "ratio bare pass / neutralise: {:.1} %; selectors-only pass / neutralise: {:.1} %; our handlers / neutralise: {:.1} %",
        t_bare / t_core * 100.0,
        t_selectors / t_core * 100.0,
        t_handlers / t_core * 100.0
    );
}
