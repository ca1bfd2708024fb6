//! Small messages rewritten on the connection's own thread. Handing a rewrite to a rewrite
//! thread and its result back costs two wake-ups (about four context switches a message with
//! the milter on 2 CPUs); a 50 KB newsletter takes about a millisecond to rewrite, so for such
//! messages the hand-off is a large share of the work. A message up to [`Inline::max_bytes`]
//! is therefore rewritten where it was received, one at a time per daemon, with a short time
//! budget: a message that goes over it (a hostile shape) is abandoned and rewritten again on a
//! rewrite thread with the full time limit, and for a while after that no message is tried
//! inline. The I/O of the other connections waits at most that budget.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest message tried inline (a 50 KB newsletter with room to spare).
const MAX_BYTES: usize = 256 * 1024;
/// How long an inline rewrite may take before it is abandoned.
const BUDGET: Duration = Duration::from_millis(25);
/// How long nothing is tried inline after a message went over the budget.
const PAUSE: Duration = Duration::from_secs(1);

pub struct Inline {
    /// Largest message tried inline (0: none).
    pub max_bytes: usize,
    /// The time an inline rewrite may take.
    pub budget: Duration,
    busy: AtomicBool,
    /// Milliseconds since `epoch` before which nothing is tried inline.
    paused_until: AtomicU64,
    epoch: Instant,
}

/// The right to rewrite one message inline; given back when dropped.
pub struct Turn<'a>(&'a AtomicBool);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Default for Inline {
    fn default() -> Self {
        Inline {
            max_bytes: MAX_BYTES,
            budget: BUDGET,
            busy: AtomicBool::new(false),
            paused_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Inline {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// May a message of `len` bytes be rewritten inline now? At most one at a time.
    pub fn try_enter(&self, len: usize) -> Option<Turn<'_>> {
        if len > self.max_bytes || self.now_ms() < self.paused_until.load(Ordering::Relaxed) {
            return None;
        }
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Turn(&self.busy))
    }

    /// A message went over the budget: try none inline for a while.
    pub fn over_budget(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(PAUSE.as_millis()).unwrap_or(u64::MAX));
        self.paused_until.store(until, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_small_message_at_a_time() {
        let inline = Inline::default();
        assert!(inline.try_enter(MAX_BYTES + 1).is_none(), "too large");
        let turn = inline.try_enter(50_000).expect("free");
        assert!(inline.try_enter(50_000).is_none(), "one at a time");
        drop(turn);
        assert!(inline.try_enter(50_000).is_some(), "given back");
    }

    #[test]
    fn nothing_inline_for_a_while_after_a_message_over_budget() {
        let inline = Inline::default();
        inline.over_budget();
        assert!(inline.try_enter(1_000).is_none());
        inline.paused_until.store(0, Ordering::Relaxed);
        assert!(inline.try_enter(1_000).is_some());
    }

    #[test]
    fn none_when_switched_off() {
        let inline = Inline {
            max_bytes: 0,
            ..Inline::default()
        };
        assert!(inline.try_enter(1).is_none());
    }
}
