//! The floor of the core's throughput bench (issue 19): the least work any correct filter
//! must do for a message — mail-parser, then one lol_html pass over each HTML part with an
//! `img[src]` and an `a[href]` handler that read the URL, no re-encoding. Shared by
//! `benches/throughput.rs` and `examples/profile_corpus.rs` through `#[path]`, so that the
//! bench and the profiles run the same floor.
#![allow(dead_code)]

use lol_html::{HtmlRewriter, Settings};
use mail_parser::{MessageParser, PartType};
use std::hint::black_box;

/// One message through the floor; `false` when mail-parser or lol_html gave up on it.
pub fn floor(parser: &MessageParser, m: &[u8]) -> bool {
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
