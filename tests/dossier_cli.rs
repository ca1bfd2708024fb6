//! `trackless report dossier` as a user runs it: a log filled by `trackless filter
//! --keep-headers` over the corpus, a dossier per sender in French and English (page, JSON,
//! header blocks; owner-only files; the same log gives the same bytes), the errors (a sender
//! the log does not know, a language we do not write), and the page loaded in headless
//! Chromium when one is installed.
//!
//! The dossiers of a few corpus senders are kept as reviewed golden files in
//! tests/golden/dossier/corpus/: the page and evidence.json in both languages, and the text of
//! the page printed by headless Chromium (where Chromium and pdftotext are installed). After a
//! deliberate change: TRACKLESS_BLESS=1 cargo test --test dossier_cli, then review the diff of
//! tests/golden/dossier/corpus/.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn trackless() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trackless"));
    c.env("TRACKLESS_CONFIG", "/dev/null");
    c
}

/// The log filled once for all tests, and when it was filled.
struct Log {
    /// The state folder (`XDG_STATE_HOME`).
    dir: PathBuf,
    /// Unix seconds before the first message was filtered and after the last one: the clock
    /// values the log recorded as each message's processing time lie in between.
    filled: (i64, i64),
}

/// The state folder of a log filled once for all tests: `trackless --keep-headers filter` per
/// corpus message at the default location, its spool imported by a first report (so that the
/// tests, which run in parallel, only read).
fn state() -> &'static Path {
    &log().dir
}

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let start = trackless::log::time::now();
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
        let end = trackless::log::time::now();
        let out = trackless()
            .args(["report", "--format", "json"])
            .env("XDG_STATE_HOME", &dir)
            .output()
            .expect("report");
        assert!(out.status.success());
        Log {
            dir,
            filled: (start, end),
        }
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
    let Some(chromium) = common::chromium() else {
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
    let has_chromium = common::chromium().is_some();
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

/// The corpus senders whose dossiers are kept as golden files: SendGrid, with the sender's own
/// image host (sendgrid-newsletter); Klaviyo over SendGrid, two providers, with an Amazon
/// CloudFront image host (klaviyo-over-sendgrid); Selligent, a Belgian company with a US
/// parent, and a host of no known operator (selligent-promo-cp1252).
const GOLDEN_SENDERS: [&str; 3] = [
    "northwind.example",
    "glowco.example",
    "news.maison-dupont.example",
];

/// What a time that depends on when the test ran is replaced with.
const FILTERED_AT: &str = "[time of filtering]";

/// `text` with every value that depends on when the test filled the log replaced by
/// [`FILTERED_AT`]. Only one value of a dossier comes from the clock (src/log/dossier.rs,
/// src/dossier/assemble.rs): when trackless processed a message (the log's `ts`), which dates
/// the message, and so the period, when its Date header is missing or unreadable, written
/// `YYYY-MM-DD HH:MM UTC`. The dossier has no generation time and does not write the
/// processing time otherwise. So every minute the filling of the log lasted is replaced, in
/// that form. Every corpus message has a Date header, so today nothing is replaced; should a
/// golden sender get a message without one, the golden files would still not depend on the
/// day they were made.
fn mask_filtering_times(text: &str) -> String {
    let (start, end) = log().filled;
    let mut out = text.to_string();
    let mut minute = start - start.rem_euclid(60);
    while minute <= end {
        out = out.replace(&trackless::log::time::datetime(minute), FILTERED_AT);
        minute += 60;
    }
    out
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/dossier/corpus")
        .join(name)
}

/// With TRACKLESS_BLESS set, write `content` as the golden file `name` and say so.
fn blessed(name: &str, content: &str) -> bool {
    if std::env::var_os("TRACKLESS_BLESS").is_none() {
        return false;
    }
    let path = golden_path(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("golden folder");
    std::fs::write(&path, content).expect("bless");
    eprintln!("wrote {}", path.display());
    true
}

fn read_golden(name: &str) -> String {
    let path = golden_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (TRACKLESS_BLESS=1 cargo test --test dossier_cli writes it)",
            path.display()
        )
    })
}

/// Keep what a test produced beside the golden file it differs from, for `diff`.
fn save_actual(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "trackless-test-{}-golden-actual",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("folder");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

/// Up to 100 characters of `s` around byte `at`, for a failure message.
fn around(s: &str, at: usize) -> String {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let i = chars
        .iter()
        .position(|&(b, _)| b >= at)
        .unwrap_or(chars.len());
    chars[i.saturating_sub(50)..(i + 50).min(chars.len())]
        .iter()
        .map(|&(_, c)| c)
        .collect()
}

/// The line of `s` that holds byte `at`, cut to 100 characters around it.
fn line_around(s: &str, at: usize) -> String {
    let start = s[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = s[at..].find('\n').map_or(s.len(), |i| at + i);
    around(&s[start..end], at - start)
}

/// The byte where `a` and `b` first differ.
fn first_difference(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i)
}

const BLESS: &str = "after a deliberate change: TRACKLESS_BLESS=1 cargo test --test dossier_cli, \
                     then review the diff of tests/golden/dossier/corpus/";

/// Compare `actual` with the golden file `name`, byte for byte (TRACKLESS_BLESS: rewrite it).
fn golden(name: &str, actual: &str) {
    if blessed(name, actual) {
        return;
    }
    let expected = read_golden(name);
    if expected != actual {
        let at = first_difference(&expected, actual);
        let line = expected[..at].matches('\n').count() + 1;
        panic!(
            "{name} differs from the golden file at line {line}:\n  golden: {}\n  actual: {}\n\
             (actual file: {}; {BLESS})",
            line_around(&expected, at),
            line_around(actual, at),
            save_actual(name, actual).display()
        );
    }
}

#[test]
fn golden_dossiers_of_corpus_senders_in_both_languages() {
    let root = common::scratch("dossier-golden");
    for who in GOLDEN_SENDERS {
        for lang in ["en", "fr"] {
            let dir = root.join(format!("{who}.{lang}"));
            make(who, lang, &dir);
            let page = mask_filtering_times(&read(&dir.join("dossier.html")));
            golden(&format!("{who}.{lang}.html"), &page);
            // The same data in both languages: one golden file for both.
            let json = mask_filtering_times(&read(&dir.join("evidence.json")));
            golden(&format!("{who}.evidence.json"), &json);
        }
    }
    // The mask finds a processing time as the log has it, and nothing else.
    let (start, end) = log().filled;
    for t in [start, end] {
        let at = trackless::log::time::datetime(t);
        assert_eq!(
            mask_filtering_times(&format!("<dd>{at}</dd> \"{at}\"")),
            format!("<dd>{FILTERED_AT}</dd> \"{FILTERED_AT}\"")
        );
    }
    let other = trackless::log::time::datetime(start - 86_400);
    assert_eq!(mask_filtering_times(&other), other);
}

/// The text of a PDF in the order it was drawn (`pdftotext -raw`: Chromium draws a page in the
/// order of the document, table cells row by row), normalised: each line's runs of white space
/// (no-break spaces too) as one space, trimmed; no empty lines, no page breaks.
fn printed_text(pdf: &Path) -> String {
    let o = Command::new("pdftotext")
        .args(["-raw", "-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext");
    assert!(
        o.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .expect("utf-8 text")
        .split(['\n', '\x0c'])
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .map(|l| l + "\n")
        .collect()
}

/// The fonts a PDF embeds (`pdffonts`), without their subset prefix, sorted, once each.
fn printed_fonts(pdf: &Path) -> Vec<String> {
    let o = Command::new("pdffonts")
        .arg(pdf)
        .output()
        .expect("pdffonts");
    assert!(
        o.status.success(),
        "pdffonts: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut fonts: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .map(|f| f.split_once('+').map_or(f, |(_, name)| name).to_string())
        .collect();
    fonts.sort();
    fonts.dedup();
    fonts
}

/// Without white space: how lines and pages break depends on the fonts, the text does not.
fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Compare printed text with the golden file `name`: its first line names the fonts it was
/// printed with (`fonts: A, B`), the rest is the text. The text is compared without white space.
/// Printed with other fonts, page breaks fall elsewhere (and repeat table headers elsewhere):
/// then it is only said, and the caller's checks of the key words are what is tested.
fn golden_text(name: &str, fonts: &[String], text: &str) {
    let fonts = format!("fonts: {}", fonts.join(", "));
    if blessed(name, &format!("{fonts}\n{text}")) {
        return;
    }
    let expected = read_golden(name);
    let (golden_fonts, golden_text) = expected.split_once('\n').unwrap_or((&expected, ""));
    if golden_fonts != fonts {
        eprintln!(
            "{name}: printed with {fonts}, the golden text with {golden_fonts}: only its key words \
             are checked"
        );
        return;
    }
    let (want, got) = (squeeze(golden_text), squeeze(text));
    if want != got {
        let at = first_difference(&want, &got);
        panic!(
            "{name}: the printed text differs from the golden text (white space left out):\n  \
             golden: …{}…\n  actual: …{}…\n(actual file: {}; {BLESS})",
            around(&want, at),
            around(&got, at),
            save_actual(name, &format!("{fonts}\n{text}")).display()
        );
    }
}

/// Each golden dossier printed to PDF by `report dossier --pdf` (headless Chromium, with the
/// product's own network-safe switches) and read back with pdftotext: the text is the golden
/// text in both languages, the accents and key words (sender, providers, their legal entities
/// and parents, the United States, every marked token) are there, and the marks are printed (in bold: a
/// bold monospace font is embedded, which nothing else of the page uses). Skipped, saying so,
/// without Chromium or without pdftotext and pdffonts (poppler-utils).
#[test]
fn golden_dossiers_print_to_the_golden_text() {
    if common::chromium().is_none() {
        eprintln!("no headless Chromium: skipped");
        return;
    }
    if common::installed(&["pdftotext"], "-v").is_none()
        || common::installed(&["pdffonts"], "-v").is_none()
    {
        eprintln!("no pdftotext or pdffonts (poppler-utils): skipped");
        return;
    }
    let root = common::scratch("dossier-golden-text");
    for who in GOLDEN_SENDERS {
        for (lang, words) in [
            ("en", &["Tracking dossier", "Summary", "United States"][..]),
            (
                "fr",
                &[
                    "Dossier de traçage",
                    "Synthèse",
                    "Expéditeur",
                    "Période",
                    "États-Unis",
                ][..],
            ),
        ] {
            let dir = root.join(format!("{who}.{lang}"));
            let o = dossier(&[
                who,
                "--lang",
                lang,
                "--pdf",
                "--out",
                dir.to_str().expect("utf-8 path"),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let pdf = dir.join("dossier.pdf");
            let text = printed_text(&pdf);
            let fonts = printed_fonts(&pdf);

            let flat = squeeze(&text);
            let json: serde_json::Value =
                serde_json::from_str(&read(&dir.join("evidence.json"))).expect("json");
            let mut needles: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            needles.push(who.to_string());
            for e in json["esps"].as_array().expect("esps") {
                needles.push(e["name"].as_str().expect("name").to_string());
                for fact in ["legal_entity", "parent"] {
                    if let Some(v) = e[fact].as_str() {
                        needles.push(v.to_string());
                    }
                }
            }
            let mut tokens = 0;
            for m in json["messages"].as_array().expect("messages") {
                for t in m["trackers"].as_array().expect("trackers") {
                    if let Some(range) = t["token"].as_array() {
                        let url = t["url"].as_str().expect("url");
                        let s = range[0].as_u64().expect("start") as usize;
                        let e = range[1].as_u64().expect("end") as usize;
                        needles.push(url[s..e].to_string());
                        tokens += 1;
                    }
                }
            }
            assert!(tokens > 0, "{who}: no marked token");
            for n in &needles {
                assert!(
                    flat.contains(&squeeze(n)),
                    "{who} {lang}: {n:?} is not in the printed text:\n{text}"
                );
            }
            assert!(
                !text.contains('\u{fffd}') && !text.contains('Ã'),
                "{who} {lang}: characters lost or mangled in print:\n{text}"
            );
            assert!(
                fonts.iter().any(|f| f.contains("Bold")
                    && ["Mono", "Courier", "Consol", "Menlo"]
                        .iter()
                        .any(|m| f.contains(m))),
                "{who} {lang}: the marked tokens are not printed in bold ({fonts:?})"
            );
            golden_text(
                &format!("{who}.{lang}.txt"),
                &fonts,
                &mask_filtering_times(&text),
            );
        }
    }
}
