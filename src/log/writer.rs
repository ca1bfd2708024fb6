//! The daemons' log writer: a bounded channel into one writer thread that inserts in batched
//! transactions. Logging never blocks or loses mail. While the log is unavailable (PostgreSQL
//! down, disk full) the writer keeps its current batch and retries every few seconds; records
//! wait in the bounded channel and are written when the log comes back; what does not fit is
//! dropped and counted. Failures are reported at most once a minute.

use super::db::{Db, LogTarget};
use super::record::Record;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest batch written in one transaction.
const BATCH: usize = 256;

/// How long the writer gathers records after the first of a batch before it writes them.
/// Each transaction rewrites the pages it touches (the tables' last pages and every index's),
/// so one record per transaction, which is what a daemon's steady trickle gave, cost several
/// times its own size in log writes and most of the writer's CPU. A stop ends the wait.
const LINGER: Duration = Duration::from_millis(200);

/// How often the writer looks at the channel (and the stop flag) while it gathers.
const LINGER_STEP: Duration = Duration::from_millis(20);

/// Counters shared with the writer thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub written: AtomicU64,
    /// Transactions that wrote them (records per transaction: how well the writer batches).
    pub transactions: AtomicU64,
    /// Records dropped because the queue was full.
    pub dropped_full: AtomicU64,
    /// Records lost because the database could not be written.
    pub failed: AtomicU64,
    /// The writer cannot reach the log right now (set on a failed open or write, cleared on
    /// the next success).
    pub unavailable: AtomicBool,
}

/// Reports a recurring problem at most once per interval, with the count of repeats.
pub struct RateLimited {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    pub fn new(interval: Duration) -> RateLimited {
        RateLimited {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Call for each occurrence; `report` runs at most once per interval with the number of
    /// occurrences since the last report.
    pub fn hit(&mut self, report: impl FnOnce(u64)) {
        self.suppressed += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= self.interval);
        if due {
            report(self.suppressed);
            self.suppressed = 0;
            self.last = Some(Instant::now());
        }
    }
}

/// Where to write, how long to keep.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub path: LogTarget,
    pub capacity: usize,
    /// Delete messages older than this, checked at start and once a day.
    pub retention: Option<Duration>,
    /// The folder of the log's kept originals, which retention sweeps too.
    pub originals: Option<super::originals::Originals>,
}

/// Handle held by the daemon; cloneable senders go to the connection tasks.
pub struct LogWriter {
    tx: Option<SyncSender<Record>>,
    stats: Arc<Stats>,
    full: Arc<std::sync::Mutex<RateLimited>>,
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl LogWriter {
    pub fn spawn(config: WriterConfig) -> LogWriter {
        let (tx, rx) = mpsc::sync_channel(config.capacity.max(1));
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name("trackless-log".into())
            .spawn(move || run(config, rx, &thread_stats, &thread_stop))
            .ok();
        LogWriter {
            tx: Some(tx),
            stats,
            full: Arc::new(std::sync::Mutex::new(RateLimited::new(
                Duration::from_secs(60),
            ))),
            handle,
            stop,
        }
    }

    /// Queue a record; never blocks. A full queue drops the record (counted, reported at most
    /// once a minute).
    pub fn record(&self, r: Record) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(r) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut rl) = self.full.lock() {
                    rl.hit(|n| {
                        tracing::warn!(
                            dropped = n,
                            "tracking log queue full; records dropped (mail is not affected)"
                        )
                    });
                }
            }
        }
    }

    /// Queue a record, waiting for room (batch mode: nothing is dropped while the log keeps
    /// up). While the log is unavailable the record is counted as failed instead of waiting
    /// for a log that may never come back.
    pub fn record_blocking(&self, r: Record) {
        let Some(tx) = &self.tx else { return };
        let mut r = r;
        loop {
            match tx.try_send(r) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    if self.stats.unavailable.load(Ordering::Relaxed) {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    r = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Flush what is queued and stop the writer thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    /// Flush and stop. A log that is unavailable at this point gets one more try; what it
    /// cannot take is counted as failed rather than holding up the exit.
    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How long the writer waits before trying an unavailable log again.
const RETRY: Duration = Duration::from_secs(5);

/// Insert failures in a row on a working connection before a batch is given up as bad data.
const MAX_INSERT_FAILURES: u32 = 3;

fn run(config: WriterConfig, rx: Receiver<Record>, stats: &Stats, stop: &AtomicBool) {
    let mut db: Option<Db> = None;
    let mut errors = RateLimited::new(Duration::from_secs(60));
    let mut last_prune: Option<Instant> = None;
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut insert_failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    let mut outage: Option<Instant> = None;
    loop {
        if let Some(at) = retry_at {
            // A batch is waiting for the log to come back: take nothing more from the channel
            // (it fills, and the daemons count what no longer fits), but notice a stop.
            while Instant::now() < at && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            retry_at = None;
        } else if batch.is_empty() {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(r) => {
                    batch.push(r);
                    // Only into a log that is open: one that cannot be opened is found out
                    // (and reported to blocked senders) at once.
                    if db.is_some() {
                        gather(&mut batch, &rx, stop);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        drain(&mut batch, &rx);
        if db.as_ref().is_some_and(Db::is_closed) {
            db = None;
        }
        if db.is_none() {
            match Db::open(&config.path) {
                Ok(d) => {
                    let d = d.for_writing();
                    if let Some(since) = outage.take() {
                        tracing::info!(
                            log = %config.path,
                            after_s = since.elapsed().as_secs(),
                            "tracking log available again"
                        );
                    }
                    db = Some(d);
                }
                Err(e) => {
                    stats.unavailable.store(true, Ordering::Relaxed);
                    outage.get_or_insert_with(Instant::now);
                    errors.hit(|n| tracing::warn!(error = %e, failures = n, "tracking log unavailable; mail is not affected, records wait in the queue"));
                }
            }
        }
        let Some(d) = db.as_mut() else {
            if stop.load(Ordering::Relaxed) {
                give_up(&mut batch, &rx, stats, &config.path);
                break;
            }
            if !batch.is_empty() {
                retry_at = Some(Instant::now() + RETRY);
            }
            continue;
        };
        if let Some(keep) = config.retention {
            if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(86_400)) {
                let before = super::time::now() - keep.as_secs() as i64;
                let folders = config.originals.as_slice();
                match super::originals::prune(d, before, folders) {
                    Ok(p) if p.messages + p.originals > 0 => tracing::info!(
                        deleted = p.messages,
                        originals = p.originals,
                        "tracking log retention applied"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "tracking log retention failed"),
                }
                last_prune = Some(Instant::now());
            }
        }
        if batch.is_empty() {
            continue;
        }
        match d.insert(&batch) {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                stats.transactions.fetch_add(1, Ordering::Relaxed);
                batch.clear();
                insert_failures = 0;
                stats.unavailable.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                stats.unavailable.store(true, Ordering::Relaxed);
                insert_failures += 1;
                outage.get_or_insert_with(Instant::now);
                errors.hit(|n| tracing::warn!(error = %e, failures = n, "tracking log write failed; mail is not affected"));
                db = None; // reconnect / reopen for the next try
                if insert_failures >= MAX_INSERT_FAILURES {
                    stats
                        .failed
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    insert_failures = 0;
                } else if stop.load(Ordering::Relaxed) {
                    give_up(&mut batch, &rx, stats, &config.path);
                    break;
                } else {
                    retry_at = Some(Instant::now() + RETRY);
                }
            }
        }
    }
}

/// Takes what the channel holds, up to a full batch.
fn drain(batch: &mut Vec<Record>, rx: &Receiver<Record>) {
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
}

/// Gathers records for up to [`LINGER`] after the first: until the batch is full, the
/// daemon stops or the senders are gone. The writer sleeps between looks instead of waiting
/// on the channel, so that each record sent does not wake it.
fn gather(batch: &mut Vec<Record>, rx: &Receiver<Record>, stop: &AtomicBool) {
    let until = Instant::now() + LINGER;
    loop {
        drain(batch, rx);
        let now = Instant::now();
        if batch.len() >= BATCH || now >= until || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep(LINGER_STEP.min(until - now));
    }
}

/// Stopping while the log is unavailable: count what could not be written.
fn give_up(batch: &mut Vec<Record>, rx: &Receiver<Record>, stats: &Stats, target: &LogTarget) {
    let lost = batch.len() as u64 + rx.try_iter().count() as u64;
    batch.clear();
    if lost > 0 {
        stats.failed.fetch_add(lost, Ordering::Relaxed);
        tracing::warn!(log = %target, lost, "stopping with the tracking log unavailable: records not written");
    }
}
