//! What the daemons (milter, SMTP/LMTP content filter) share: the reloadable policy, a bounded
//! pool of rewrite workers off the I/O tasks, the overload rule, the tracking log, signals.

pub mod forward;
pub mod inline;
pub mod listen;
pub mod metrics;
pub mod milter;
pub mod pool;
pub mod smtp;

use crate::core::message::neutralise_within;
use crate::core::policy::Policy;
use crate::log::{time, Keep, LogWriter, Mode, Record};
use crate::mail::outcome::{Outcome, SkipReason};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What to do when every rewrite worker is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overload {
    /// Pass the message on unchanged (mail is never delayed).
    #[default]
    Accept,
    /// Answer a temporary failure; the MTA retries later.
    Tempfail,
}

/// Rebuilds the policy on SIGHUP (rules files and options re-read).
pub type Reloader = Box<dyn Fn() -> Result<Policy, String> + Send + Sync>;

/// State shared by every connection of a daemon.
pub struct Shared {
    policy: RwLock<Arc<Policy>>,
    permits: Arc<Semaphore>,
    /// The rewrite threads, one per permit.
    pool: pool::Pool,
    /// Small messages rewritten on the connection's thread instead.
    pub inline: inline::Inline,
    /// How long a message may wait for a free worker before the overload rule applies.
    pub queue_wait: Duration,
    pub overload: Overload,
    pub log: Option<LogWriter>,
    pub keep: Keep,
    reloader: Option<Reloader>,
    /// Counters for the metrics endpoint.
    pub metrics: Arc<metrics::Metrics>,
}

/// The result of handing a message to a worker.
pub enum Rewrite {
    /// Rewritten: the new message and the value of its `X-Trackless` header.
    Changed { bytes: Vec<u8>, header: String },
    /// Nothing to change (or a limit was reached): pass the original on.
    Unchanged,
    /// Every worker was busy.
    Overloaded,
    /// The worker failed or timed out: pass the original on.
    Failed(&'static str),
}

/// The outcome of a message passed on unchanged without the core's verdict: a message-wide
/// skip saying why, over `head` (its header block, which is all the log reads).
fn passed_on<'a>(head: &'a [u8], reason: SkipReason, detail: &str) -> Outcome<'a> {
    let findings = vec![crate::mail::outcome::Finding::skip(
        reason,
        "",
        Some(detail.to_string()),
    )];
    Outcome {
        bytes: std::borrow::Cow::Borrowed(head),
        counts: crate::mail::outcome::Counts::from_findings(&findings),
        findings,
        header: None,
        changed: false,
        esp: Vec::new(),
        remote: Vec::new(),
    }
}

/// What the adapter knows about the message besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    /// MTA queue id (milter), for log lines.
    pub queue_id: Option<String>,
    /// Our own id of the connection and transaction (`7.2`: connection 7, its second message)
    /// when the MTA gives no queue id (SMTP/LMTP), for log lines.
    pub session: Option<String>,
}

/// Did the core catch a panic (a bug) while rewriting this message?
fn caught_panic(outcome: &Outcome<'_>) -> bool {
    outcome
        .skips()
        .any(|f| f.reason == Some(SkipReason::InternalError))
}

/// The message's Message-ID for a log line: unfolded, printable ASCII only, at most 200
/// characters (it comes from the sender).
fn message_id(raw: &[u8]) -> Option<String> {
    use crate::mail::header::{field_name, fields, top_block};
    let head = top_block(raw);
    let (start, end) = fields(head)
        .into_iter()
        .find(|&(s, e)| field_name(&head[s..e]).eq_ignore_ascii_case(b"message-id"))?;
    let field = &head[start..end];
    let colon = field.iter().position(|&b| b == b':')?;
    let value: String = field[colon + 1..]
        .iter()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .map(|&b| if b.is_ascii_graphic() { b as char } else { ' ' })
        .collect();
    let value = value.trim();
    (!value.is_empty()).then(|| value.chars().take(200).collect())
}

impl Shared {
    pub fn new(
        policy: Policy,
        workers: usize,
        overload: Overload,
        log: Option<LogWriter>,
        keep: Keep,
        reloader: Option<Reloader>,
    ) -> std::io::Result<Shared> {
        Ok(Shared {
            policy: RwLock::new(Arc::new(policy)),
            permits: Arc::new(Semaphore::new(workers.max(1))),
            pool: pool::Pool::new(workers.max(1), "trackless-rewrite")?,
            inline: inline::Inline::default(),
            queue_wait: Duration::from_secs(10),
            overload,
            log,
            keep,
            reloader,
            metrics: Arc::new(metrics::Metrics::new()),
        })
    }

    /// The worker pool (its available permits show how busy the daemon is).
    pub fn workers(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }

    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The metrics page: message counters plus the tracking log's.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self.log.as_ref().map(|l| l.stats()))
    }

    /// Re-read rules and options (SIGHUP). Connections in flight keep the policy they started
    /// with; a failed reload keeps the current one.
    pub fn reload(&self) {
        let Some(reloader) = &self.reloader else {
            return;
        };
        match reloader() {
            Ok(p) => {
                if let Ok(mut slot) = self.policy.write() {
                    *slot = Arc::new(p);
                }
                tracing::info!("rules and configuration reloaded");
            }
            Err(e) => tracing::error!(error = %e, "reload failed; keeping the current rules"),
        }
    }

    /// A message passed on without the core seeing it whole (the milter stops buffering a
    /// message over the size limit): counted and logged like any other, from its header
    /// block, with a message-wide skip saying why.
    pub fn passed_unread(&self, head: &[u8], envelope: &Envelope, mode: Mode, reason: SkipReason) {
        let outcome = passed_on(head, reason, "passed on without being read whole");
        self.metrics.message(
            metrics::Ended::Done {
                outcome: &outcome,
                esp: None,
            },
            Duration::ZERO,
        );
        self.log_row(&outcome, head, envelope, mode);
    }

    /// The tracking-log row of a message the worker could not finish (a panic outside the
    /// core's guard, a failure, a timeout): built from its header block, with the reason.
    /// Building it is guarded too, since what failed may have been building the row.
    fn log_unfinished(&self, raw: &[u8], envelope: &Envelope, mode: Mode, reason: SkipReason) {
        let head = crate::mail::header::top_block(raw);
        let outcome = passed_on(
            head,
            reason,
            "the rewrite did not finish; passed on unchanged",
        );
        let logged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.log_row(&outcome, head, envelope, mode)
        }));
        if logged.is_err() {
            tracing::error!("bug: the tracking-log row of a failed rewrite could not be built");
        }
    }

    fn log_row(&self, outcome: &Outcome<'_>, head: &[u8], envelope: &Envelope, mode: Mode) {
        if let Some(log) = &self.log {
            log.record(Record::new(
                head,
                outcome,
                mode,
                envelope.sender.as_deref(),
                &envelope.recipients,
                self.keep.clone(),
                time::now(),
            ));
        }
    }

    /// Rewrite `raw`, bounded in number and time: a small message on this thread within a
    /// short budget when no other is (see [`inline`]), any other on a rewrite thread. Logs one
    /// line and one tracking-log record per message.
    pub async fn rewrite(&self, raw: Arc<Vec<u8>>, envelope: &Envelope, mode: Mode) -> Rewrite {
        let start = Instant::now();
        // A burst waits briefly for a worker; a daemon that stays saturated applies the
        // overload rule instead of holding the MTA.
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => Ok(p),
            Err(_) => tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| ())
                .and_then(|r| r.map_err(|_| ())),
        };
        let Ok(permit) = permit else {
            tracing::warn!(
                queue_id = %envelope.queue_id.as_deref().unwrap_or("-"),
                session = %envelope.session.as_deref().unwrap_or("-"),
                "all rewrite workers busy: overload rule applied"
            );
            self.metrics
                .message(metrics::Ended::Overloaded, start.elapsed());
            return Rewrite::Overloaded;
        };
        let policy = self.policy();
        if let Some(turn) = self.inline.try_enter(raw.len()) {
            let budget = self.inline.budget;
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(&raw, &policy, budget, mode, envelope, self.keep.clone())
            }));
            drop(turn);
            match done {
                Ok((outcome, _)) if timed_out(&outcome) && budget < policy.limits.max_time => {
                    // Over the budget: again on a rewrite thread, with the full time limit.
                    self.inline.over_budget();
                    self.metrics.moved_off_inline();
                }
                Ok(done) => {
                    drop(permit);
                    self.metrics.inline();
                    return self.finish(&raw, envelope, mode, start, Ok(done));
                }
                Err(_) => {
                    drop(permit);
                    return self.finish(&raw, envelope, mode, start, Err(Failure::Panicked));
                }
            }
        }
        let limit = policy.limits.max_time + Duration::from_secs(5);
        let keep = self.keep.clone();
        let env = envelope.clone();
        let job_raw = raw.clone();
        let job = self.pool.run(move || {
            let _permit = permit;
            work(&job_raw, &policy, policy.limits.max_time, mode, &env, keep)
        });
        let done = match tokio::time::timeout(limit, job).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(pool::JobError::Panicked)) => Err(Failure::Panicked),
            Ok(Err(pool::JobError::Dropped)) => Err(Failure::Dropped),
            Err(_) => Err(Failure::TimedOut),
        };
        self.finish(&raw, envelope, mode, start, done)
    }

    /// Log, count and answer the end of one message's rewrite.
    fn finish(
        &self,
        raw: &[u8],
        envelope: &Envelope,
        mode: Mode,
        start: Instant,
        done: Result<(Outcome<'static>, Record), Failure>,
    ) -> Rewrite {
        let queue_id = envelope.queue_id.as_deref().unwrap_or("-");
        let session = envelope.session.as_deref().unwrap_or("-");
        let (outcome, record) = match done {
            Ok(done) => done,
            Err(Failure::Panicked) => {
                // A bug outside the core's own guard: the original goes on, and we hear of it.
                tracing::error!(
                    queue_id = %queue_id,
                    session = %session,
                    message_id = ?message_id(raw).unwrap_or_default(),
                    detail = "bug: the rewrite worker panicked; message passed on unchanged",
                    "passthrough reason=internal-error"
                );
                self.metrics
                    .message(metrics::Ended::Panicked, start.elapsed());
                self.log_unfinished(raw, envelope, mode, SkipReason::InternalError);
                return Rewrite::Failed("worker panicked");
            }
            Err(Failure::Dropped) => {
                tracing::error!(
                    queue_id = %queue_id,
                    session = %session,
                    "rewrite worker failed: message passed on unchanged"
                );
                self.metrics
                    .message(metrics::Ended::Failed("worker-failed"), start.elapsed());
                self.log_unfinished(raw, envelope, mode, SkipReason::InternalError);
                return Rewrite::Failed("worker failed");
            }
            Err(Failure::TimedOut) => {
                tracing::error!(
                    queue_id = %queue_id,
                    session = %session,
                    "rewrite timed out: message passed on unchanged"
                );
                self.metrics
                    .message(metrics::Ended::Failed("timeout"), start.elapsed());
                self.log_unfinished(raw, envelope, mode, SkipReason::TimeLimit);
                return Rewrite::Failed("timeout");
            }
        };
        if caught_panic(&outcome) {
            // The core caught a panic and kept the original: a bug we must hear about.
            tracing::error!(
                queue_id = %queue_id,
                session = %session,
                message_id = ?message_id(raw).unwrap_or_default(),
                detail = "bug: panic caught while rewriting; message passed on unchanged",
                "passthrough reason=internal-error"
            );
        }
        let c = outcome.counts;
        tracing::info!(
            queue_id = %queue_id,
            session = %session,
            sender = envelope.sender.as_deref().unwrap_or(""),
            from = record.from_addr.as_deref().unwrap_or(""),
            esp = record.esp.as_deref().unwrap_or("-"),
            changed = outcome.changed,
            pixels = c.pixels,
            spacers = c.spacers,
            fonts = c.fonts,
            links = c.links_total,
            unwrapped = c.links_unwrapped,
            opaque = c.links_opaque,
            skipped = record.skipped.as_deref().unwrap_or(""),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "message"
        );
        self.metrics.message(
            metrics::Ended::Done {
                outcome: &outcome,
                esp: record.esp.as_deref(),
            },
            start.elapsed(),
        );
        if let Some(log) = &self.log {
            log.record(record);
        }
        match (outcome.changed, outcome.header) {
            (true, Some(header)) => Rewrite::Changed {
                bytes: outcome.bytes.into_owned(),
                header,
            },
            _ => Rewrite::Unchanged,
        }
    }
}

/// Why a rewrite gave no outcome.
enum Failure {
    /// A panic outside the core's own guard.
    Panicked,
    /// The rewrite thread was gone.
    Dropped,
    TimedOut,
}

/// One message's rewrite and its tracking-log record, wherever it runs.
fn work(
    raw: &[u8],
    policy: &Policy,
    max_time: Duration,
    mode: Mode,
    envelope: &Envelope,
    keep: Keep,
) -> (Outcome<'static>, Record) {
    #[cfg(feature = "test-hooks")]
    crate::core::message::test_panic_hook("TRACKLESS_TEST_WORKER_PANIC", raw);
    let outcome = neutralise_within(raw, policy, max_time);
    let record = Record::new(
        raw,
        &outcome,
        mode,
        envelope.sender.as_deref(),
        &envelope.recipients,
        keep,
        time::now(),
    );
    (outcome.into_owned(), record)
}

/// Did the rewrite stop at its time limit?
fn timed_out(outcome: &Outcome<'_>) -> bool {
    outcome
        .skips()
        .any(|f| f.reason == Some(SkipReason::TimeLimit))
}

/// Wait for SIGTERM or SIGINT; run `on_hup` for each SIGHUP meanwhile.
pub async fn signals(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: finishing messages in flight"); return; }
            _ = int.recv() => { tracing::info!("SIGINT: finishing messages in flight"); return; }
            _ = hup.recv() => shared.reload(),
        }
    }
}

/// Split a message into its header block (with the blank line) and body.
pub fn split_message(bytes: &[u8]) -> (&[u8], &[u8]) {
    let head = crate::mail::header::top_block(bytes);
    (head, &bytes[head.len()..])
}
