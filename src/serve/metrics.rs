//! Counters of a daemon, served in the Prometheus text format on an opt-in listener
//! (`metrics = "127.0.0.1:9567"`, `GET /metrics`). Counting is a few relaxed atomic adds per
//! message; the per-ESP and per-reason maps are bounded by the rules (providers, skip reasons).

use crate::mail::outcome::{Counts, Outcome, SkipReason};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Distinct label values kept per map; beyond it they are counted as "other".
const MAX_LABELS: usize = 200;

#[derive(Default)]
pub struct Metrics {
    messages: AtomicU64,
    rewritten: AtomicU64,
    unchanged: AtomicU64,
    pixels: AtomicU64,
    spacers: AtomicU64,
    fonts: AtomicU64,
    links: AtomicU64,
    links_unwrapped: AtomicU64,
    links_cleaned: AtomicU64,
    links_opaque: AtomicU64,
    errors: AtomicU64,
    overloaded: AtomicU64,
    /// Rewrites run on the connection's thread, and those that went over their budget there.
    inline: AtomicU64,
    moved_off_inline: AtomicU64,
    /// Panics caught (in the core, or a rewrite worker that panicked): bugs.
    panics: AtomicU64,
    /// Messages passed on unchanged because of a message-wide skip, an error or overload,
    /// by reason.
    passthrough: Mutex<BTreeMap<String, u64>>,
    by_esp: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

/// How one message ended, for [`Metrics::message`].
pub enum Ended<'a> {
    Done {
        outcome: &'a Outcome<'a>,
        esp: Option<&'a str>,
    },
    Overloaded,
    Failed(&'static str),
    /// The rewrite worker itself panicked (outside the core's guard); the original went on.
    Panicked,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    if let Ok(mut m) = map.lock() {
        if let Some(n) = m.get_mut(key) {
            *n += 1;
        } else if m.len() < MAX_LABELS {
            m.insert(key.to_string(), 1);
        } else {
            *m.entry("other".into()).or_default() += 1;
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A message rewritten on its connection's thread (see `serve::inline`).
    pub fn inline(&self) {
        self.inline.fetch_add(1, Relaxed);
    }

    /// A message that went over its inline budget and was rewritten again on a rewrite thread.
    pub fn moved_off_inline(&self) {
        self.moved_off_inline.fetch_add(1, Relaxed);
    }

    /// Count one message and the time it took (queueing for a worker included).
    pub fn message(&self, ended: Ended<'_>, elapsed: Duration) {
        self.messages.fetch_add(1, Relaxed);
        match ended {
            Ended::Done { outcome, esp } => {
                let Counts {
                    pixels,
                    spacers,
                    fonts,
                    links_total,
                    links_unwrapped,
                    links_cleaned,
                    links_opaque,
                    ..
                } = outcome.counts;
                if outcome
                    .skips()
                    .any(|f| f.reason == Some(SkipReason::InternalError))
                {
                    self.panics.fetch_add(1, Relaxed);
                }
                if outcome.changed {
                    self.rewritten.fetch_add(1, Relaxed);
                } else {
                    self.unchanged.fetch_add(1, Relaxed);
                    if let Some(reason) = outcome
                        .skips()
                        .filter_map(|f| f.reason)
                        .find(|r| r.is_message_wide())
                    {
                        bump(&self.passthrough, reason.as_str());
                    }
                }
                self.pixels.fetch_add(u64::from(pixels), Relaxed);
                self.spacers.fetch_add(u64::from(spacers), Relaxed);
                self.fonts.fetch_add(u64::from(fonts), Relaxed);
                self.links.fetch_add(u64::from(links_total), Relaxed);
                self.links_unwrapped
                    .fetch_add(u64::from(links_unwrapped), Relaxed);
                self.links_cleaned
                    .fetch_add(u64::from(links_cleaned), Relaxed);
                self.links_opaque
                    .fetch_add(u64::from(links_opaque), Relaxed);
                bump(&self.by_esp, esp.unwrap_or("none"));
            }
            Ended::Overloaded => {
                self.overloaded.fetch_add(1, Relaxed);
                bump(&self.passthrough, "overload");
            }
            Ended::Failed(why) => {
                self.errors.fetch_add(1, Relaxed);
                bump(&self.passthrough, why);
            }
            Ended::Panicked => {
                self.errors.fetch_add(1, Relaxed);
                self.panics.fetch_add(1, Relaxed);
                bump(&self.passthrough, SkipReason::InternalError.as_str());
            }
        }
        let secs = elapsed.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(
            elapsed.as_micros().min(u128::from(u64::MAX)) as u64,
            Relaxed,
        );
    }

    /// The Prometheus text exposition (format 0.0.4). `log` adds the tracking-log counters.
    pub fn render(&self, log: Option<&crate::log::writer::Stats>) -> String {
        let mut o = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "trackless_messages_total",
            "Messages handed to the filter.",
            self.messages.load(Relaxed),
        );
        counter(
            "trackless_messages_rewritten_total",
            "Messages rewritten (trackers removed or neutralised).",
            self.rewritten.load(Relaxed),
        );
        counter(
            "trackless_messages_unchanged_total",
            "Messages passed on as they came (nothing to do, or a limit was reached).",
            self.unchanged.load(Relaxed),
        );
        counter(
            "trackless_pixels_removed_total",
            "Tracking pixels removed.",
            self.pixels.load(Relaxed),
        );
        counter(
            "trackless_spacers_removed_total",
            "Invisible layout images (spacers) removed; not counted as tracking.",
            self.spacers.load(Relaxed),
        );
        counter(
            "trackless_fonts_removed_total",
            "Remote fonts removed.",
            self.fonts.load(Relaxed),
        );
        counter(
            "trackless_links_total",
            "Links looked at.",
            self.links.load(Relaxed),
        );
        counter(
            "trackless_links_unwrapped_total",
            "Redirect links replaced by their destination.",
            self.links_unwrapped.load(Relaxed),
        );
        counter(
            "trackless_links_cleaned_total",
            "Links with tracking parameters removed.",
            self.links_cleaned.load(Relaxed),
        );
        counter(
            "trackless_links_opaque_total",
            "Click-tracking links that could not be unwrapped offline.",
            self.links_opaque.load(Relaxed),
        );
        counter(
            "trackless_errors_total",
            "Rewrites that failed or timed out (the message was passed on unchanged).",
            self.errors.load(Relaxed),
        );
        counter(
            "trackless_panics_total",
            "Panics caught while filtering (bugs in trackless; each message was passed on unchanged).",
            self.panics.load(Relaxed),
        );
        counter(
            "trackless_overload_total",
            "Messages that found every worker busy (the overload rule applied).",
            self.overloaded.load(Relaxed),
        );
        counter(
            "trackless_rewrites_inline_total",
            "Small messages rewritten on their connection's own thread (no hand-off to a worker).",
            self.inline.load(Relaxed),
        );
        counter(
            "trackless_rewrites_moved_total",
            "Messages that went over the short time budget of a rewrite on their connection's thread and were rewritten again on a worker.",
            self.moved_off_inline.load(Relaxed),
        );
        if let Some(s) = log {
            counter(
                "trackless_log_written_total",
                "Tracking-log records written.",
                s.written.load(Relaxed),
            );
            counter(
                "trackless_log_transactions_total",
                "Transactions that wrote them (the writer gathers records for up to 0.2 s).",
                s.transactions.load(Relaxed),
            );
            counter(
                "trackless_log_dropped_total",
                "Tracking-log records dropped: the queue was full.",
                s.dropped_full.load(Relaxed),
            );
            counter(
                "trackless_log_failed_total",
                "Tracking-log records lost: the log could not be written.",
                s.failed.load(Relaxed),
            );
        }
        labelled(
            &mut o,
            "trackless_passthrough_total",
            "Messages passed on unchanged because of a limit, an error or overload, by reason.",
            "reason",
            &self.passthrough,
        );
        labelled(
            &mut o,
            "trackless_messages_by_esp_total",
            "Messages by the email service provider that sent them (none: not attributed).",
            "esp",
            &self.by_esp,
        );
        let name = "trackless_message_duration_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Time to filter one message, waiting for a worker included.\n# TYPE {name} histogram"
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}_bucket{{le=\"{le}\"}} {}",
                self.latency_buckets[i].load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "{name}_count {count}");
        o
    }
}

fn labelled(
    o: &mut String,
    name: &str,
    help: &str,
    label: &str,
    map: &Mutex<BTreeMap<String, u64>>,
) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
    if let Ok(m) = map.lock() {
        for (k, v) in m.iter() {
            let _ = writeln!(o, "{name}{{{label}=\"{}\"}} {v}", escape(k));
        }
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serve `GET /metrics` on `addr` until the task is dropped. Anything else gets 404; a client
/// has 5 s to send its request, which may not exceed 8 KiB.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            })
            .await;
            if head.is_err() {
                return;
            }
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let path = path.split('?').next().unwrap_or("");
            let response = if (method == "GET" || method == "HEAD") && path == "/metrics" {
                let body = render();
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if method == "GET" {
                    r.push_str(&body);
                }
                r
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\ntry GET /metrics here\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Bind the metrics listener (an error names the address).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{neutralise, Policy};

    #[test]
    fn counts_and_renders() {
        let m = Metrics::new();
        let raw = b"From: a@shop.example\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<img src=\"https://t.example/o.gif\" width=1 height=1><a href=\"https://x.example/?utm_source=n&id=1\">x</a>";
        let out = neutralise(raw, &Policy::default());
        assert!(out.changed);
        m.message(
            Ended::Done {
                outcome: &out,
                esp: Some("SendGrid"),
            },
            Duration::from_millis(3),
        );
        let plain = neutralise(b"Subject: x\r\n\r\nhello\r\n", &Policy::default());
        m.message(
            Ended::Done {
                outcome: &plain,
                esp: None,
            },
            Duration::from_millis(30),
        );
        m.message(Ended::Overloaded, Duration::from_secs(10));
        m.message(Ended::Failed("timeout"), Duration::from_secs(20));
        let text = m.render(None);
        assert!(
            text.lines().any(|l| l == "trackless_panics_total 0"),
            "{text}"
        );
        for line in [
            "trackless_messages_total 4",
            "trackless_messages_rewritten_total 1",
            "trackless_messages_unchanged_total 1",
            "trackless_pixels_removed_total 1",
            "trackless_links_cleaned_total 1",
            "trackless_errors_total 1",
            "trackless_overload_total 1",
            "trackless_passthrough_total{reason=\"overload\"} 1",
            "trackless_passthrough_total{reason=\"timeout\"} 1",
            "trackless_messages_by_esp_total{esp=\"SendGrid\"} 1",
            "trackless_messages_by_esp_total{esp=\"none\"} 1",
            "trackless_message_duration_seconds_bucket{le=\"0.0025\"} 0",
            "trackless_message_duration_seconds_bucket{le=\"0.005\"} 1",
            "trackless_message_duration_seconds_bucket{le=\"0.05\"} 2",
            "trackless_message_duration_seconds_bucket{le=\"10\"} 3",
            "trackless_message_duration_seconds_bucket{le=\"+Inf\"} 4",
            "trackless_message_duration_seconds_count 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line belongs to a declared metric family.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} "))
                    || text.contains(&format!("# TYPE {name} ")),
                "{l}"
            );
        }
    }

    #[test]
    fn caught_panics_are_counted_apart_from_other_passthroughs() {
        use crate::mail::outcome::{Counts, Finding};
        let findings = vec![Finding::skip(SkipReason::InternalError, "", None)];
        let panicked = Outcome {
            bytes: std::borrow::Cow::Borrowed(b"Subject: x\r\n\r\nhi\r\n"),
            counts: Counts::from_findings(&findings),
            findings,
            header: None,
            changed: false,
            esp: Vec::new(),
            remote: Vec::new(),
        };
        let m = Metrics::new();
        m.message(
            Ended::Done {
                outcome: &panicked,
                esp: None,
            },
            Duration::from_millis(1),
        );
        let too_large = neutralise(
            b"Subject: x\r\n\r\nhello\r\n",
            &Policy {
                limits: crate::Limits {
                    max_size: 4,
                    ..crate::Limits::default()
                },
                ..Policy::default()
            },
        );
        assert!(too_large.skips().next().is_some());
        m.message(
            Ended::Done {
                outcome: &too_large,
                esp: None,
            },
            Duration::from_millis(1),
        );
        m.message(Ended::Panicked, Duration::from_millis(1));
        m.message(Ended::Failed("timeout"), Duration::from_millis(1));
        let text = m.render(None);
        for line in [
            "trackless_panics_total 2",
            "trackless_errors_total 2",
            "trackless_passthrough_total{reason=\"internal-error\"} 2",
            "trackless_passthrough_total{reason=\"timeout\"} 1",
            "# TYPE trackless_panics_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped_and_bounded() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let m = Mutex::new(BTreeMap::new());
        for i in 0..(MAX_LABELS + 10) {
            bump(&m, &format!("esp{i}"));
        }
        let m = m.lock().expect("lock");
        assert_eq!(m.len(), MAX_LABELS + 1);
        assert_eq!(m.get("other"), Some(&10));
    }
}
