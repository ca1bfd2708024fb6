//! Report output on a fixture database: the corpus logged at fixed times, summarised by
//! domain (JSON) and by ESP (CSV), compared with reviewed golden files in tests/golden/.
//! After a deliberate change: TRACKLESS_BLESS=1 cargo test --test report_golden, then review
//! the diff of tests/golden/.

mod common;

use std::path::Path;
use trackless::log::report::{self, By, Filter};
use trackless::log::Backend;
use trackless::log::{Keep, Mode, Record, Store};
use trackless::{neutralise, Policy};

fn fixture() -> Store {
    let files = common::corpus_files();
    let policy = Policy::default();
    // Processed on 2026-11-20 at one-minute intervals.
    let records: Vec<Record> = files
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let raw = std::fs::read(p).expect("read");
            let out = neutralise(&raw, &policy);
            Record::new(
                &raw,
                &out,
                Mode::Batch,
                None,
                &[],
                Keep::default(),
                1_795_132_800 + 60 * i as i64,
            )
        })
        .collect();
    let mut store = Store::memory().expect("store");
    store.insert(&records).expect("insert");
    store
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("TRACKLESS_BLESS").is_some() {
        std::fs::write(&path, actual).expect("bless");
        return;
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b);
        panic!("{name} differs from the golden file (first differing line {first:?}):\n{actual}");
    }
}

#[test]
fn by_domain_json() {
    let mut store = fixture();
    let rows = store
        .summarise(By::Domain, &Filter::default())
        .expect("summarise");
    let mut out = Vec::new();
    report::write_json(&rows, &mut out).expect("json");
    golden(
        "report_by_domain.json",
        &String::from_utf8(out).expect("utf8"),
    );
}

#[test]
fn by_esp_csv() {
    let mut store = fixture();
    let rows = store
        .summarise(By::Esp, &Filter::default())
        .expect("summarise");
    let mut out = Vec::new();
    report::write_csv(&rows, &mut out).expect("csv");
    golden("report_by_esp.csv", &String::from_utf8(out).expect("utf8"));
}

#[test]
fn by_sender_table_for_one_period() {
    let mut store = fixture();
    let f = Filter {
        since: trackless::log::time::parse_date("2026-05-01"),
        until: trackless::log::time::parse_date("2026-07-01"),
        sender: None,
    };
    let rows = store.summarise(By::Sender, &f).expect("summarise");
    let mut out = Vec::new();
    report::write_table(&rows, By::Sender, &mut out).expect("table");
    golden(
        "report_by_sender_may_june.txt",
        &String::from_utf8(out).expect("utf8"),
    );
}
