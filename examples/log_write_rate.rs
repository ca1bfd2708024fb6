//! How fast the tracking log takes records, as the daemons' writer sends them (transactions of
//! 256), and how long the report then takes. SQLite file or PostgreSQL URL:
//!     cargo run --release --example log_write_rate -- /tmp/x.sqlite 100000
//!     cargo run --release --example log_write_rate -- postgres://u:p@127.0.0.1:5432/db 100000
//! A third argument takes the messages from that directory instead of the sample corpus (the
//! hard case: generated newsletters, some fifty trackers each).
use std::path::Path;
use std::time::Instant;
use trackless::log::report::{By, Filter};
use trackless::log::{Db, Keep, LogTarget, Mode, Record};

fn main() {
    let mut args = std::env::args().skip(1);
    let target = LogTarget::parse(&args.next().expect("log path or URL"));
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let policy = trackless::Policy::default();
    let base: Vec<Record> = std::fs::read_dir(dir)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| {
            let raw = std::fs::read(p).expect("read");
            let out = trackless::neutralise(&raw, &policy);
            Record::new(
                &raw,
                &out,
                Mode::Milter,
                None,
                &[],
                Keep::default(),
                1_795_000_000,
            )
        })
        .collect();
    let mut db = Db::open(&target).expect("open");
    let start = Instant::now();
    let mut written = 0;
    while written < n {
        let batch: Vec<Record> = (0..256.min(n - written))
            .map(|i| {
                let mut r = base[(written + i) % base.len()].clone();
                r.ts += (written + i) as i64;
                r
            })
            .collect();
        db.insert(&batch).expect("insert");
        written += batch.len();
    }
    let secs = start.elapsed().as_secs_f64();
    let rows = |r: &Record| 1 + r.esps.len() + r.trackers.len() + r.remote.len();
    println!(
        "{target}: {n} records in {secs:.2} s ({:.0} records/s, {:.0} rows per record)",
        n as f64 / secs,
        base.iter().map(rows).sum::<usize>() as f64 / base.len() as f64
    );
    let start = Instant::now();
    let rows = db
        .summarise(By::Domain, &Filter::default())
        .expect("report");
    println!(
        "report by domain over the log: {} groups in {:.2} s",
        rows.len(),
        start.elapsed().as_secs_f64()
    );
}
