//! Bounds: beyond each limit the message passes through unchanged with a finding saying why.

mod common;

use common::*;
use std::time::Duration;
use trackless::{neutralise, Limits, Policy, SkipReason};

fn tracked_message() -> Vec<u8> {
    let html = "<html><body><p>Hi</p><img src=\"https://email.shop.example/o/eJwNyTEOgCAMAMC3sDJQ\" width=\"1\" height=\"1\"></body></html>";
    message(
        &std_headers(),
        &leaf("text/html; charset=utf-8", "quoted-printable", html, "\r\n"),
        "\r\n",
    )
}

fn skip_reasons(out: &trackless::Outcome<'_>) -> Vec<SkipReason> {
    out.skips().filter_map(|f| f.reason).collect()
}

#[test]
fn baseline_is_rewritten() {
    let raw = tracked_message();
    let out = neutralise(&raw, &Policy::default());
    assert!(out.changed);
    assert_eq!(out.counts.pixels, 1);
}

#[test]
fn too_large_passes_through() {
    let raw = tracked_message();
    let policy = Policy {
        limits: Limits {
            max_size: raw.len() - 1,
            ..Limits::default()
        },
        ..Policy::default()
    };
    let out = neutralise(&raw, &policy);
    assert!(!out.changed);
    assert_eq!(out.bytes.as_ref(), raw.as_slice());
    assert_eq!(skip_reasons(&out), vec![SkipReason::TooLarge]);
}

#[test]
fn time_limit_passes_through() {
    let raw = tracked_message();
    let policy = Policy {
        limits: Limits {
            max_time: Duration::ZERO,
            ..Limits::default()
        },
        ..Policy::default()
    };
    let out = neutralise(&raw, &policy);
    assert!(!out.changed);
    assert_eq!(out.bytes.as_ref(), raw.as_slice());
    assert_eq!(skip_reasons(&out), vec![SkipReason::TimeLimit]);
}

#[test]
fn html_memory_limit_passes_through() {
    // A start tag split over a huge attribute forces lol_html to buffer it.
    let html = format!(
        "<html><body><img src=\"https://email.shop.example/o/eJwNyTEOgCAMAMC3sDJQ\" width=\"1\" height=\"1\" title=\"{}\"></body></html>",
        "x".repeat(300_000)
    );
    let raw = message(
        &std_headers(),
        &leaf("text/html; charset=utf-8", "8bit", &html, "\r\n"),
        "\r\n",
    );
    let policy = Policy {
        limits: Limits {
            html_memory: 64 << 10,
            ..Limits::default()
        },
        ..Policy::default()
    };
    let out = neutralise(&raw, &policy);
    assert!(!out.changed);
    assert_eq!(out.bytes.as_ref(), raw.as_slice());
    assert_eq!(skip_reasons(&out), vec![SkipReason::MemoryLimit]);
}

#[test]
fn deep_nesting_passes_through() {
    let nl = "\r\n";
    let mut entity = leaf(
        "text/html; charset=utf-8",
        "7bit",
        "<img src=\"https://email.shop.example/o/eJwNyTEOgCAMAMC3sDJQ\" width=1 height=1>",
        nl,
    );
    for depth in 0..200 {
        entity = multipart("mixed", &format!("level{depth}"), &[entity], nl);
    }
    let raw = message(&std_headers(), &entity, nl);
    let out = neutralise(&raw, &Policy::default());
    assert!(!out.changed);
    assert_eq!(skip_reasons(&out), vec![SkipReason::MimeDepth]);

    // Within the limit the same shape is rewritten.
    let mut entity = leaf(
        "text/html; charset=utf-8",
        "7bit",
        "<img src=\"https://email.shop.example/o/eJwNyTEOgCAMAMC3sDJQ\" width=1 height=1>",
        nl,
    );
    for depth in 0..10 {
        entity = multipart("mixed", &format!("level{depth}"), &[entity], nl);
    }
    let raw = message(&std_headers(), &entity, nl);
    let out = neutralise(&raw, &Policy::default());
    assert!(out.changed);
}

/// Malformed input passes through or is rewritten, never through a caught panic: `neutralise`
/// turns a panic into an `internal-error` finding and passes the message on, so that finding
/// is what this test looks for (with every other rewrite property, see
/// tests/common/invariants.rs).
#[test]
fn garbage_never_panics() {
    let policy = Policy::default();
    let newsletter = |html: &str| {
        message(
            &std_headers(),
            &leaf("text/html; charset=utf-8", "quoted-printable", html, "\r\n"),
            "\r\n",
        )
    };
    let samples: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        b"no headers at all, just text".to_vec(),
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--".to_vec(),
        b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n====".to_vec(),
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nQ29udGVudC1UeXBlOiBtZXNzYWdlL3JmYzgyMg0KDQo=".to_vec(),
        (0u8..=255).cycle().take(5000).collect(),
        // A real newsletter's link text in an href (entities around a multi-byte character).
        newsletter("<a href=\"https://www.shop.example/size?fit=&gt;\u{d7}&lt;&amp;utm_source=x\">Size</a>"),
        // A <style> block ending inside an @import string cut in a multi-byte character.
        newsletter("<style>p{color:red}@import \"https://fonts.googleapis.com/css?family=Caf\u{e9}</style><p>x</p>"),
    ];
    for raw in samples {
        if let Err(e) = invariants::check(&raw, &policy) {
            panic!(
                "{:?}: {e}",
                String::from_utf8_lossy(&raw[..raw.len().min(120)])
            );
        }
    }
}

#[test]
fn outcome_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let raw = tracked_message();
    let policy = Policy::default();
    let out = neutralise(&raw, &policy);
    assert_send(&out);
    let handle = std::thread::spawn(move || neutralise(&tracked_message(), &policy).into_owned());
    assert!(handle.join().expect("thread").changed);
}
