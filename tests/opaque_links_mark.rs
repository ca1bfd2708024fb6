//! `opaque_links = mark`: a visible marker after tracked links, a title, idempotent; unwrappable
//! links and unsubscribe links are not marked.

mod common;

use common::*;
use trackless::OpaqueLinks;
use trackless::{neutralise, Action, Kind, Policy};

fn policy() -> Policy {
    Policy {
        opaque_links: OpaqueLinks::Mark,
        ..Policy::default()
    }
}

const SENDGRID: &str = "https://u1316.ct.sendgrid.net/ls/click?upn=u001.abc-2Bdef-3D";

fn message_with(nl: &str) -> Vec<u8> {
    let html = format!(
        "<html><body><p><a href=\"{SENDGRID}\">Shop now</a> \
         <a href=\"https://u1316.ct.sendgrid.net/asm/unsubscribe/?user_id=1316&amp;data=x\">Unsubscribe</a> \
         <a href=\"https://www.shop.example/p?id=1&amp;utm_source=news\">Plain</a></p></body></html>"
    );
    let text = format!("Shop now: {SENDGRID}\nOr <{SENDGRID}>\n");
    let alt = multipart(
        "alternative",
        "b1",
        &[
            leaf("text/plain; charset=utf-8", "7bit", &text, nl),
            leaf("text/html; charset=utf-8", "quoted-printable", &html, nl),
        ],
        nl,
    );
    message(&std_headers(), &alt, nl)
}

#[test]
fn marks_opaque_links_once() {
    let raw = message_with("\r\n");
    let once = neutralise(&raw, &policy());
    assert!(once.changed);
    let text = all_text(&once.bytes);
    assert!(
        text.contains("(SendGrid logs the click)\">Shop now</a> [tracked]"),
        "{text}"
    );
    assert!(
        text.contains("title=\"trackless: tracked link (SendGrid logs the click)\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("Shop now: {SENDGRID} [tracked]")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Or <{SENDGRID}> [tracked]")),
        "{text}"
    );
    assert_eq!(
        text.matches("[tracked]").count(),
        3,
        "unsubscribe link must not be marked: {text}"
    );
    assert!(text.contains("href=\"https://www.shop.example/p?id=1\""));
    let marked = once
        .findings
        .iter()
        .filter(|f| f.kind == Kind::Link && f.action == Action::Marked)
        .count();
    assert_eq!(marked, 3);
    // A second run finds the marks and adds nothing.
    let twice = neutralise(&once.bytes, &policy());
    invariants::no_internal_error(&twice).expect("second run");
    assert!(!twice.changed, "{:?}", twice.findings);
    invariants::check(&raw, &policy()).expect("rewrite properties");
}

#[test]
fn keep_is_the_default_and_changes_nothing_for_opaque_links() {
    let raw = message_with("\n");
    let out = neutralise(&raw, &Policy::default());
    invariants::check_outcome(&raw, &out, &Policy::default()).expect("rewrite properties");
    // Only the utm_ parameter is removed.
    let text = all_text(&out.bytes);
    assert!(!text.contains("[tracked]"));
    assert_eq!(out.counts.links_cleaned, 1);
    assert!(out.counts.links_opaque >= 3);
}

/// Safe Links around a SendGrid click link (a forwarded newsletter, as Outlook rewrites it):
/// unwrapped down to the SendGrid link, which still logs the click, so it is marked in the
/// same run; a second run finds nothing to do.
#[test]
fn a_wrapper_around_an_opaque_tracker_is_unwrapped_and_marked_once() {
    let wrapped = format!(
        "https://eur01.safelinks.protection.outlook.com/?url={}&amp;data=05%7C01%7C&amp;reserved=0",
        percent_encoding::utf8_percent_encode(SENDGRID, percent_encoding::NON_ALPHANUMERIC)
    );
    let html = format!("<html><body><p><a href=\"{wrapped}\">Shop now</a></p></body></html>");
    let text = format!("Shop now: {}\n", wrapped.replace("&amp;", "&"));
    for nl in ["\r\n", "\n"] {
        let alt = multipart(
            "alternative",
            "b-safelinks",
            &[
                leaf("text/plain; charset=utf-8", "quoted-printable", &text, nl),
                leaf("text/html; charset=utf-8", "quoted-printable", &html, nl),
            ],
            nl,
        );
        let raw = message(&std_headers(), &alt, nl);
        invariants::check(&raw, &policy()).expect("rewrite properties");
        let once = neutralise(&raw, &policy());
        let out = all_text(&once.bytes);
        assert!(
            out.contains(&format!(
                "<a href=\"{SENDGRID}\" title=\"trackless: tracked link"
            )),
            "{out}"
        );
        assert!(out.contains("Shop now</a> [tracked]"), "{out}");
        assert!(
            out.contains(&format!("Shop now: {SENDGRID} [tracked]")),
            "{out}"
        );
        let unwrapped = once
            .findings
            .iter()
            .filter(|f| f.kind == Kind::Link && f.action == Action::Unwrapped)
            .count();
        assert_eq!(unwrapped, 2);
    }
}
