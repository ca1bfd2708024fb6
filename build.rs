//! Builds the embedded rules' pattern sets into DFAs when trackless is compiled, so that a
//! process started per message does not compile them (see src/mail/matcher.rs). The patterns
//! come from the same code the crate uses at run time (src/mail/pattern.rs); the crate checks
//! at run time that a set's patterns are exactly these before it uses the automaton. It also
//! writes the shipped rules files as JSON, which the crate parses faster than TOML.

use regex_automata::dfa::{dense, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::MatchKind;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[path = "src/mail/pattern.rs"]
#[allow(dead_code)]
mod pattern;

struct Set {
    case_insensitive: bool,
    anchored: bool,
    patterns: Vec<String>,
}

fn text<'a>(v: &'a toml::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(toml::Value::as_str)
}

fn enabled(rules: Option<&toml::Value>) -> Vec<&toml::Value> {
    rules
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|r| {
                    !r.get("disabled")
                        .and_then(toml::Value::as_bool)
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn url_section(file: &toml::Value, name: &str) -> Set {
    let rules = enabled(file.get(name));
    let hosts: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            r.get("hosts")
                .and_then(toml::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let named: Vec<bool> = rules
        .iter()
        .zip(&hosts)
        .map(|(r, h)| !h.is_empty() || text(r, "host_re").is_some())
        .collect();
    let patterns = pattern::url_order(&named)
        .into_iter()
        .map(|i| pattern::url_pattern(text(rules[i], "host_re"), &hosts[i], text(rules[i], "path")))
        .collect();
    Set {
        case_insensitive: false,
        anchored: true,
        patterns,
    }
}

fn esp_signal(file: &toml::Value, key: &str) -> Set {
    let patterns = enabled(file.get("esp"))
        .into_iter()
        .filter_map(|r| text(r, key).map(String::from))
        .collect();
    Set {
        case_insensitive: true,
        anchored: false,
        patterns,
    }
}

fn esp_values(file: &toml::Value) -> Set {
    let mut patterns = Vec::new();
    for r in enabled(file.get("esp")) {
        for pair in r
            .get("values")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = pair
                .as_array()
                .and_then(|p| p.get(1))
                .and_then(toml::Value::as_str)
            {
                patterns.push(p.to_string());
            }
        }
    }
    Set {
        case_insensitive: true,
        anchored: false,
        patterns,
    }
}

/// The shipped providers as a table the crate reads without parsing them all: each one's
/// name and aliases, and its entry as JSON (parsed when a message first names it).
fn providers_index(providers: &toml::Value, out: &Path) {
    let list = providers
        .get("provider")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut src = String::from("&[\n");
    for p in &list {
        let name = text(p, "name").unwrap_or_else(|| panic!("a provider without a name: {p:?}"));
        let aliases: Vec<&str> = p
            .get("aliases")
            .and_then(toml::Value::as_array)
            .map(|a| a.iter().filter_map(toml::Value::as_str).collect())
            .unwrap_or_default();
        let json = serde_json::to_string(p).expect("a provider as JSON");
        writeln!(
            src,
            "    EmbeddedProvider {{ name: {name:?}, aliases: &{aliases:?}, json: {json:?} }},"
        )
        .expect("write to a string");
    }
    src.push_str("]\n");
    std::fs::write(out, src).expect("write the providers' index");
}

fn read(path: &str) -> toml::Value {
    println!("cargo::rerun-if-changed={path}");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn build(set: &Set, out: &Path) -> usize {
    let dfa =
        dense::Builder::new()
            .configure(dense::Config::new().match_kind(MatchKind::All).start_kind(
                if set.anchored {
                    StartKind::Anchored
                } else {
                    StartKind::Unanchored
                },
            ))
            .syntax(
                syntax::Config::new()
                    .unicode(false)
                    .utf8(false)
                    .case_insensitive(set.case_insensitive),
            )
            .thompson(thompson::Config::new().utf8(false))
            .build_many(&set.patterns)
            .unwrap_or_else(|e| panic!("embedded rules: {e} in {:?}", set.patterns));
    let big = std::env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() == Ok("big");
    let (bytes, pad) = if big {
        dfa.to_bytes_big_endian()
    } else {
        dfa.to_bytes_little_endian()
    };
    std::fs::write(out, &bytes[pad..]).expect("write the automaton");
    bytes.len() - pad
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/mail/pattern.rs");
    let rules = read("rules/default.toml");
    let esp = read("rules/esp.toml");
    let providers = read("rules/providers.toml");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // The shipped files as JSON, which the crate reads much faster than TOML.
    for (name, value) in [("default", &rules), ("esp", &esp)] {
        let json = serde_json::to_string(value).expect("rules as JSON");
        std::fs::write(out.join(format!("{name}.json")), json).expect("write the rules");
    }
    providers_index(&providers, &out.join("providers_index.rs"));
    let mut sets = Vec::new();
    for name in ["open", "font", "decoder", "click"] {
        sets.push(url_section(&rules, name));
    }
    for key in [
        "feedback_id",
        "return_path",
        "message_id",
        "list_unsubscribe",
        "received",
        "selector",
    ] {
        sets.push(esp_signal(&esp, key));
    }
    sets.push(esp_values(&esp));
    sets.retain(|s| !s.patterns.is_empty());

    let mut code = String::from("// Generated by build.rs: the embedded rules' automata.\n");
    let mut entries = String::new();
    for (i, set) in sets.iter().enumerate() {
        let file = out.join(format!("rules-{i}.dfa"));
        let len = build(set, &file);
        writeln!(
            code,
            "static DFA_{i}: &Aligned<[u8; {len}]> = &Aligned {{ bytes: *include_bytes!({:?}) }};",
            file.display().to_string()
        )
        .unwrap();
        writeln!(
            entries,
            "    Embedded {{ syntax: Syntax {{ case_insensitive: {}, anchored: {} }}, patterns: &{:?}, bytes: &DFA_{i}.bytes }},",
            set.case_insensitive, set.anchored, set.patterns
        )
        .unwrap();
    }
    writeln!(code, "const EMBEDDED_LEN: usize = {};", sets.len()).unwrap();
    writeln!(
        code,
        "static EMBEDDED: [Embedded; EMBEDDED_LEN] = [\n{entries}];"
    )
    .unwrap();
    std::fs::write(out.join("embedded.rs"), code).expect("write embedded.rs");
}
