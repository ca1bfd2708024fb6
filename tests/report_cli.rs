//! `trackless report` as a user runs it: the log filled by `trackless filter` over the corpus,
//! the table, JSON and CSV (golden files), evidence, the HTML page (rendered in headless
//! Chromium), and `log prune`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn trackless() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trackless"));
    c.env("TRACKLESS_CONFIG", "/dev/null");
    c
}

fn corpus() -> Vec<PathBuf> {
    common::corpus_files()
}

/// Fill a log the way a user does: `trackless filter` per message, default log location.
fn filled_log(name: &str) -> (PathBuf, PathBuf) {
    let dir = common::scratch(name);
    for f in corpus() {
        let out = trackless()
            .arg("filter")
            .env("XDG_STATE_HOME", &dir)
            .stdin(std::fs::File::open(&f).expect("open"))
            .stdout(Stdio::null())
            .output()
            .expect("filter");
        assert!(out.status.success());
    }
    // The filter spools its records beside the default log; the first report imports them.
    let log = dir.join("trackless/log.sqlite");
    assert!(
        trackless::log::spool::path(&log).exists(),
        "filter spooled nothing beside the default log"
    );
    (dir, log)
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = trackless()
        .args(args)
        .env("XDG_STATE_HOME", dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn filter_logs_by_default_and_not_with_no_log() {
    let dir = common::scratch("nolog");
    let f = &corpus()[0];
    let out = trackless()
        .args(["--no-log", "filter"])
        .env("XDG_STATE_HOME", &dir)
        .stdin(std::fs::File::open(f).expect("open"))
        .output()
        .expect("filter");
    assert!(out.status.success());
    assert!(!dir.join("trackless/log.sqlite").exists());
    // inspect writes only with --log
    let out = trackless()
        .arg("inspect")
        .arg(f)
        .env("XDG_STATE_HOME", &dir)
        .output()
        .expect("inspect");
    assert!(out.status.success());
    assert!(!dir.join("trackless/log.sqlite").exists());
}

#[test]
fn report_table_json_csv_on_the_corpus() {
    let (dir, _log) = filled_log("formats");
    let table = run(&dir, &["report"]);
    for line in table.lines() {
        assert!(line.chars().count() <= 100, "line over 100 columns: {line}");
    }
    // Most-tracking first; the Klaviyo-over-SendGrid sender shows both layers.
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("100%")),
        "{table}"
    );
    let glow = table
        .lines()
        .find(|l| l.starts_with("glowco.example"))
        .expect("glowco row");
    assert!(
        glow.contains("Klaviyo/SendGrid") && glow.contains("US"),
        "{glow}"
    );
    assert!(table.contains("50 message(s), 42 tracked"), "{table}");

    let json: serde_json::Value =
        serde_json::from_str(&run(&dir, &["report", "--format", "json", "--by", "esp"]))
            .expect("json");
    let rows = json.as_array().expect("array");
    let sendgrid = rows
        .iter()
        .find(|r| r["key"] == "SendGrid")
        .expect("SendGrid row");
    assert_eq!(sendgrid["messages"], 4);
    assert_eq!(sendgrid["us_exposure"], true);
    let brevo_forged = rows
        .iter()
        .find(|r| r["key"] == "Brevo?")
        .expect("low-confidence row is marked");
    assert_eq!(brevo_forged["us_exposure"], false);

    let csv = run(
        &dir,
        &["report", "--format", "csv", "--sender", "glowco.example"],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("key,messages,tracked,tracked_share,"));
    assert!(
        lines[1].starts_with("glowco.example,1,1,1.0000,1,0,0,0,10,Klaviyo/SendGrid,US,true,1,"),
        "{}",
        lines[1]
    );

    // --since in the future: nothing; --until in the past: nothing.
    let none = run(
        &dir,
        &["report", "--since", "2099-01-01", "--format", "json"],
    );
    assert_eq!(none.trim(), "[]");
    let none = run(
        &dir,
        &["report", "--until", "2000-01-01", "--format", "json"],
    );
    assert_eq!(none.trim(), "[]");
    // Reports go by the message's own date (glowco's is 2026-06-05).
    let june = run(
        &dir,
        &[
            "report",
            "--since",
            "2026-06-01",
            "--until",
            "2026-07-01",
            "--format",
            "json",
        ],
    );
    assert!(june.contains("glowco.example"), "{june}");
    let july = run(
        &dir,
        &[
            "report",
            "--since",
            "2026-07-01",
            "--until",
            "2026-08-01",
            "--format",
            "json",
        ],
    );
    assert!(!july.contains("glowco.example"), "{july}");
    // …and July is not simply empty: its own messages are there, and only those.
    let july: serde_json::Value = serde_json::from_str(&july).expect("json");
    let rows = july.as_array().expect("array");
    assert!(!rows.is_empty(), "{july}");
    for r in rows {
        let (first, last) = (
            r["first_seen"].as_str().expect("first_seen"),
            r["last_seen"].as_str().expect("last_seen"),
        );
        assert!(
            first.starts_with("2026-07") && last.starts_with("2026-07"),
            "{r}"
        );
    }
}

#[test]
fn evidence_for_a_sender_has_headers_trackers_and_rules() {
    let (dir, _log) = filled_log("evidence");
    let text = run(&dir, &["report", "evidence", "hello@glowco.example"]);
    assert!(text.contains("Tracking evidence for hello@glowco.example"));
    assert!(
        text.contains("Provider:        SendGrid (carrier, high confidence; jurisdiction US"),
        "{text}"
    );
    assert!(
        text.contains(
            "evidence: received-by-us: Received: from xtrwkrhh.outbound-mail.sendgrid.net"
        ),
        "{text}"
    );
    assert!(
        text.contains("evidence: header: X-Kmail-Account: Kcmewt"),
        "{text}"
    );
    assert!(
        text.contains("pixel removed on trk.klclick3.com (rule klaviyo.open-sendgrid, Klaviyo)"),
        "{text}"
    );
    assert!(
        text.contains("https://trk.klclick3.com/wf/open?upn="),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(
        &dir,
        &["report", "evidence", "glowco.example", "--format", "json"],
    ))
    .expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    assert_eq!(json[0]["esp"][0]["name"], "Klaviyo");

    // CSV: a header line, then one row per provider evidence line and per tracker, the same
    // items as the JSON, in the same order.
    let csv = run(
        &dir,
        &["report", "evidence", "glowco.example", "--format", "csv"],
    );
    assert!(
        !csv.contains("Tracking evidence for"),
        "text, not CSV: {csv}"
    );
    let records = parse_csv(&csv);
    let header = &records[0];
    assert_eq!(
        header.join(","),
        "message,processed,date,from,envelope_sender,message_id,message_id_sha256,subject,mode,item,provider,layer,confidence,jurisdiction,us_exposure,evidence,kind,action,host,vendor,rule,url"
    );
    let col = |r: &Vec<String>, name: &str| -> String {
        r[header.iter().position(|h| h == name).expect(name)].clone()
    };
    let rows = &records[1..];
    for r in rows {
        assert_eq!(r.len(), header.len(), "{r:?}");
        assert_eq!(col(r, "message"), "1");
        assert_eq!(col(r, "from"), "hello@glowco.example");
    }
    let mut want: Vec<(String, String, String)> = Vec::new();
    for e in json[0]["esp"].as_array().expect("esp") {
        for line in e["evidence"].as_array().expect("evidence") {
            want.push((
                "esp".into(),
                e["name"].as_str().expect("name").into(),
                line.as_str().expect("line").into(),
            ));
        }
    }
    for t in json[0]["trackers"].as_array().expect("trackers") {
        want.push((
            "tracker".into(),
            t["rule"].as_str().unwrap_or("").into(),
            t["url"].as_str().expect("url").into(),
        ));
    }
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| match col(r, "item").as_str() {
            "esp" => ("esp".into(), col(r, "provider"), col(r, "evidence")),
            other => (other.into(), col(r, "rule"), col(r, "url")),
        })
        .collect();
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(got, want);
    assert!(
        got.iter().any(|(item, provider, evidence)| item == "esp"
            && provider == "SendGrid"
            && evidence
                .starts_with("received-by-us: Received: from xtrwkrhh.outbound-mail.sendgrid.net")),
        "{got:?}"
    );
    let pixel = rows
        .iter()
        .find(|r| col(r, "rule") == "klaviyo.open-sendgrid")
        .expect("pixel row");
    assert_eq!(col(pixel, "kind"), "pixel");
    assert_eq!(col(pixel, "action"), "removed");
    assert_eq!(col(pixel, "host"), "trk.klclick3.com");
    assert!(col(pixel, "url").starts_with("https://trk.klclick3.com/wf/open?upn="));
}

/// Split a CSV document (RFC 4180: quoted fields may hold commas, quotes and line breaks)
/// into records, independently of trackless's writer.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "truncated CSV: {text}"
    );
    records
}

#[test]
fn html_report_is_self_contained_and_renders() {
    let (dir, _log) = filled_log("html");
    let page = dir.join("report.html");
    run(&dir, &["report", "--html", page.to_str().expect("path")]);
    let html = std::fs::read_to_string(&page).expect("html");
    assert!(html.contains("<svg") && html.contains("glowco.example"));
    // No remote asset of any kind: no http(s) URL in src/href/url() and no scripts.
    for bad in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "<script",
        "@import",
        "<link",
    ] {
        assert!(!html.contains(bad), "report contains {bad}");
    }
    if std::env::var_os("TRACKLESS_SKIP_BROWSER").is_some() {
        return;
    }
    let chromium = common::chromium().expect("headless Chromium is needed for this test (apt-get install chromium), or set TRACKLESS_SKIP_BROWSER=1");
    let shot = dir.join("report.png");
    let profile = dir.join("chromium-profile");
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("chromium");
    assert!(status.success());
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A rendered page with tables and charts compresses to far more than a blank one (~5 KB).
    assert!(
        png.len() > 40_000,
        "screenshot looks empty: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("TRACKLESS_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
}

#[test]
fn prune_applies_retention() {
    let (dir, _log) = filled_log("prune");
    let out = run(&dir, &["log", "prune", "--older-than", "2000-01-01"]);
    assert!(out.starts_with("deleted 0 message(s)"), "{out}");
    let out = run(&dir, &["log", "prune", "--older-than", "2099-01-01"]);
    assert!(out.starts_with("deleted 50 message(s)"), "{out}");
    assert_eq!(run(&dir, &["report", "--format", "json"]).trim(), "[]");
}

#[test]
fn report_without_a_log_says_so() {
    let dir = common::scratch("missing");
    let out = trackless()
        .args(["report"])
        .env("XDG_STATE_HOME", &dir)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tracking log at"));
}

#[test]
fn report_by_operator_names_who_runs_each_remote_host() {
    let (dir, _log) = filled_log("by-operator");
    let json = run(&dir, &["report", "--by", "operator", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["operator"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"))
    };
    // Remote fonts are removed everywhere; Google is a US company.
    let fonts = row("Google Fonts");
    assert_eq!(fonts["known"], true);
    assert_eq!(fonts["kind"], "fonts");
    assert_eq!(fonts["jurisdiction"], "US");
    assert_eq!(fonts["us_exposure"], true);
    assert_eq!(fonts["still_loaded"], 0);
    assert!(fonts["removed"].as_u64().unwrap_or(0) > 0);
    // CloudFront images stay (visible, static): still loaded, not removed.
    let aws = row("Amazon Web Services");
    assert!(aws["still_loaded"].as_u64().unwrap_or(0) > 0);
    // A host without a known operator is its own row.
    assert!(rows
        .iter()
        .any(|r| r["known"] == false && r["kind"] == "unknown"));
    for r in &rows {
        let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
        assert_eq!(n("removed") + n("still_loaded"), n("urls"), "{r}");
        assert!(n("messages") >= 1 && n("hosts") >= 1 && n("urls") >= n("hosts"));
    }
    let table = run(&dir, &["report", "--by", "operator"]);
    assert!(table.starts_with("OPERATOR (OR HOST)"), "{table}");
    assert!(table.contains("Google Fonts"), "{table}");
    let csv = run(&dir, &["report", "--by", "operator", "--format", "csv"]);
    assert_eq!(csv.lines().count(), rows.len() + 1);
    // Only the sender asked for.
    let one = run(
        &dir,
        &[
            "report",
            "--by",
            "operator",
            "--sender",
            "northwind.example",
            "--format",
            "json",
        ],
    );
    let one: Vec<serde_json::Value> = serde_json::from_str(&one).expect("json");
    assert!(one.len() < rows.len());
}
