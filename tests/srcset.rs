//! `srcset` carries image URLs the browser fetches like an `src`: a tracker in a candidate
//! goes, visible candidates stay as written, `<picture><source>` too, and an invisible image
//! whose `srcset` is remote is a pixel whatever its `src`.

mod common;

use common::*;
use trackless::{neutralise, Kind, Policy};

const OPEN: &str = "https://email.shop.example/o/eJwNyTEOgCAMAMC3sDJQ";

fn newsletter(body: &str) -> Vec<u8> {
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>\n\
         <table width=\"600\"><tr><td>\n{body}\n<p>Autumn sale: boots for everyone.</p>\n\
         </td></tr></table></body></html>\n"
    );
    let alt = multipart(
        "alternative",
        "b-srcset",
        &[
            leaf("text/plain; charset=utf-8", "7bit", "Autumn sale\n", "\r\n"),
            leaf(
                "text/html; charset=utf-8",
                "quoted-printable",
                &html,
                "\r\n",
            ),
        ],
        "\r\n",
    );
    message(&std_headers(), &alt, "\r\n")
}

fn html_of(raw: &[u8]) -> String {
    all_text(raw)
}

fn checked(raw: &[u8]) -> trackless::Outcome<'_> {
    let policy = Policy::default();
    invariants::check(raw, &policy).expect("rewrite properties");
    neutralise(raw, &policy)
}

#[test]
fn tracker_candidate_goes_visible_ones_stay() {
    let raw = newsletter(&format!(
        "<img src=\"https://cdn.shop.example/logo.png\" srcset=\"{OPEN} 1x, https://cdn.shop.example/logo@2x.png 2x\" width=\"200\" height=\"50\" alt=\"Shop\">"
    ));
    let out = checked(&raw);
    assert!(out.changed);
    assert_eq!(out.counts.pixels, 1);
    let f = out
        .findings
        .iter()
        .find(|f| f.kind == Kind::Pixel)
        .expect("pixel");
    assert_eq!(f.context, Some("srcset"));
    assert_eq!(f.url.as_deref(), Some(OPEN));
    let html = html_of(&out.bytes);
    assert!(
        html.contains("<img src=\"https://cdn.shop.example/logo.png\" srcset=\"https://cdn.shop.example/logo@2x.png 2x\" width=\"200\""),
        "{html}"
    );
    assert!(!html.contains("/o/eJ"), "{html}");
}

#[test]
fn every_candidate_a_tracker_drops_the_attribute() {
    let raw = newsletter(&format!(
        "<img src=\"https://cdn.shop.example/hero.jpg\" srcset=\"{OPEN}\" width=\"600\" height=\"300\" alt=\"\">"
    ));
    let out = checked(&raw);
    let html = html_of(&out.bytes);
    assert!(
        html.contains("<img src=\"https://cdn.shop.example/hero.jpg\" width=\"600\""),
        "{html}"
    );
    assert_eq!(out.counts.pixels, 1);
}

#[test]
fn picture_source_with_a_beacon_goes() {
    let raw = newsletter(
        "<picture><source srcset=\"https://u1.ct.sendgrid.net/wf/open?upn=abc-2Bdef\" media=\"(min-width: 600px)\">\
         <source srcset=\"https://cdn.shop.example/hero-wide.webp\" type=\"image/webp\">\
         <img src=\"https://cdn.shop.example/hero.jpg\" width=\"600\" height=\"300\" alt=\"Boots\"></picture>",
    );
    let out = checked(&raw);
    assert_eq!(out.counts.pixels, 1);
    let html = html_of(&out.bytes);
    assert!(!html.contains("/wf/open"), "{html}");
    assert!(
        html.contains("<picture><source srcset=\"https://cdn.shop.example/hero-wide.webp\" type=\"image/webp\"><img src=\"https://cdn.shop.example/hero.jpg\""),
        "{html}"
    );
}

#[test]
fn invisible_image_with_a_remote_srcset_is_a_pixel() {
    let raw = newsletter(
        "<img src=\"cid:spacer@shop\" srcset=\"https://t.shop.example/p/9f8e7d6c5b4a.gif 1x\" width=\"1\" height=\"1\" alt=\"\">",
    );
    let out = checked(&raw);
    assert_eq!(out.counts.pixels, 1);
    let html = html_of(&out.bytes);
    assert!(!html.contains("t.shop.example"), "{html}");
    assert!(!html.contains("cid:spacer"), "{html}");
}

#[test]
fn clean_srcsets_stay_byte_identical() {
    let raw = newsletter(
        "<img src=\"https://res.cdn.example/w_300,h_200/boots.jpg\" \
         srcset=\"https://res.cdn.example/w_300,h_200/boots.jpg 1x,https://res.cdn.example/w_600,h_400/boots.jpg 2x\" width=\"300\" height=\"200\" alt=\"\">\
         <picture><source srcset=\"https://cdn.shop.example/a.webp 480w, https://cdn.shop.example/b.webp 960w\" sizes=\"100vw\">\
         <img src=\"https://cdn.shop.example/a.jpg\" width=\"480\" height=\"200\" alt=\"\"></picture>\
         <img src=\"cid:logo@shop\" srcset=\"cid:logo2x@shop 2x\" width=\"1\" height=\"1\">",
    );
    let out = checked(&raw);
    assert!(!out.changed, "{:?}", out.findings);
    assert_eq!(out.bytes.as_ref(), raw.as_slice());
}
