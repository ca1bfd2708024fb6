//! `trackless report dossier` as a user runs it: a log filled by `trackless filter
//! --keep-headers` over the corpus, a dossier per sender in French and English (page, JSON,
//! header blocks; owner-only files; the same log gives the same bytes), the errors (a sender
//! the log does not know, a language we do not write), and the page loaded in headless
//! Chromium when one is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn trackless() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trackless"));
    c.env("TRACKLESS_CONFIG", "/dev/null");
    c
}

/// The state folder of a log filled once for all tests: `trackless --keep-headers filter` per
/// corpus message at the default location, its spool imported by a first report (so that the
/// tests, which run in parallel, only read).
fn state() -> &'static Path {
    static STATE: OnceLock<PathBuf> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = common::scratch("dossier-log");
        for f in common::corpus_files() {
            let out = trackless()
                .args(["--keep-headers", "filter"])
                .env("XDG_STATE_HOME", &dir)
                .stdin(std::fs::File::open(&f).expect("open"))
                .stdout(Stdio::null())
                .output()
                .expect("filter");
            assert!(out.status.success(), "{}", f.display());
        }
        let out = trackless()
            .args(["report", "--format", "json"])
            .env("XDG_STATE_HOME", &dir)
            .output()
            .expect("report");
        assert!(out.status.success());
        dir
    })
}

fn dossier(args: &[&str]) -> Output {
    trackless()
        .args(["report", "dossier"])
        .args(args)
        .env("XDG_STATE_HOME", state())
        .output()
        .expect("report dossier")
}

/// Run `report dossier WHO --lang LANG --out DIR`, expecting success.
fn make(who: &str, lang: &str, out: &Path) -> String {
    let o = dossier(&[
        who,
        "--lang",
        lang,
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(
        o.status.success(),
        "{who} {lang}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf8")
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir`, by relative path, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("rel").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_dossier_in_french_and_in_english_from_the_corpus() {
    let root = common::scratch("dossier-langs");
    for (lang, summary) in [("fr", "Synthèse"), ("en", "Summary")] {
        let dir = root.join(lang);
        let said = make("northwind.example", lang, &dir);
        assert!(
            said.contains("dossier for northwind.example: 1 message(s)"),
            "{said}"
        );
        let page_path = dir.join("dossier.html");
        let json_path = dir.join("evidence.json");
        let header_path = dir.join("headers/1.txt");
        for p in [&page_path, &json_path, &header_path] {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        assert_eq!(mode(&dir), 0o700);
        let page = read(&page_path);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains(&format!("<html lang=\"{lang}\">")), "{lang}");
        assert!(page.contains(summary), "{lang}");
        for needle in [
            "northwind.example",
            "SendGrid",
            "Twilio",
            "u13167954.ct.sendgrid.net",
            "<mark>u001.",
            "sendgrid.click",
            "RC0i6RoK8TDqkaIYGzJ1Bw@geopod-ismtpd-14",
            "dkim: DKIM d=sendgrid.info",
            "cdn.northwind.example",
        ] {
            assert!(page.contains(needle), "{lang}: {needle} missing");
        }
        // Nothing remote: the page loads nothing and links only to the legal texts.
        assert!(!page.contains("src=\"http"), "{lang}");
        assert!(page.contains("default-src 'none'"));

        let json: serde_json::Value = serde_json::from_str(&read(&json_path)).expect("json");
        assert_eq!(json["sender"]["domain"], "northwind.example");
        assert_eq!(json["esps"][0]["name"], "SendGrid");
        assert_eq!(json["esps"][0]["legal_entity"], "Twilio Inc.");
        let m = &json["messages"][0];
        let hosts: Vec<&str> = m["remote"]
            .as_array()
            .expect("remote")
            .iter()
            .map(|r| r["host"].as_str().expect("host"))
            .collect();
        assert!(hosts.contains(&"cdn.northwind.example"), "{hosts:?}");
        let sendgrid = m["remote"]
            .as_array()
            .expect("remote")
            .iter()
            .find(|r| r["host"] == "u13167954.ct.sendgrid.net")
            .expect("the pixel's host");
        assert_eq!(sendgrid["operator"], "SendGrid");
        assert_eq!(sendgrid["country"], "US");
        // The token range points into the URL, at the marked value.
        let t = &m["trackers"][0];
        let url = t["url"].as_str().expect("url");
        let (s, e) = (
            t["token"][0].as_u64().expect("start") as usize,
            t["token"][1].as_u64().expect("end") as usize,
        );
        assert!(url[s..e].starts_with("u001."), "{url}");
        assert!(page.contains(&format!("<mark>{}</mark>", &url[s..e])));
        let headers = read(&header_path);
        assert!(headers.contains("Message-ID: <RC0i6RoK8TDqkaIYGzJ1Bw@geopod-ismtpd-14>"));
    }
    // The same data in both languages.
    assert_eq!(
        read(&root.join("fr/evidence.json")),
        read(&root.join("en/evidence.json"))
    );
}

#[test]
fn remote_hosts_are_named_by_their_operator() {
    let root = common::scratch("dossier-operators");
    for (who, operator) in [
        ("glowco.example", "Amazon Web Services"),
        ("beanbarrel.example", "Google Fonts"),
    ] {
        let dir = root.join(who);
        make(who, "en", &dir);
        let page = read(&dir.join("dossier.html"));
        assert!(page.contains(operator), "{who}: {operator} missing");
        assert!(page.contains("United States (US)"), "{who}");
    }
}

#[test]
fn the_same_log_gives_the_same_bytes() {
    let root = common::scratch("dossier-twice");
    let (a, b) = (root.join("a"), root.join("b"));
    make("hello@northwind.example", "fr", &a);
    make("hello@northwind.example", "fr", &b);
    let first = files(&a);
    assert_eq!(
        first.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["dossier.html", "evidence.json", "headers/1.txt"]
    );
    assert_eq!(first, files(&b));
    // Again into the same folder: the same files, nothing left over.
    make("hello@northwind.example", "fr", &a);
    assert_eq!(first, files(&a));
    let page = String::from_utf8(first[0].1.clone()).expect("utf8");
    assert!(page.contains("hello@northwind.example"));
    assert!(!page.contains(&today()), "a generation time in the page");
}

/// `YYYY-MM-DD` of today (UTC): the page must not carry the day it was made.
fn today() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    trackless::log::time::date(now)
}

#[test]
fn an_unknown_sender_and_an_unknown_language_are_refused() {
    let root = common::scratch("dossier-refused");
    let dir = root.join("out");
    let o = dossier(&["nobody.example", "--out", dir.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no message from nobody.example in the log"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing written for an unknown sender");

    let o = dossier(&[
        "northwind.example",
        "--lang",
        "de",
        "--out",
        dir.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("de") && err.contains("en or fr"), "{err}");
    assert!(!dir.exists());

    // --out is required.
    let o = dossier(&["northwind.example"]);
    assert_eq!(o.status.code(), Some(2));
}

/// The page as a browser loads it: headless Chromium's DOM holds the sender, the ESP and the
/// marked token. Skipped when no Chromium is installed.
#[test]
fn the_page_loads_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("no headless Chromium: skipped");
        return;
    };
    let root = common::scratch("dossier-chromium");
    let dir = root.join("out");
    make("northwind.example", "fr", &dir);
    let o = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            root.join("profile").display()
        ))
        .arg(format!("file://{}", dir.join("dossier.html").display()))
        .stderr(Stdio::null())
        .output()
        .expect("chromium");
    assert!(o.status.success());
    let dom = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "Dossier de traçage",
        "northwind.example",
        "SendGrid",
        "Twilio Inc.",
        "<mark>u001.",
    ] {
        assert!(dom.contains(needle), "{needle} not in the DOM");
    }
}

#[test]
fn pdf_is_printed_by_chromium_or_refused_clearly() {
    let root = common::scratch("dossier-pdf");
    // Without a browser: a clear error, the HTML written all the same.
    let dir = root.join("none");
    let o = trackless()
        .args(["report", "dossier", "northwind.example", "--pdf", "--out"])
        .arg(&dir)
        .env("XDG_STATE_HOME", state())
        .env("TRACKLESS_CHROMIUM", root.join("no-such-browser"))
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("dossier.html was written"), "{err}");
    assert!(dir.join("dossier.html").exists());
    assert!(!dir.join("dossier.pdf").exists());
    let has_chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .any(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !has_chromium {
        eprintln!("no headless Chromium: the PDF itself is not checked");
        return;
    }
    let dir = root.join("pdf");
    let o = dossier(&[
        "northwind.example",
        "--lang",
        "fr",
        "--pdf",
        "--out",
        dir.to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pdf = std::fs::read(dir.join("dossier.pdf")).expect("dossier.pdf");
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    assert!(pdf.len() > 10_000, "{} bytes", pdf.len());
    assert_eq!(mode(&dir.join("dossier.pdf")), 0o600);
}
