//! A 7bit/8bit part whose rewrite would make a line longer than SMTP allows (998 bytes) is
//! re-encoded as quoted-printable: its Content-Transfer-Encoding field says so (changed, or
//! added where the part had none), and nothing else outside the part's body changes. Real
//! newsletters have long lines, and `opaque_links = mark` lengthens them by the title.

mod common;

use common::*;
use trackless::OpaqueLinks;
use trackless::{neutralise, Policy, SkipReason};

const SENDGRID: &str = "https://u1316.ct.sendgrid.net/ls/click?upn=u001.abc-2Bdef-3D";
const PIXEL: &str = "<img src=\"https://u1316.ct.sendgrid.net/wf/open?upn=u001.xyz-2B\" width=\"1\" height=\"1\" alt=\"\">";

fn marked() -> Policy {
    Policy {
        opaque_links: OpaqueLinks::Mark,
        ..Policy::default()
    }
}

/// One long line (980 bytes) of links, as table-based newsletters write them.
fn long_html() -> String {
    let mut line = String::from("<table><tr>");
    while line.len() < 900 {
        line.push_str(&format!("<td><a href=\"{SENDGRID}\">Shop</a></td>"));
    }
    line.push_str("</tr></table>");
    format!("<html><body>\n<p>Autumn sale, caf\u{e9} offers</p>\n{line}\n{PIXEL}\n</body></html>\n")
}

fn body_lines_ok(raw: &[u8]) {
    for line in raw.split(|&b| b == b'\n') {
        assert!(line.len() <= 998, "line of {} bytes", line.len());
    }
}

fn part_headers(raw: &[u8], marker: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    let at = text.find(marker).expect("part");
    let end = text[at..].find("\r\n\r\n").expect("part header end") + at;
    text[at..end].to_string()
}

#[test]
fn multipart_7bit_part_becomes_quoted_printable() {
    let html = long_html();
    let alt = multipart(
        "alternative",
        "b-long",
        &[
            leaf("text/plain; charset=utf-8", "7bit", "Autumn sale\n", "\r\n"),
            leaf("text/html; charset=utf-8", "8bit", &html, "\r\n"),
        ],
        "\r\n",
    );
    let raw = message(&std_headers(), &alt, "\r\n");
    let policy = marked();
    invariants::check(&raw, &policy).expect("rewrite properties");
    let out = neutralise(&raw, &policy);
    assert!(out.changed);
    assert!(
        !out.findings
            .iter()
            .any(|f| f.reason == Some(SkipReason::LineTooLong)),
        "{:?}",
        out.findings
    );
    assert_eq!(out.counts.pixels, 1);
    body_lines_ok(&out.bytes);
    let headers = part_headers(&out.bytes, "Content-Type: text/html");
    assert_eq!(
        headers,
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
    );
    // The plain part kept its own encoding.
    assert!(part_headers(&out.bytes, "Content-Type: text/plain").ends_with("7bit"));
    let text = all_text(&out.bytes);
    assert!(text.contains("Shop</a> [tracked]"), "{text}");
    assert!(text.contains("caf\u{e9}"), "{text}");
    assert!(!text.contains("/wf/open"), "{text}");
}

#[test]
fn part_without_an_encoding_field_gets_one() {
    let html = long_html();
    let part = format!(
        "Content-Type: text/html; charset=utf-8\r\n\r\n{}",
        html.replace('\n', "\r\n")
    );
    let mixed = multipart("mixed", "b-none", &[part], "\r\n");
    let raw = message(&std_headers(), &mixed, "\r\n");
    let policy = marked();
    invariants::check(&raw, &policy).expect("rewrite properties");
    let out = neutralise(&raw, &policy);
    assert!(out.changed);
    body_lines_ok(&out.bytes);
    assert_eq!(
        part_headers(&out.bytes, "Content-Type: text/html"),
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
    );
}

#[test]
fn single_part_message_changes_its_top_level_field() {
    for nl in ["\r\n", "\n"] {
        let html = long_html();
        let raw = message(
            &std_headers(),
            &leaf("text/html; charset=utf-8", "7bit", &html, nl),
            nl,
        );
        let policy = marked();
        invariants::check(&raw, &policy).expect("rewrite properties");
        let out = neutralise(&raw, &policy);
        assert!(out.changed);
        body_lines_ok(&out.bytes);
        let text = String::from_utf8_lossy(&out.bytes);
        let head_end = text.find(&format!("{nl}{nl}")).expect("header block");
        let head = &text[..head_end];
        assert!(
            head.contains(&format!(
                "Content-Transfer-Encoding: quoted-printable{nl}X-Trackless: "
            )),
            "{head}"
        );
        assert!(!head.contains("7bit"), "{head}");
        assert!(all_text(&out.bytes).contains("[tracked]"));
    }
}

#[test]
fn two_encoding_fields_are_still_skipped() {
    let html = long_html();
    let part = format!(
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
        html.replace('\n', "\r\n")
    );
    let mixed = multipart("mixed", "b-two", &[part], "\r\n");
    let raw = message(&std_headers(), &mixed, "\r\n");
    let out = neutralise(&raw, &marked());
    invariants::no_internal_error(&out).expect("no panic");
    assert!(
        out.findings
            .iter()
            .any(|f| f.reason == Some(SkipReason::LineTooLong)),
        "{:?}",
        out.findings
    );
    assert!(!out.changed);
    assert_eq!(out.bytes.as_ref(), raw.as_slice());
}
