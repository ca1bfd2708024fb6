//! The shape of the crate, checked from its imports: every `crate::MODULE` path in `src/`
//! names the module a file depends on. Layers, bottom up:
//!
//! - ground: `mail` (mail types and parsing, URL rule sets) imports nothing of ours;
//! - engines: `html`, `plain`, `links`, `esp` import the ground only, never one another;
//! - pipeline: `core` (neutralise, the MIME walker, policy, the rules files, allow-list, stamp)
//!   imports the ground and the engines;
//! - sinks and adapters: `log`, `serve`, `batch`, `imap`, `cli`, `config` import the pipeline, the ground
//!   and each other, never an engine (`allocator`, the binary's, imports nothing of ours);
//! - `lib.rs` and `main.rs` put it together.
//!
//! Unit tests (`#[cfg(test)] mod tests` to the end of a file) may use the whole crate and are
//! not read. Imports that break the shape today and are still to be moved are listed in `KNOWN`, each
//! once: the test fails on any other, and on a listed one that is gone (so the list shrinks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const GROUND: &[&str] = &["mail"];
const ENGINES: &[&str] = &["html", "plain", "links", "esp"];
const PIPELINE: &[&str] = &["core"];
const OUTSIDE: &[&str] = &[
    "log",
    "serve",
    "batch",
    "imap",
    "cli",
    "config",
    "dossier",
    "allocator",
];

/// (from, to) module pairs that break the layering, with what is to be done: none left. Add
/// one only with a reason and a plan to remove it.
const KNOWN: &[(&str, &str, &str)] = &[];

fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// What `lib.rs` re-exports at the crate root, by the module that owns it.
fn owner_of_root_item(name: &str) -> Option<&'static str> {
    Some(match name {
        "neutralise" | "Policy" | "Limits" => "core",
        "Action" | "Counts" | "Finding" | "Kind" | "Outcome" | "SkipReason" => "mail",
        "Rules" => "core",
        _ => return None,
    })
}

/// `crate::NAME` occurrences in code (comments skipped line by line), by module.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(owner_of_root_item(&name).map_or(name, str::to_string));
            }
            rest = after;
        }
    }
    out
}

fn layer(m: &str) -> Option<usize> {
    [GROUND, ENGINES, PIPELINE, OUTSIDE]
        .iter()
        .position(|l| l.contains(&m))
}

fn allowed(from: &str, to: &str) -> bool {
    if from == to || from == "lib" || from == "main" {
        return true;
    }
    match (layer(from), layer(to)) {
        (Some(0), _) => false,
        (Some(1), Some(0)) => true,
        (Some(1), _) => false,
        (Some(2), Some(0 | 1)) => true,
        (Some(2), _) => false,
        (Some(3), Some(0 | 2 | 3)) => true,
        (Some(3), _) => false,
        _ => false,
    }
}

#[test]
fn imports_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(f, &src);
        assert!(
            from == "lib" || from == "main" || layer(&from).is_some(),
            "{}: module {from} is in no layer: add it to tests/layering.rs",
            f.display()
        );
        let text = std::fs::read_to_string(f).expect("read");
        let text = text
            .find("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |i| &text[..i]);
        for to in crate_refs(text) {
            if !allowed(&from, &to) {
                found
                    .entry((from.clone(), to))
                    .or_default()
                    .push(f.strip_prefix(&src).expect("rel").display().to_string());
            }
        }
    }
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b, _)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(k, _)| !known.contains(*k))
        .map(|((a, b), files)| format!("{a} -> {b} in {}", files.join(", ")))
        .collect();
    let gone: Vec<String> = known
        .iter()
        .filter(|k| !found.contains_key(*k))
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    eprintln!(
        "imports against the layering still to move: {}",
        found
            .iter()
            .map(|((a, b), f)| format!("{a}->{b} ({})", f.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        new.is_empty(),
        "imports against the layering (ground <- engines <- pipeline <- sinks/adapters; engines never import one another):\n{}",
        new.join("\n")
    );
    assert!(
        gone.is_empty(),
        "listed in KNOWN but no longer found (remove them from the list): {}",
        gone.join(", ")
    );
}

#[test]
fn the_checker_sees_a_violation() {
    // An engine importing another engine, an adapter importing an engine, the ground importing
    // anything: refused. The pipeline importing engines: fine.
    assert!(!allowed("serve", "html"));
    assert!(!allowed("mail", "core"));
    assert!(allowed("core", "html"));
    assert!(allowed("serve", "core"));
    assert!(allowed("log", "mail"));
    let refs = crate_refs("use crate::links::process; // crate::esp in a comment\nlet x = crate::mail::url::UrlView::parse(u);");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["links".to_string(), "mail".to_string()]
    );
}
