//! Writes in flight: as many as the host sustains, learnt from its answers.
//!
//! Some hosts take one writer at a time and refuse the others at once instead
//! of queueing them: PowerDNS on its gsqlite3 backend answers concurrent
//! `PATCH`es with HTTP 500 `database is locked` (about half of them with 4 in
//! flight on loopback), Hetzner answers `locked` while another action runs.
//! Each refusal is retried after a backoff (100-200 ms, then more), so a fixed
//! number of writes in flight either wastes that backoff on every collision
//! or leaves a host that could take more underused.
//!
//! [`WriteWindow`] adapts the number of write attempts in flight per account,
//! additive increase / multiplicative decrease as in TCP congestion control
//! (RFC 5681 §3.1): the window starts at one write; an answer that says the
//! host is overloaded (5xx, 429) halves it (at least one write stays allowed);
//! after a run of clean writes it grows by one, up to the account's declared
//! concurrency (reached after 48 clean writes on a host that declares 4).
//! Every halving doubles the run of clean writes needed to grow again (up to
//! [`MAX_GROW_AFTER`]), so against a host that sustains one writer the window
//! settles at one and probes for a second ever more rarely: a few extra
//! requests in a run of thousands instead of one in twenty.
//!
//! A slot is held for one attempt only: a write waiting out its backoff holds
//! none, so the other writes go on meanwhile. Reads are never held here.

use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Clean writes needed to grow the window by one, at first (times the window).
pub const FIRST_GROW_AFTER: usize = 8;
/// The most clean writes (times the window) ever needed to grow by one.
pub const MAX_GROW_AFTER: usize = 1024;

/// The adaptive window of write attempts in flight for one account (see the
/// module docs). Shared by every task of the account through its HTTP client.
#[derive(Debug)]
pub struct WriteWindow {
    max: usize,
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Debug)]
struct State {
    /// Writes allowed in flight now (1..=max).
    limit: usize,
    /// Writes in flight now.
    in_flight: usize,
    /// Clean writes since the window last changed.
    clean: usize,
    /// Clean writes (times `limit`) needed to grow.
    grow_after: usize,
}

/// How a write attempt ended, for the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The host accepted it.
    Clean,
    /// The host said it is overloaded (HTTP 5xx or 429): the window shrinks.
    Overloaded,
    /// Anything else (refused as invalid, network failure): no signal.
    Neutral,
}

/// One write attempt's place in the window, held until dropped; [`WriteSlot::finish`]
/// says how the attempt ended (dropping it unfinished counts as [`WriteOutcome::Neutral`]).
#[derive(Debug)]
#[must_use = "the write holds its place until the slot is dropped"]
pub struct WriteSlot<'a> {
    window: &'a WriteWindow,
    outcome: WriteOutcome,
}

impl WriteSlot<'_> {
    /// Records how the attempt ended and frees the place.
    pub fn finish(mut self, outcome: WriteOutcome) {
        self.outcome = outcome;
    }
}

impl Drop for WriteSlot<'_> {
    fn drop(&mut self) {
        {
            let mut s = self.window.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            match self.outcome {
                WriteOutcome::Clean => {
                    s.clean += 1;
                    if s.limit < self.window.max && s.clean >= s.grow_after * s.limit {
                        s.limit += 1;
                        s.clean = 0;
                    }
                }
                WriteOutcome::Overloaded => {
                    s.limit = (s.limit / 2).max(1);
                    s.clean = 0;
                    s.grow_after = (s.grow_after * 2).min(MAX_GROW_AFTER);
                }
                WriteOutcome::Neutral => {}
            }
        }
        self.window.freed.notify_waiters();
    }
}

impl WriteWindow {
    /// A window of at most `max` writes in flight (0 is taken as 1), starting
    /// at one.
    pub fn new(max: usize) -> WriteWindow {
        WriteWindow {
            max: max.max(1),
            state: Mutex::new(State {
                limit: 1,
                in_flight: 0,
                clean: 0,
                grow_after: FIRST_GROW_AFTER,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, consistent after every statement.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes allowed in flight now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Waits until one more write may be in flight and takes its place.
    pub async fn acquire(&self) -> WriteSlot<'_> {
        loop {
            let mut freed = pin!(self.freed.notified());
            freed.as_mut().enable();
            {
                let mut s = self.lock();
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return WriteSlot {
                        window: self,
                        outcome: WriteOutcome::Neutral,
                    };
                }
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_overloaded_answer_halves_the_window_and_clean_writes_grow_it() {
        let w = WriteWindow::new(4);
        assert_eq!(w.limit(), 1, "one write at first");
        // 8 clean writes at 1, 16 at 2, 24 at 3: 4, the most.
        for (clean, limit) in [(8, 2), (16, 3), (24, 4)] {
            for _ in 0..clean - 1 {
                w.acquire().await.finish(WriteOutcome::Clean);
            }
            assert_eq!(w.limit(), limit - 1);
            w.acquire().await.finish(WriteOutcome::Clean);
            assert_eq!(w.limit(), limit);
        }
        w.acquire().await.finish(WriteOutcome::Overloaded);
        assert_eq!(w.limit(), 2);
        w.acquire().await.finish(WriteOutcome::Overloaded);
        assert_eq!(w.limit(), 1);
        w.acquire().await.finish(WriteOutcome::Overloaded);
        assert_eq!(w.limit(), 1, "one write always stays allowed");
        // Three halvings: 8 * 2^3 = 64 clean writes (times the window of 1) to grow.
        for _ in 0..63 {
            w.acquire().await.finish(WriteOutcome::Clean);
        }
        assert_eq!(w.limit(), 1);
        w.acquire().await.finish(WriteOutcome::Neutral);
        assert_eq!(w.limit(), 1, "a neutral outcome is no signal");
        w.acquire().await.finish(WriteOutcome::Clean);
        assert_eq!(w.limit(), 2);
        // Never above the account's concurrency.
        for _ in 0..10_000 {
            w.acquire().await.finish(WriteOutcome::Clean);
        }
        assert_eq!(w.limit(), 4);
    }

    #[tokio::test]
    async fn a_write_waits_while_the_window_is_full() {
        let w = std::sync::Arc::new(WriteWindow::new(2));
        let first = w.acquire().await;
        let w2 = w.clone();
        let second = tokio::spawn(async move {
            w2.acquire().await.finish(WriteOutcome::Clean);
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the window of 1 is taken");
        first.finish(WriteOutcome::Clean);
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("freed")
            .expect("joined");
    }

    #[tokio::test]
    async fn dropping_an_unfinished_slot_frees_it_without_a_signal() {
        let w = WriteWindow::new(1);
        drop(w.acquire().await);
        let _again = w.acquire().await;
        assert_eq!(w.limit(), 1);
    }
}
