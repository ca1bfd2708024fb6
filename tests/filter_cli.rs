//! `trackless filter` and `trackless inspect` as a mail delivery agent would run them.

mod common;

use common::cli::{feed, trackless};
use common::*;

fn run_filter(args: &[&str], input: &[u8]) -> std::process::Output {
    // Keep the tracking log these runs write out of the real home directory.
    let state = std::env::temp_dir().join(format!("trackless-filter-cli-{}", std::process::id()));
    feed(
        trackless()
            .env("XDG_STATE_HOME", &state)
            .arg("filter")
            .args(args),
        input,
    )
}

fn tracked() -> Vec<u8> {
    let html = "<html><head><link rel=\"stylesheet\" href=\"https://fonts.googleapis.com/css?family=Lato\"></head><body><p>Hi</p><img src=\"https://email.shop.example/o/eJwNyTEOgCAMAMC3sDJQ\" width=\"1\" height=\"1\"></body></html>";
    message(
        &std_headers(),
        &leaf("text/html; charset=utf-8", "quoted-printable", html, "\r\n"),
        "\r\n",
    )
}

#[test]
fn filter_rewrites_stdin_to_stdout() {
    let out = run_filter(&[], &tracked());
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("X-Trackless: pixels=1; fonts=1\r\n"));
    assert!(!text.contains("/o/eJ"));
    assert!(!text.contains("fonts.googleapis.com"));
}

#[test]
fn filter_passes_clean_mail_through_byte_for_byte() {
    let html = "<html><body><p>Hello</p><img src=\"https://cdn.shop.example/logo.png\" width=\"200\" height=\"50\"></body></html>";
    let raw = message(
        &std_headers(),
        &leaf("text/html; charset=utf-8", "base64", html, "\r\n"),
        "\r\n",
    );
    let out = run_filter(&[], &raw);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, raw);
}

#[test]
fn filter_passes_non_mail_through_with_a_warning() {
    let junk = b"\x00\x01 not a message \xff".to_vec();
    let out = run_filter(&[], &junk);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, junk);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trackless filter: passed through unchanged: not-mail"),
        "{err}"
    );
    // A message is not warned about.
    let ok = run_filter(&[], &tracked());
    assert!(
        ok.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn filter_with_broken_rules_file_still_delivers() {
    let dir = scratch("rules");
    let rules = dir.join("bad.toml");
    std::fs::write(&rules, "[[open]]\nid = 'x'\npath = '/(unclosed'\n").expect("write");
    let raw = tracked();
    let out = run_filter(&["--rules", rules.to_str().expect("path")], &raw);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, raw);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("passed through unchanged"),
        "{err}"
    );
}

#[test]
fn filter_user_rules_add_a_tracker() {
    let dir = scratch("rules2");
    let rules = dir.join("local.toml");
    std::fs::write(
        &rules,
        "[[open]]\nid = 'local.beacon'\nvendor = 'Local'\nhosts = ['beacon.example']\nbeacon = 'any'\n",
    )
    .expect("write");
    // Without `beacon = 'any'` a host-only rule removes only images nobody sees or whose URL
    // carries a recipient token: this visible, static one stays.
    let visible_ok = dir.join("host-only.toml");
    std::fs::write(
        &visible_ok,
        "[[open]]\nid = 'local.beacon'\nvendor = 'Local'\nhosts = ['beacon.example']\n",
    )
    .expect("write");
    let html = "<html><body><img src=\"https://x.beacon.example/logo.png\" width=\"300\" height=\"100\"></body></html>";
    let raw = message(
        &std_headers(),
        &leaf("text/html", "7bit", html, "\r\n"),
        "\r\n",
    );
    let out = run_filter(&["--rules", rules.to_str().expect("path")], &raw);
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(!text.contains("beacon.example"), "{text}");
    let kept = run_filter(&["--rules", visible_ok.to_str().expect("path")], &raw);
    let kept = String::from_utf8(kept.stdout).expect("utf8");
    assert!(kept.contains("x.beacon.example/logo.png"), "{kept}");
    let plain = run_filter(&[], &raw);
    assert_eq!(plain.stdout, raw);
}

#[test]
fn filter_unreadable_input_fails_clearly() {
    // A directory as stdin: read() fails with EISDIR.
    let dir = std::fs::File::open(std::env::temp_dir()).expect("open dir");
    let out = trackless()
        .args(["--no-log", "filter"])
        .stdin(dir)
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn inspect_text_and_json() {
    let dir = scratch("inspect");
    let f = dir.join("m.eml");
    std::fs::write(&f, tracked()).expect("write");
    let out = trackless().arg("inspect").arg(&f).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("rule=mailgun.open"), "{text}");
    assert!(
        text.contains("https://fonts.googleapis.com/css?family=Lato"),
        "{text}"
    );

    let out = trackless()
        .args(["inspect", "--json"])
        .arg(&f)
        .arg(&f)
        .output()
        .expect("run");
    let text = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(v["changed"], true);
    assert_eq!(v["counts"]["pixels"], 1);
    assert_eq!(v["findings"][1]["vendor"], "Mailgun");

    let out = trackless()
        .arg("inspect")
        .arg(dir.join("missing.eml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn filter_accepts_a_clearurls_catalog() {
    let dir = scratch("clearurls");
    let catalog = dir.join("data.min.json");
    std::fs::write(
        &catalog,
        r#"{"providers":{"shop":{"urlPattern":"^https?:\\/\\/(?:[a-z0-9-]+\\.)*?shop\\.example","completeProvider":false,
            "rules":["campaign_ref"],"redirections":["^https?:\\/\\/go\\.shop\\.example\\/out\\?to=(https?[^&]*)"]}}}"#,
    )
    .expect("write");
    let html = "<html><body><a href=\"https://go.shop.example/out?to=https%3A%2F%2Fpartner.example%2Fdeal&amp;x=1\">Deal</a> \
                <a href=\"https://www.shop.example/p?id=3&amp;campaign_ref=nov\">P</a></body></html>";
    let raw = message(
        &std_headers(),
        &leaf("text/html", "7bit", html, "\r\n"),
        "\r\n",
    );
    let out = run_filter(&["--rules", catalog.to_str().expect("path")], &raw);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.contains("href=\"https://partner.example/deal\""),
        "{text}"
    );
    assert!(
        text.contains("href=\"https://www.shop.example/p?id=3\""),
        "{text}"
    );
    // Without the catalog both links stay.
    assert_eq!(run_filter(&[], &raw).stdout, raw);
}
