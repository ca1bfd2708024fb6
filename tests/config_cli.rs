//! The configuration file as a user meets it: `check-config` on the shipped file and on broken
//! ones (file, line and key in the error), every key documented in packaging/trackless.toml,
//! settings from the file changing what `filter` does, flags overriding the file, and a daemon
//! taking its listening address from its section.

mod common;

use common::cli::{check_config, feed};
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn trackless(config: &Path) -> Command {
    let mut c = common::cli::trackless();
    c.env("TRACKLESS_CONFIG", config).arg("--no-log");
    c
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("trackless.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/trackless.toml")
}

fn filter(config: &Path, extra: &[&str], input: &[u8]) -> Output {
    feed(trackless(config).args(extra).arg("filter"), input)
}

const SENDGRID: &str = "https://u1316.ct.sendgrid.net/ls/click?upn=u001.abc-2Bdef-3D";

/// HTML with an opaque SendGrid click link, a 1×1 pixel on a host no rule knows, and a link
/// with a `ref_id` parameter (not a built-in tracking parameter).
/// The filter ran and rewrote the newsletter: the pixel is gone and our header is there
/// (merely "different from the input" would also pass on empty output).
fn assert_rewritten(out: &std::process::Output, why: &str) {
    assert!(out.status.success(), "{why}: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\r\nX-Trackless: pixels=1"), "{why}: {text}");
    assert!(!text.contains("img.unknown-host.example"), "{why}: {text}");
}

fn newsletter(from: &str) -> Vec<u8> {
    let html = format!(
        "<html><body><p><a href=\"{SENDGRID}\">Shop now</a> \
         <a href=\"https://www.shop.example/p?id=1&amp;ref_id=77\">Product</a></p>\
         <img src=\"https://img.unknown-host.example/o.gif?u=9\" width=\"1\" height=\"1\">\
         </body></html>"
    );
    let mut headers = std_headers();
    headers.retain(|(k, _)| *k != "From");
    headers.push(("From", from));
    message(
        &headers,
        &leaf(
            "text/html; charset=utf-8",
            "quoted-printable",
            &html,
            "\r\n",
        ),
        "\r\n",
    )
}

#[test]
fn shipped_config_is_valid_and_shows_effective_settings() {
    let out = check_config(&shipped());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is valid"), "{stdout}");
    // Values from the file and defaults, resolved.
    assert!(
        stdout.contains("listen = \"unix:/var/spool/postfix/trackless/milter.sock\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("forward = \"lmtp:unix:/run/dovecot/lmtp\""),
        "{stdout}"
    );
    assert!(stdout.contains("retention = \"180d\""), "{stdout}");
    assert!(stdout.contains("max_size = \"64M\""), "{stdout}");
    assert!(stdout.contains("on_overload = \"accept\""), "{stdout}");
    // The printed settings are themselves a valid configuration file.
    let dir = scratch("roundtrip");
    let again = write_config(&dir, &stdout);
    let out2 = check_config(&again);
    assert!(
        out2.status.success(),
        "{}",
        String::from_utf8_lossy(&out2.stderr)
    );
}

/// Keys a section accepts, read from the "expected one of" list of an unknown-key error.
fn accepted_keys(section: Option<&str>) -> BTreeSet<String> {
    let dir = scratch(&format!("keys-{}", section.unwrap_or("top")));
    let text = match section {
        Some(s) => format!("[{s}]\nzz_no_such_key = 1\n"),
        None => "[zz_no_such_section]\n".to_string(),
    };
    let p = write_config(&dir, &text);
    let out = check_config(&p);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let list = err
        .split(", expected")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_key_is_documented_in_the_shipped_file() {
    let text = std::fs::read_to_string(shipped()).expect("shipped config");
    // Documented keys: `key = …` lines, commented or not, under their [section].
    let mut documented: BTreeSet<(String, String)> = BTreeSet::new();
    let mut section = String::new();
    let mut uncommented = String::new();
    for line in text.lines() {
        let t = line.trim_start_matches('#').trim();
        if t.starts_with('[') && t.ends_with(']') && !t.contains(' ') {
            section = t.trim_matches(['[', ']']).to_string();
            uncommented.push_str(&format!("{t}\n"));
        } else if let Some((k, _)) = t.split_once(" = ") {
            if k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !k.is_empty()
                && documented.insert((section.clone(), k.to_string()))
            {
                uncommented.push_str(&format!("{t}\n"));
            }
        }
    }
    let sections = accepted_keys(None);
    assert!(
        sections.contains("policy") && sections.contains("lmtp"),
        "{sections:?}"
    );
    for s in &sections {
        for k in accepted_keys(Some(s)) {
            assert!(
                documented.contains(&(s.clone(), k.clone())),
                "[{s}] {k} is not documented in packaging/trackless.toml"
            );
        }
    }
    // And every documented example is a valid value: the file with everything uncommented
    // passes check-config.
    let dir = scratch("uncommented");
    std::fs::write(dir.join("local-rules.toml"), "").expect("rules");
    let uncommented = uncommented.replace("/etc/trackless/local-rules.toml", "local-rules.toml");
    let p = write_config(&dir, &uncommented);
    let out = check_config(&p);
    assert!(
        out.status.success(),
        "{uncommented}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn errors_name_file_line_and_key() {
    let dir = scratch("errors");
    let cases = [
        (
            "[log]\npath = \"x.sqlite\"\n\nretension = \"10d\"\n",
            ":4: log.retension: unknown field",
        ),
        (
            "[milter]\nworkers = \"four\"\n",
            ":2: milter.workers: invalid type",
        ),
        (
            "[limits]\nmax_time = \"ten\"\n",
            ":2: limits.max_time: \"ten\" is not a duration",
        ),
        ("[smtp]\nforward = \"nowhere\"\n", ":2: smtp.forward:"),
        (
            "[policy]\nrules = [\"missing.toml\"]\n",
            ":2: policy.rules: ",
        ),
        ("[polcy]\nlinks = false\n", ":1: [polcy]: unknown field"),
    ];
    for (text, expected) in cases {
        let p = write_config(&dir, text);
        let out = check_config(&p);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {err}");
        assert!(
            err.contains(&format!("{}{expected}", p.display())),
            "{text:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "nothing printed for an invalid file");
    }
    // A missing file named with --config is an error too.
    let out = check_config(Path::new("/nonexistent/trackless.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/trackless.toml"));
}

#[test]
fn file_settings_change_the_rewrite_and_flags_override_them() {
    let dir = scratch("policy");
    let raw = newsletter("Shop <news@shop.example>");

    // Defaults: the opaque link is kept unmarked, the pixel is removed, ref_id stays.
    let empty = write_config(&dir, "");
    let out = filter(&empty, &[], &raw);
    assert!(out.status.success());
    let text = all_text(&out.stdout);
    assert!(!text.contains("[tracked]"), "{text}");
    assert!(!text.contains("unknown-host.example"), "{text}");
    assert!(text.contains("ref_id=77"), "{text}");

    let cfg = write_config(
        &dir,
        "[policy]\nopaque_links = \"mark\"\ntracking_params = [\"ref_id\"]\npixel_heuristics = false\n",
    );
    let out = filter(&cfg, &[], &raw);
    let text = all_text(&out.stdout);
    assert!(text.contains("Shop now</a> [tracked]"), "{text}");
    assert!(
        text.contains("unknown-host.example/o.gif"),
        "pixel kept: {text}"
    );
    assert!(
        text.contains("https://www.shop.example/p?id=1\"") && !text.contains("ref_id"),
        "{text}"
    );

    // The flag wins over the file.
    let out = filter(&cfg, &["--opaque-links", "keep"], &raw);
    assert!(!all_text(&out.stdout).contains("[tracked]"));

    // Limits from the file: over max_size the message passes through untouched.
    let small = write_config(&dir, "[limits]\nmax_size = 200\n");
    let out = filter(&small, &[], &raw);
    assert_eq!(out.stdout, raw);
}

#[test]
fn allow_list_bypasses_rewriting_only_when_dkim_verified() {
    let dir = scratch("allow");
    let cfg = write_config(&dir, "[allow]\ndomains = [\"shop.example\"]\n");
    // No Authentication-Results from our MX: the From address alone is not believed.
    let raw = newsletter("Shop <news@shop.example>");
    let out = filter(&cfg, &[], &raw);
    assert_rewritten(&out, "forgeable From must not bypass rewriting");

    // Our MX (the `by` host of the first Received) verified DKIM for shop.example.
    let verified = String::from_utf8(raw.clone()).expect("utf8").replacen(
        "Return-Path:",
        "Authentication-Results: mx.example.net; dkim=pass header.d=shop.example\r\nReturn-Path:",
        1,
    );
    let out = filter(&cfg, &[], verified.as_bytes());
    assert!(out.status.success());
    assert_eq!(out.stdout, verified.as_bytes(), "allow-listed: unchanged");
    let inspect = trackless(&cfg)
        .args(["inspect", "--json"])
        .arg({
            let p = dir.join("m.eml");
            std::fs::write(&p, &verified).expect("write");
            p
        })
        .output()
        .expect("inspect");
    let json = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        json.contains("allow-listed") && json.contains("domain:shop.example"),
        "{json}"
    );

    // Another domain is rewritten as usual.
    let other = verified.replace("news@shop.example", "news@other.example");
    let out = filter(&cfg, &[], other.as_bytes());
    assert_rewritten(&out, "another domain is rewritten");

    // require_dkim = false: the From header decides.
    let lax = write_config(
        &dir,
        "[allow]\nsenders = [\"NEWS@shop.example\"]\nrequire_dkim = false\n",
    );
    let out = filter(&lax, &[], &raw);
    assert_eq!(out.stdout, raw);
}

#[test]
fn broken_config_never_loses_mail_in_filter() {
    let dir = scratch("broken");
    let cfg = write_config(&dir, "[policy]\nlinks = maybe\n");
    let raw = newsletter("Shop <news@shop.example>");
    let out = filter(&cfg, &[], &raw);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, raw);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trackless.toml:2"), "{err}");
}

#[test]
fn milter_takes_its_address_from_the_config_file() {
    let dir = scratch("milter");
    let sock = dir.join("m.sock");
    let cfg = write_config(
        &dir,
        &format!(
            "[milter]\nlisten = \"unix:{}\"\nsocket_mode = \"0600\"\n",
            sock.display()
        ),
    );
    let child = trackless(&cfg)
        .arg("milter")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut up = false;
    for _ in 0..200 {
        if sock.exists() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let mode = std::fs::metadata(&sock)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let out = child.wait_with_output().expect("wait");
    assert!(up, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode.ok(), Some(0o600));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without listen anywhere: a clear error, not a default address.
    let none = write_config(&dir, "");
    let out = trackless(&none).arg("milter").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}
