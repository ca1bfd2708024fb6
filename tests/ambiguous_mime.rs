//! A part that holds the `--boundary` of a multipart enclosing it (in the middle of a line,
//! where RFC 2046 does not see a delimiter but lenient readers do), or of any multipart the
//! message's text declares (even one our walk reads as text), or whose rewrite would write one
//! (a quoted-printable `=2D=2D` decoded and encoded again as `--`), is left alone with an
//! `ambiguous-mime` skip: otherwise a reader could see parts appear or vanish.

mod common;

use common::invariants;
use trackless::{neutralise, Action, Kind, Policy, SkipReason};

const PIXEL: &str = "<img src=\"https://u1316.ct.sendgrid.net/wf/open?upn=u001.xyz-2B\" width=\"1\" height=\"1\" alt=\"\">";

fn message(html_cte: &str, html: &str) -> Vec<u8> {
    format!(
        "From: news@shop.example\r\nTo: a@b.example\r\nSubject: sale\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"bnd42\"\r\n\r\n\
         --bnd42\r\nContent-Type: text/plain\r\n\r\nSale\r\n\
         --bnd42\r\nContent-Type: text/html; charset=utf-8\r\n{html_cte}\r\n{html}\r\n\
         --bnd42--\r\n"
    )
    .into_bytes()
}

fn skip_reasons(raw: &[u8]) -> Vec<SkipReason> {
    neutralise(raw, &Policy::default())
        .findings
        .iter()
        .filter_map(|f| f.reason)
        .collect()
}

#[test]
fn the_same_message_without_a_boundary_inside_is_rewritten() {
    let raw = message("", &format!("<p>Hello</p>{PIXEL}<p>bye</p>"));
    let out = neutralise(&raw, &Policy::default());
    assert!(out.changed);
    assert!(out
        .findings
        .iter()
        .any(|f| f.kind == Kind::Pixel && f.action == Action::Removed));
    invariants::check_outcome(&raw, &out, &Policy::default()).unwrap();
}

#[test]
fn a_mid_line_enclosing_boundary_leaves_the_part_alone() {
    // The fuzzer's shape: mail-parser ends the part at `0DI--bnd42`, our walk does not, and
    // removing the unclosed Mailgun `url(` up to the end of the part would take it away.
    let raw = message(
        "",
        &format!("<p>Hello</p>{PIXEL}<style>p{{x:url(https://email.mg.shop.example/o/eJw\r\n0DI--bnd42\r\nContent-Type: text/plain\r\n\r\ntail"),
    );
    let out = neutralise(&raw, &Policy::default());
    assert!(!out.changed, "{:?}", out.findings);
    assert_eq!(out.bytes.as_ref(), raw.as_slice());
    assert_eq!(skip_reasons(&raw), vec![SkipReason::AmbiguousMime]);
    let skip = out.findings.iter().find(|f| f.kind == Kind::Skip).unwrap();
    assert!(skip.detail.as_deref().unwrap().contains("part holds"));
    invariants::check(&raw, &Policy::default()).unwrap();
}

#[test]
fn a_rewrite_that_would_write_the_boundary_is_dropped() {
    // `=2D=2Dbnd42` decodes to `--bnd42`, which the encoder writes back as plain hyphens; a
    // soft line break could then put it at the start of a line.
    let html = format!("<p>Hello</p>{PIXEL}<p>=2D=2Dbnd42 is our code</p>").replace('=', "=3D");
    let html = html.replace("=3D2D=3D2D", "=2D=2D");
    let raw = message("Content-Transfer-Encoding: quoted-printable\r\n", &html);
    // Only the two delimiters and the close delimiter hold it as sent.
    assert_eq!(raw.windows(7).filter(|w| w == b"--bnd42").count(), 3);
    let out = neutralise(&raw, &Policy::default());
    assert!(!out.changed, "{:?}", out.findings);
    assert_eq!(skip_reasons(&raw), vec![SkipReason::AmbiguousMime]);
    let skip = out.findings.iter().find(|f| f.kind == Kind::Skip).unwrap();
    assert!(skip
        .detail
        .as_deref()
        .unwrap()
        .contains("rewrite would write"));
}

#[test]
fn an_outer_boundary_inside_a_nested_message_leaves_it_alone() {
    let inner = format!(
        "From: x@y.example\r\nContent-Type: text/html\r\n\r\n<p>Fwd</p>{PIXEL} see --outer7 below\r\n"
    );
    let raw = format!(
        "From: me@here.example\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=outer7\r\n\r\n\
         --outer7\r\nContent-Type: message/rfc822\r\n\r\n{inner}\
         --outer7--\r\n"
    )
    .into_bytes();
    let out = neutralise(&raw, &Policy::default());
    assert!(!out.changed, "{:?}", out.findings);
    assert_eq!(skip_reasons(&raw), vec![SkipReason::AmbiguousMime]);
    // Without it, the nested pixel goes.
    let clean = String::from_utf8(raw)
        .unwrap()
        .replace(" see --outer7 below", "");
    let out = neutralise(clean.as_bytes(), &Policy::default());
    assert!(out.changed);
    invariants::check_outcome(clean.as_bytes(), &out, &Policy::default()).unwrap();
}

#[test]
fn a_boundary_declared_where_our_walk_sees_text_leaves_the_part_alone() {
    // The fuzzer's shape: `--bnd42` followed by other characters ends the text part for
    // mail-parser, not for RFC 2046; after it, a nested multipart (boundary "inner") that
    // only mail-parser sees; the HTML part's pixel spans a line that is that multipart's
    // delimiter for mail-parser, and removing the pixel would remove the delimiter.
    let raw =
        b"From: news@shop.example\r\nTo: a@b.example\r\nSubject: sale\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"bnd42\"\r\n\r\n\
         --bnd42\r\nContent-Type: text/plain\r\n\r\nSale\r\n\
         --bnd42junk\r\nContent-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n\
         --inner\r\nContent-Type: text/plain\r\n\r\nx\r\n\
         --bnd42\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>Hello</p><img src=\"https://u1316.ct.sendgrid.net/wf/open?upn=u001.xyz-2B\" alt=\"a\r\n\
         --inner\r\nContent-Type: text/plain\r\n\r\nb\" width=\"1\" height=\"1\"><p>bye</p>\r\n\
         --bnd42--\r\n"
            .to_vec();
    let out = neutralise(&raw, &Policy::default());
    assert!(
        skip_reasons(&raw).contains(&SkipReason::AmbiguousMime),
        "{:?}",
        out.findings
    );
    assert!(!out
        .findings
        .iter()
        .any(|f| f.kind == Kind::Pixel && f.action == Action::Removed));
    invariants::check(&raw, &Policy::default()).unwrap();
}
