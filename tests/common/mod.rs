//! Helpers shared by the integration tests: building MIME messages the way mailers do.
#![allow(dead_code)]

pub mod cli;
pub mod invariants;
pub mod mailbox;
pub mod milter;
pub mod newsletter;
pub mod smtp;

use base64::Engine;
use std::path::{Path, PathBuf};

/// A fresh, empty directory for one test (under the temp dir, named after the test binary's
/// process and `name`).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trackless-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The sample corpus's messages (`corpus/*.eml`), sorted by name.
pub fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

/// One corpus message by file name (`NAME.eml`).
pub fn corpus_message(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `raw` (read as UTF-8, invalid bytes replaced) with every line ending in CRLF, as SMTP and
/// the milter protocol carry messages.
pub fn crlf(raw: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(raw)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// `raw` (read as UTF-8, invalid bytes replaced) with every line ending in LF, as mailboxes on
/// disk hold messages.
pub fn lf(raw: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(raw)
        .replace("\r\n", "\n")
        .into_bytes()
}

/// One corpus message by file name, with CRLF line endings.
pub fn corpus_crlf(name: &str) -> Vec<u8> {
    crlf(&corpus_message(name))
}

/// Every corpus message as it is on disk, sorted by file name.
pub fn corpus_messages() -> Vec<Vec<u8>> {
    corpus_files()
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

/// Every corpus message (sorted by file name) with LF line endings.
pub fn corpus_lf() -> Vec<Vec<u8>> {
    corpus_messages().iter().map(|m| lf(m)).collect()
}

/// Encode as quoted-printable independently of the crate's own encoder (so tests do not
/// check the encoder against itself): 76-column lines, `nl` line breaks.
pub fn qp(content: &str, nl: &str) -> String {
    let mut out = String::new();
    for (n, line) in content.split('\n').enumerate() {
        if n > 0 {
            out.push_str(nl);
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut col = 0;
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let enc = if b == b'='
                || b >= 0x7f
                || (b < 0x20 && b != b'\t')
                || ((b == b' ' || b == b'\t') && last)
            {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if col + enc.len() > 75 {
                out.push('=');
                out.push_str(nl);
                col = 0;
            }
            col += enc.len();
            out.push_str(&enc);
        }
    }
    out
}

pub fn b64(content: &[u8], nl: &str) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(content);
    s.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(nl)
}

/// A leaf part: headers and encoded body, without the boundary lines.
pub fn leaf(ctype: &str, cte: &str, body: &str, nl: &str) -> String {
    let encoded = match cte {
        "quoted-printable" => qp(body, nl),
        "base64" => b64(body.as_bytes(), nl),
        _ => body.replace("\r\n", "\n").replace('\n', nl),
    };
    format!("Content-Type: {ctype}{nl}Content-Transfer-Encoding: {cte}{nl}{nl}{encoded}")
}

pub fn multipart(subtype: &str, boundary: &str, parts: &[String], nl: &str) -> String {
    let mut s = format!("Content-Type: multipart/{subtype}; boundary=\"{boundary}\"{nl}{nl}");
    s.push_str(&format!("This is a multi-part message in MIME format.{nl}"));
    for p in parts {
        s.push_str(&format!("--{boundary}{nl}{p}{nl}"));
    }
    s.push_str(&format!("--{boundary}--{nl}"));
    s
}

pub fn message(headers: &[(&str, &str)], body_entity: &str, nl: &str) -> Vec<u8> {
    let mut s = String::new();
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}{nl}"));
    }
    s.push_str(&format!("MIME-Version: 1.0{nl}"));
    s.push_str(body_entity);
    s.into_bytes()
}

pub fn std_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Return-Path", "<bounce@shop.example>"),
        (
            "Received",
            "from mail.shop.example (mail.shop.example [192.0.2.10]) by mx.example.net",
        ),
        ("From", "Shop <news@shop.example>"),
        ("To", "reader@example.net"),
        ("Subject", "Autumn sale"),
        ("Date", "Mon, 02 Nov 2026 10:00:00 +0000"),
        ("Message-ID", "<20261102100000.abc@shop.example>"),
    ]
}

/// The decoded text of every text part of a message, joined (for "is the tracker gone" checks).
pub fn all_text(raw: &[u8]) -> String {
    let msg = mail_parser::MessageParser::new()
        .parse(raw)
        .expect("parses");
    let mut out = String::new();
    collect_text(&msg, &mut out);
    out
}

fn collect_text(msg: &mail_parser::Message<'_>, out: &mut String) {
    for p in &msg.parts {
        match &p.body {
            mail_parser::PartType::Text(t) | mail_parser::PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            mail_parser::PartType::Message(m) => collect_text(m, out),
            _ => {}
        }
    }
}

/// Everything outside the rewritable spans (headers, boundaries, attachments, preamble,
/// epilogue) must be byte-identical.
pub fn assert_only_rewrites_differ(
    name: &str,
    raw: &[u8],
    out: &[u8],
    _findings: &[trackless::Finding],
) {
    if let Err(e) = invariants::only_rewrites_differ(raw, out) {
        panic!("{name}: {e}");
    }
}

pub mod fake_mta;

/// The first of `names` that runs with `arg` (a version flag) and succeeds: an installed tool.
pub fn installed(names: &[&'static str], arg: &str) -> Option<&'static str> {
    names.iter().copied().find(|c| {
        std::process::Command::new(c)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A headless Chromium on PATH, under any of the names Debian and others give it.
pub fn chromium() -> Option<&'static str> {
    installed(
        &["chromium", "chromium-browser", "google-chrome"],
        "--version",
    )
}
