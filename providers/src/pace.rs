//! Pacing: every request of an account waits until it fits all the rate limits
//! its host documents ([`crate::Profile::rate_limits`]), so a long run never
//! provokes HTTP 429 on purpose. The HTTP layer ([`crate::http::HttpClient`])
//! holds one [`Pacer`] per connected account and asks it before each attempt;
//! a 429 that comes anyway is still retried after its `Retry-After`.
//!
//! Each limit is kept as a sliding window ("at most `requests` in any `per`"),
//! which is how hosts count (deSEC's throttles keep a history of request times;
//! Cloudflare counts 1,200 per 5 minutes): a token bucket that refills steadily
//! would let a full bucket's burst and the refill both into one window, nearly
//! twice the limit. Every limit that counts a request is checked and taken in
//! one step under one lock, at the instant the request may go, so a wait on one
//! limit (deSEC's 15/min) never bunches requests against another (2/s).
//!
//! A request holds its place in every window from the moment it is sent until
//! `per` after its answer came back (or it was given up): the host counted it at
//! some instant in between, so however late or early it arrived, the next
//! request the window lets go arrives after the host's window for it has passed.
//! This costs one round trip per window and never depends on clocks or network
//! delays agreeing.
//!
//! Written here rather than with `governor`: governor's limiters are GCRA token
//! buckets (burst plus steady refill, the double-window problem above), cannot
//! take a cell from several limiters at the same instant, and count a request
//! when it is let go rather than when its answer is back.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{RateLimit, RateMethods, RateScope};

/// Sliding-window rate limiting shared by every task of one account.
#[derive(Debug)]
pub struct Pacer {
    limits: Vec<RateLimit>,
    state: Mutex<State>,
    /// Woken when a request finishes (a place may free up later than computed).
    finished: Notify,
}

/// One limit's window (for the account, or for one zone).
#[derive(Debug, Clone, Default)]
struct Window {
    /// When each finished request still inside the window finished, oldest first.
    done: VecDeque<Instant>,
    /// Requests sent and not finished yet.
    in_flight: usize,
}

#[derive(Debug, Default)]
struct State {
    /// One window per limit (by index into `limits`) for account-scoped limits
    /// (zone-scoped entries stay empty).
    account: Vec<Window>,
    /// Per zone (lowercased apex, `""` when the caller named none): one window
    /// per limit index (account-scoped entries stay empty).
    zones: HashMap<String, Vec<Window>>,
    /// Number of zones after the last sweep of idle ones.
    swept: usize,
}

/// A request's places in its windows, held until it finishes: dropping it
/// (answer received, error, timeout, cancellation) starts the `per` after
/// which each place is free again.
#[derive(Debug)]
#[must_use = "the request holds its place until the ticket is dropped"]
pub struct Ticket<'a> {
    pacer: Option<&'a Pacer>,
    zone: String,
    write: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let Some(pacer) = self.pacer else {
            return;
        };
        if let Ok(mut st) = pacer.state.lock() {
            let now = Instant::now();
            let st = &mut *st;
            for (i, limit) in pacer.limits.iter().enumerate() {
                if !limit.methods.counts(self.write) {
                    continue;
                }
                let w = match limit.scope {
                    RateScope::Account => st.account.get_mut(i),
                    RateScope::Zone => st.zones.get_mut(&self.zone).and_then(|z| z.get_mut(i)),
                };
                if let Some(w) = w {
                    w.in_flight = w.in_flight.saturating_sub(1);
                    w.done.push_back(now);
                }
            }
        }
        pacer.finished.notify_waiters();
    }
}

/// Extra time added to each window: 2 % (the hosts' own clocks and windows are
/// not ours to the millisecond).
fn window(limit: &RateLimit) -> Duration {
    limit.per + limit.per / 50
}

impl Pacer {
    /// A pacer keeping to every limit in `limits` (none: never waits).
    pub fn new(limits: Vec<RateLimit>) -> Pacer {
        let n = limits.len();
        Pacer {
            limits,
            state: Mutex::new(State {
                account: vec![Window::default(); n],
                ..State::default()
            }),
            finished: Notify::new(),
        }
    }

    /// The limits kept to.
    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// Waits until a request (`write`: POST, PUT, PATCH or DELETE) for `zone`
    /// (`None`: not known; zone-scoped limits then count it in one window shared
    /// by all such requests) fits every limit that counts it, and takes its place
    /// in each; the place is held until the returned ticket is dropped, then for
    /// the limit's `per`.
    pub async fn acquire(&self, zone: Option<&str>, write: bool) -> Ticket<'_> {
        if !self.limits.iter().any(|l| l.methods.counts(write)) {
            return Ticket {
                pacer: None,
                zone: String::new(),
                write,
            };
        }
        let zone = zone
            .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        loop {
            // Registered before the check, so a request finishing in between
            // is not missed.
            let mut finished = pin!(self.finished.notified());
            finished.as_mut().enable();
            match self.try_take(&zone, write) {
                Ok(()) => {
                    return Ticket {
                        pacer: Some(self),
                        zone,
                        write,
                    };
                }
                Err(Some(at)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = finished => {}
                    }
                }
                Err(None) => finished.await,
            }
        }
    }

    /// Takes a place in every window that counts the request, or says when to
    /// look again: `Err(Some(t))` when a place frees at `t` (or earlier, as a
    /// request in flight finishes), `Err(None)` when only a request in flight
    /// finishing can free one.
    fn try_take(&self, zone: &str, write: bool) -> Result<(), Option<Instant>> {
        let Ok(mut st) = self.state.lock() else {
            // Another thread panicked holding the lock: pacing gives way rather
            // than stopping every request of the account.
            return Ok(());
        };
        let now = Instant::now();
        let st = &mut *st;
        let n = self.limits.len();
        if self.limits.iter().any(|l| l.scope == RateScope::Zone) {
            st.zones
                .entry(zone.to_string())
                .or_insert_with(|| vec![Window::default(); n]);
        }
        let mut ready: Option<Instant> = Some(now);
        for (i, limit) in self.limits.iter().enumerate() {
            if !limit.methods.counts(write) {
                continue;
            }
            let w = window(limit);
            let Some(q) = pick(st, i, limit.scope, zone) else {
                continue;
            };
            while q.done.front().is_some_and(|&t| t + w <= now) {
                q.done.pop_front();
            }
            let cap = limit.requests.max(1) as usize;
            let used = q.in_flight + q.done.len();
            if used >= cap {
                // The (used - cap + 1)-th oldest finished one must leave the
                // window; if there are not that many, requests in flight must
                // finish first.
                let k = used - cap;
                ready = match (ready, q.done.get(k)) {
                    (Some(r), Some(&t)) => Some(r.max(t + w)),
                    _ => None,
                };
            }
        }
        match ready {
            Some(t) if t <= now => {}
            other => return Err(other),
        }
        for (i, limit) in self.limits.iter().enumerate() {
            if limit.methods.counts(write)
                && let Some(q) = pick(st, i, limit.scope, zone)
            {
                q.in_flight += 1;
            }
        }
        // Forget zones whose windows are all empty, now and then.
        if st.zones.len() > 2 * st.swept + 64 {
            let limits = &self.limits;
            st.zones.retain(|_, qs| {
                qs.iter().zip(limits).any(|(q, l)| {
                    q.in_flight > 0 || q.done.back().is_some_and(|&t| t + window(l) > now)
                })
            });
            st.swept = st.zones.len();
        }
        Ok(())
    }

    /// [`estimate`] with this pacer's limits.
    pub fn estimate(&self, zones: usize, reads: usize, writes: usize) -> Option<Estimate> {
        estimate(&self.limits, zones, reads, writes)
    }
}

/// The window of limit `i` for `zone` (account-scoped limits: the account's).
fn pick<'s>(st: &'s mut State, i: usize, scope: RateScope, zone: &str) -> Option<&'s mut Window> {
    match scope {
        RateScope::Account => st.account.get_mut(i),
        RateScope::Zone => st.zones.get_mut(zone).and_then(|z| z.get_mut(i)),
    }
}

/// How long pacing alone under `limits` makes `zones` zones take when each needs
/// `reads` read requests and `writes` write requests, and the limit that binds
/// (`None`: no limit makes it take any time). A lower bound: the time the
/// requests take themselves is not counted.
pub fn estimate(
    limits: &[RateLimit],
    zones: usize,
    reads: usize,
    writes: usize,
) -> Option<Estimate> {
    let mut best: Option<Estimate> = None;
    for limit in limits {
        let per_zone = match limit.methods {
            RateMethods::All => reads + writes,
            RateMethods::Writes => writes,
            RateMethods::Reads => reads,
        };
        let count = match limit.scope {
            RateScope::Account => per_zone.saturating_mul(zones),
            RateScope::Zone => per_zone,
        };
        let cap = limit.requests.max(1) as usize;
        if count <= cap {
            continue;
        }
        // The first `cap` go at once, then `cap` more each window.
        let windows = (count - 1) / cap;
        let time = limit
            .per
            .saturating_mul(u32::try_from(windows).unwrap_or(u32::MAX));
        if best.as_ref().is_none_or(|b| time > b.duration) {
            best = Some(Estimate {
                duration: time,
                limit: *limit,
                requests: count,
            });
        }
    }
    best
}

/// What [`Pacer::estimate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Time pacing alone takes.
    pub duration: Duration,
    /// The limit that binds.
    pub limit: RateLimit,
    /// Requests that limit counts (for the whole account, or per zone).
    pub requests: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(requests: u32, secs: u64, scope: RateScope, methods: RateMethods) -> RateLimit {
        RateLimit {
            requests,
            per: Duration::from_secs(secs),
            scope,
            methods,
        }
    }

    /// Sends `n` requests one after another, returning their send times
    /// relative to the start (paused clock: exact).
    async fn times(p: &Pacer, n: usize, zone: Option<&str>, write: bool) -> Vec<Duration> {
        let start = Instant::now();
        let mut out = Vec::new();
        for _ in 0..n {
            drop(p.acquire(zone, write).await);
            out.push(start.elapsed());
        }
        out
    }

    /// At most `cap` of `ts` in any window of `w`.
    fn max_in_window(ts: &[Duration], w: Duration) -> usize {
        (0..ts.len())
            .map(|i| ts[i..].iter().take_while(|&&t| t < ts[i] + w).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn five_per_second_sends_a_burst_then_one_window_later() {
        let p = Pacer::new(vec![RateLimit::account(5, Duration::from_secs(1))]);
        let ts = times(&p, 12, None, false).await;
        assert!(ts[..5].iter().all(|t| *t == Duration::ZERO), "{ts:?}");
        assert_eq!(ts[5], Duration::from_millis(1020));
        assert_eq!(ts[10], Duration::from_millis(2040));
        assert!(max_in_window(&ts, Duration::from_secs(1)) <= 5);
    }

    #[tokio::test(start_paused = true)]
    async fn every_limit_holds_at_once_and_writes_only_count_writes() {
        // deSEC's per-domain writes: 2/s and 15/min.
        let p = Pacer::new(vec![
            lim(2, 1, RateScope::Zone, RateMethods::Writes),
            lim(15, 60, RateScope::Zone, RateMethods::Writes),
        ]);
        let ts = times(&p, 17, Some("a.example"), true).await;
        assert!(max_in_window(&ts, Duration::from_secs(1)) <= 2, "{ts:?}");
        assert!(max_in_window(&ts, Duration::from_secs(60)) <= 15, "{ts:?}");
        // The 16th waits for the minute, not for the second.
        assert!(ts[15] >= Duration::from_secs(60), "{ts:?}");
        // Reads are not counted by write limits.
        let r = times(&p, 20, Some("a.example"), false).await;
        assert_eq!(r.last(), Some(&Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn zones_are_counted_apart_and_the_account_together() {
        let p = Pacer::new(vec![
            lim(2, 1, RateScope::Zone, RateMethods::All),
            lim(3, 1, RateScope::Account, RateMethods::All),
        ]);
        let start = Instant::now();
        drop(p.acquire(Some("a.example."), true).await);
        drop(p.acquire(Some("A.example"), true).await);
        drop(p.acquire(Some("b.example"), true).await);
        // Two in a.example and one in b.example: the zone limits have room for
        // b.example but the account's 3/s does not.
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(p.acquire(Some("b.example"), true).await);
        assert_eq!(start.elapsed(), Duration::from_millis(1020));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_tasks_share_the_limit() {
        let p = std::sync::Arc::new(Pacer::new(vec![RateLimit::account(
            5,
            Duration::from_secs(1),
        )]));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                let mut ts = Vec::new();
                for _ in 0..10 {
                    let t = p.acquire(None, true).await;
                    ts.push(start.elapsed());
                    // An answer after 10 ms.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    drop(t);
                }
                ts
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        assert_eq!(all.len(), 40);
        assert!(max_in_window(&all, Duration::from_secs(1)) <= 5, "{all:?}");
        // 40 requests at 5 per window: 7 more windows after the first.
        assert!(*all.last().unwrap() < Duration::from_secs(8), "{all:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_place_is_held_until_the_answer_then_for_the_window() {
        let p = Pacer::new(vec![RateLimit::account(2, Duration::from_secs(1))]);
        let start = Instant::now();
        let a = p.acquire(None, false).await;
        let b = p.acquire(None, false).await;
        // Both answers take 3 s: the third request waits for the first answer
        // plus the window, not for the window after sending.
        let third = async {
            drop(p.acquire(None, false).await);
            start.elapsed()
        };
        let answers = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(a);
            drop(b);
        };
        let (at, ()) = tokio::join!(third, answers);
        assert_eq!(at, Duration::from_millis(4020));
    }

    #[test]
    fn estimate_names_the_binding_limit() {
        let p = Pacer::new(vec![RateLimit::account(5, Duration::from_secs(1))]);
        let e = p.estimate(1000, 1, 1).unwrap();
        assert_eq!(e.requests, 2000);
        assert_eq!(e.duration, Duration::from_secs(399));
        assert!(p.estimate(2, 1, 1).is_none());
        let desec = Pacer::new(vec![
            lim(2, 1, RateScope::Zone, RateMethods::Writes),
            lim(50, 60, RateScope::Account, RateMethods::Reads),
        ]);
        let e = desec.estimate(1000, 1, 1).unwrap();
        assert_eq!(e.limit.methods, RateMethods::Reads);
        assert_eq!(e.duration, Duration::from_secs(19 * 60));
    }
}
