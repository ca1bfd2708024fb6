//! A user's rules file (`--rules`, `[policy] rules`) with `[[operator]]` entries, merged over
//! `rules/operators.toml` in what the reports say: `report --by operator` and `report dossier`
//! name a host the shipped table does not know, an entry replaces the shipped one of its name,
//! and a broken entry is an error naming the file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const RULES: &str = r#"
[[operator]]
name = "Northwind Outfitters"
kind = "hosting"
suffixes = ["cdn.northwind.example"]
legal_entity = "Northwind Outfitters GmbH"
jurisdiction = "DE"
us_exposure = false
sources = ["https://northwind.example/imprint"]

[[operator]]
name = "sendgrid"
kind = "esp"
suffixes = ["sendgrid.net"]
legal_entity = "Renamed by the user"
jurisdiction = "US"
us_exposure = true
"#;

fn trackless(state: &Path) -> Command {
    let mut c = common::cli::trackless();
    c.env("XDG_STATE_HOME", state);
    c
}

/// A log with the corpus's Northwind newsletter in it.
fn logged(name: &str) -> PathBuf {
    let dir = common::scratch(name);
    let out = common::cli::feed(
        trackless(&dir).arg("filter"),
        &common::corpus_message("sendgrid-newsletter.eml"),
    );
    common::cli::assert_exit(&out, 0);
    dir
}

/// `report --by operator --format json` rows, as (operator, legal_entity, jurisdiction).
fn operators(dir: &Path, extra: &[&str]) -> Vec<(String, Option<String>, Option<String>)> {
    let out = common::cli::ok(
        &trackless(dir)
            .args(extra)
            .args(["report", "--by", "operator", "--format", "json"])
            .output()
            .expect("report"),
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    rows.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().map(str::to_string);
            (
                s("operator").unwrap_or_default(),
                s("legal_entity"),
                s("jurisdiction"),
            )
        })
        .collect()
}

#[test]
fn the_reports_name_hosts_by_the_users_operators() {
    let dir = logged("operators-report");
    let rules = dir.join("my-rules.toml");
    std::fs::write(&rules, RULES).expect("rules");
    let shipped = operators(&dir, &[]);
    assert!(
        shipped.iter().any(|(o, _, _)| o == "cdn.northwind.example"),
        "unknown to the shipped table: {shipped:?}"
    );
    assert!(shipped
        .iter()
        .any(|(o, e, _)| o == "SendGrid" && e.as_deref() == Some("Twilio Inc.")));

    let mine = operators(&dir, &["--rules", rules.to_str().expect("utf-8")]);
    assert!(
        mine.contains(&(
            "Northwind Outfitters".into(),
            Some("Northwind Outfitters GmbH".into()),
            Some("DE".into())
        )),
        "{mine:?}"
    );
    assert!(!mine.iter().any(|(o, _, _)| o == "cdn.northwind.example"));
    assert!(
        mine.iter()
            .any(|(o, e, _)| o == "sendgrid" && e.as_deref() == Some("Renamed by the user")),
        "replaced by name: {mine:?}"
    );

    // The same from the configuration file, in the dossier.
    let config = dir.join("trackless.toml");
    std::fs::write(&config, "[policy]\nrules = [\"my-rules.toml\"]\n").expect("config");
    let out = dir.join("dossier");
    common::cli::ok(
        &trackless(&dir)
            .env("TRACKLESS_CONFIG", &config)
            .args(["report", "dossier", "northwind.example", "--out"])
            .arg(&out)
            .output()
            .expect("dossier"),
    );
    let page = std::fs::read_to_string(out.join("dossier.html")).expect("page");
    assert!(page.contains("Northwind Outfitters"), "operator named");
    assert!(page.contains("Germany (DE)"), "its country");
}

#[test]
fn a_broken_operator_entry_names_the_file() {
    let dir = common::scratch("operators-broken");
    let rules = dir.join("broken.toml");
    std::fs::write(&rules, "[[operator]]\nname = \"X\"\nkind = \"cdn\"\n").expect("rules");
    let config = dir.join("trackless.toml");
    std::fs::write(&config, "[policy]\nrules = [\"broken.toml\"]\n").expect("config");
    let out = common::cli::check_config(&config);
    common::cli::assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml"), "{err}");
    assert!(err.contains("operator X"), "{err}");
}
