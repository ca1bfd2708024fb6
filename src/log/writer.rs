//! The daemons' log writer: a bounded channel into one writer thread that inserts in batched
//! transactions. Logging never blocks or loses mail: when the channel is full or the database
//! is unavailable, records are dropped and counted, and the failure is reported at most once
//! a minute.

use super::record::Record;
use super::store::Store;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest batch written in one transaction.
const BATCH: usize = 256;

/// Counters shared with the writer thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub written: AtomicU64,
    /// Records dropped because the queue was full.
    pub dropped_full: AtomicU64,
    /// Records lost because the database could not be written.
    pub failed: AtomicU64,
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
    pub path: PathBuf,
    pub capacity: usize,
    /// Delete messages older than this, checked at start and once a day.
    pub retention: Option<Duration>,
}

/// Handle held by the daemon; cloneable senders go to the connection tasks.
pub struct LogWriter {
    tx: Option<SyncSender<Record>>,
    stats: Arc<Stats>,
    full: Arc<std::sync::Mutex<RateLimited>>,
    handle: Option<JoinHandle<()>>,
}

impl LogWriter {
    pub fn spawn(config: WriterConfig) -> LogWriter {
        let (tx, rx) = mpsc::sync_channel(config.capacity.max(1));
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("trackless-log".into())
            .spawn(move || run(config, rx, &thread_stats))
            .ok();
        LogWriter {
            tx: Some(tx),
            stats,
            full: Arc::new(std::sync::Mutex::new(RateLimited::new(
                Duration::from_secs(60),
            ))),
            handle,
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

    /// Queue a record, waiting for room (batch mode: nothing is dropped, no mail is waiting).
    pub fn record_blocking(&self, r: Record) {
        let Some(tx) = &self.tx else { return };
        if tx.send(r).is_err() {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Flush what is queued and stop the writer thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
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

fn run(config: WriterConfig, rx: Receiver<Record>, stats: &Stats) {
    let mut store: Option<Store> = None;
    let mut errors = RateLimited::new(Duration::from_secs(60));
    let mut last_prune: Option<Instant> = None;
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        batch.extend(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if store.is_none() {
            match Store::open(&config.path) {
                Ok(s) => store = Some(s),
                Err(e) => {
                    errors.hit(|n| tracing::warn!(error = %e, failures = n, "tracking log unavailable; mail is not affected"));
                }
            }
        }
        if let Some(s) = store.as_mut() {
            if let Some(keep) = config.retention {
                if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(86_400)) {
                    let before = super::time::now() - keep.as_secs() as i64;
                    match s.prune(before) {
                        Ok(n) if n > 0 => {
                            tracing::info!(deleted = n, "tracking log retention applied")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "tracking log retention failed"),
                    }
                    last_prune = Some(Instant::now());
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let result = match store.as_mut() {
            Some(s) => s.insert(&batch),
            None => Err(super::store::StoreError::Io {
                path: config.path.display().to_string(),
                source: std::io::Error::other("not open"),
            }),
        };
        match result {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                stats
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                errors.hit(|n| tracing::warn!(error = %e, failures = n, "tracking log write failed; mail is not affected"));
                store = None; // reopen next time
            }
        }
        batch.clear();
    }
}
