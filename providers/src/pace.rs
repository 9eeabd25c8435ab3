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
//! twice the limit. Every limit that counts a request is checked and recorded
//! in one step under one lock, at the instant the request may go, so a wait on
//! one limit (deSEC's 15/min) never bunches requests against another (2/s).
//!
//! Written here rather than with `governor`: governor's limiters are GCRA token
//! buckets (burst plus steady refill, the double-window problem above) and
//! cannot take a cell from several limiters at the same instant.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::{RateLimit, RateMethods, RateScope};

/// Sliding-window rate limiting shared by every task of one account.
#[derive(Debug)]
pub struct Pacer {
    limits: Vec<RateLimit>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Send times within the window, one queue per account-scoped limit (by
    /// index into `limits`; zone-scoped entries stay empty).
    account: Vec<VecDeque<Instant>>,
    /// Per zone (lowercased apex, `""` when the caller named none): one queue
    /// per limit index (account-scoped entries stay empty).
    zones: HashMap<String, Vec<VecDeque<Instant>>>,
    /// Number of zones after the last sweep of idle ones.
    swept: usize,
}

/// Extra time added to each window so that requests the host receives a little
/// closer together than they were sent still fit: 2 % of the window.
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
                account: vec![VecDeque::new(); n],
                ..State::default()
            }),
        }
    }

    /// The limits kept to.
    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// Waits until a request (`write`: POST, PUT, PATCH or DELETE) for `zone`
    /// (`None`: not known; zone-scoped limits then count it in one bucket shared
    /// by all such requests) fits every limit that counts it, and records it as
    /// sent now.
    pub async fn acquire(&self, zone: Option<&str>, write: bool) {
        if !self.limits.iter().any(|l| l.methods.counts(write)) {
            return;
        }
        let key = zone
            .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        loop {
            let ready = match self.try_take(&key, write) {
                None => return,
                Some(at) => at,
            };
            tokio::time::sleep_until(ready).await;
        }
    }

    /// Records a request now and returns `None` when every limit has room;
    /// otherwise the earliest instant at which all of them may have room.
    fn try_take(&self, zone: &str, write: bool) -> Option<Instant> {
        let Ok(mut st) = self.state.lock() else {
            // A panic while holding the lock left nothing half-done worth
            // protecting: the queues only ever grow by whole entries.
            return None;
        };
        let now = Instant::now();
        let st = &mut *st;
        let n = self.limits.len();
        if self.limits.iter().any(|l| l.scope == RateScope::Zone) {
            st.zones
                .entry(zone.to_string())
                .or_insert_with(|| vec![VecDeque::new(); n]);
        }
        let mut ready = now;
        for (i, limit) in self.limits.iter().enumerate() {
            if !limit.methods.counts(write) {
                continue;
            }
            let w = window(limit);
            let q = match limit.scope {
                RateScope::Account => &mut st.account[i],
                RateScope::Zone => match st.zones.get_mut(zone) {
                    Some(qs) => &mut qs[i],
                    None => continue,
                },
            };
            while q.front().is_some_and(|&t| t + w <= now) {
                q.pop_front();
            }
            let cap = limit.requests.max(1) as usize;
            if q.len() >= cap {
                ready = ready.max(q[q.len() - cap] + w);
            }
        }
        if ready > now {
            return Some(ready);
        }
        for (i, limit) in self.limits.iter().enumerate() {
            if !limit.methods.counts(write) {
                continue;
            }
            match limit.scope {
                RateScope::Account => st.account[i].push_back(now),
                RateScope::Zone => {
                    if let Some(qs) = st.zones.get_mut(zone) {
                        qs[i].push_back(now);
                    }
                }
            }
        }
        // Forget zones whose windows have all passed, now and then.
        if st.zones.len() > 2 * st.swept + 64 {
            let limits = &self.limits;
            st.zones.retain(|_, qs| {
                qs.iter()
                    .zip(limits)
                    .any(|(q, l)| q.back().is_some_and(|&t| t + window(l) > now))
            });
            st.swept = st.zones.len();
        }
        None
    }

    /// How long pacing alone makes `zones` zones take when each needs `reads`
    /// read requests and `writes` write requests, and the limit that binds
    /// (`None`: no limit makes it take any time). A lower bound: the time the
    /// requests take themselves is not counted.
    pub fn estimate(&self, zones: usize, reads: usize, writes: usize) -> Option<Estimate> {
        let mut best: Option<Estimate> = None;
        for limit in &self.limits {
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
            p.acquire(zone, write).await;
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
        p.acquire(Some("a.example."), true).await;
        p.acquire(Some("A.example"), true).await;
        p.acquire(Some("b.example"), true).await;
        // Two in a.example and one in b.example: the zone limits have room for
        // b.example but the account's 3/s does not.
        assert_eq!(start.elapsed(), Duration::ZERO);
        p.acquire(Some("b.example"), true).await;
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
                    p.acquire(None, true).await;
                    ts.push(start.elapsed());
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
