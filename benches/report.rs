//! Report speed: one million messages in the log, summarised by domain, ESP and sender.
//! Target: under 2 s each.
//!
//!     cargo bench --bench report              # 1 000 000 rows
//!     TRACKLESS_BENCH_ROWS=200000 cargo bench --bench report

use std::time::Instant;
use trackless::log::report::{By, Filter};
use trackless::log::Backend;
use trackless::log::{Keep, Record, Store};

fn main() {
    let rows: usize = std::env::var("TRACKLESS_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    // TRACKLESS_BENCH_DB=path reuses (or keeps) a filled log between runs.
    let keep = std::env::var_os("TRACKLESS_BENCH_DB").map(std::path::PathBuf::from);
    let dir = std::env::temp_dir().join(format!("trackless-report-bench-{}", std::process::id()));
    let path = keep.clone().unwrap_or_else(|| dir.join("log.sqlite"));
    let reuse = keep.as_ref().is_some_and(|p| p.exists());
    if !reuse {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
    }
    let mut store = Store::open(&path).expect("open");
    if !reuse {
        fill(&mut store, rows);
        println!("filled {rows} rows ({})", path.display());
    }
    run(&mut store);
    drop(store);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn fill(store: &mut Store, rows: usize) {
    // Synthetic but realistic shape: 5 000 sender domains, a dozen ESP combinations, a year.
    let esps = [
        "SendGrid",
        "Mailgun",
        "Klaviyo/SendGrid",
        "Mailchimp",
        "Amazon SES",
        "Brevo",
        "HubSpot",
        "Postmark",
        "SparkPost",
        "Substack/Mailgun",
        "Mailjet",
        "",
    ];
    let juris = [
        "US", "US", "US", "US", "US", "FR", "US", "US", "US", "US", "FR", "",
    ];
    let raw = b"From: a@b.example\r\n\r\nbody".to_vec();
    let outcome = trackless::neutralise(&raw, &trackless::Policy::default()).into_owned();
    let template = Record::new(
        &raw,
        &outcome,
        trackless::log::Mode::Milter,
        None,
        &[],
        Keep::default(),
        0,
    );
    let start = Instant::now();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..rows {
        let r = next();
        let d = (r % 5_000) as usize;
        let e = (r >> 20) as usize % esps.len();
        let mut rec = template.clone();
        rec.ts = 1_764_000_000 + (i as i64 * 31_536_000 / rows as i64);
        rec.date = Some(rec.ts - 60);
        rec.from_domain = Some(format!("sender{d}.example"));
        rec.from_addr = Some(format!("news@sender{d}.example"));
        rec.pixels = (r >> 32) as u32 % 3;
        rec.links_opaque = (r >> 36) as u32 % 12;
        rec.links_unwrapped = (r >> 40) as u32 % 6;
        rec.fonts = (r >> 44) as u32 % 2;
        rec.esp = (!esps[e].is_empty()).then(|| esps[e].to_string());
        rec.jurisdiction = (!juris[e].is_empty()).then(|| juris[e].to_string());
        rec.us_exposure = Some(juris[e] == "US");
        batch.push(rec);
        if batch.len() == 10_000 {
            store.insert(&batch).expect("insert");
            batch.clear();
        }
    }
    store.insert(&batch).expect("insert");
    println!("insert: {:.1} s", start.elapsed().as_secs_f64());
}

fn run(store: &mut Store) {
    for by in [By::Domain, By::Esp, By::Sender] {
        let t = Instant::now();
        let out = store.summarise(by, &Filter::default()).expect("summarise");
        println!(
            "report --by {by:?}: {} rows in {:.3} s",
            out.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let f = Filter {
        since: Some(1_764_000_000 + 31_536_000 / 2),
        until: None,
        sender: None,
    };
    let out = store.summarise(By::Domain, &f).expect("summarise");
    println!(
        "report --since (half a year) --by domain: {} rows in {:.3} s",
        out.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let f = Filter {
        since: None,
        until: None,
        sender: Some("sender42.example".into()),
    };
    let out = store.summarise(By::Domain, &f).expect("summarise");
    println!(
        "report --sender sender42.example: {} rows in {:.3} s",
        out.len(),
        t.elapsed().as_secs_f64()
    );
}
