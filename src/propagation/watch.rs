//! Polling every server until every check passes, and "safe after".
//!
//! A round asks every server about every check at once (bounded by the
//! [`Querier`]'s cap). Rounds repeat with a growing pause (2 s doubling to 30 s by
//! default) until all pass or the overall timeout expires. When all pass, the
//! report says when the change is safe to rely on: that moment plus the longest
//! time a resolver may still hold the old answer —
//! the previous TTL for a changed or removed value, the negative-caching TTL
//! `min(SOA TTL, SOA MINIMUM)` as served (RFC 2308 §5) for a new name, and any
//! larger TTL seen in an old answer while watching.
//!
//! Time comes from a [`Clock`] so callers (the rotation tests) can fake it;
//! pauses use tokio's timer. Progress goes to a [`Progress`] implementation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hickory_proto::rr::RecordType;
use maildns_providers::{Fqdn, TxtRecord};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::query::{Querier, QueryError, Rcode, SoaInfo, TxtAnswer, soa_in};
use super::{Check, Expectation, Nameserver, ServerError, evaluate, usable};

/// The source of "now".
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Receives progress as answers arrive; the CLI drives bars or log lines from it.
pub trait Progress: Send + Sync {
    /// One server's status for one check, as soon as its answer arrived.
    fn update(&self, check: &Check, server: &Nameserver, status: &ServerStatus);

    /// A round ended: `passed` of `total` (check, server) pairs passed; the next
    /// round starts after `next_in` unless the watch is over.
    fn round(&self, round: u32, passed: usize, total: usize, next_in: Option<Duration>) {
        let _ = (round, passed, total, next_in);
    }
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &Check, _: &Nameserver, _: &ServerStatus) {}
}

/// Pause between rounds: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First pause.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The pause after `current`.
    pub fn next(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.max).max(self.initial)
    }
}

/// Resolvers queried too (recursion desired), reported separately.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecursiveCheck {
    /// Resolver addresses.
    pub resolvers: Vec<SocketAddr>,
    /// Whether they must pass too before the watch succeeds.
    pub gate: bool,
}

/// How a watch runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Pauses between rounds.
    pub backoff: Backoff,
    /// Give up after this long.
    pub timeout: Duration,
    /// Resolvers to check as well.
    pub recursive: Option<RecursiveCheck>,
}

impl WatchOptions {
    /// Defaults for an interactive command: give up after 5 minutes.
    pub fn cli() -> Self {
        WatchOptions {
            backoff: Backoff::default(),
            timeout: Duration::from_secs(5 * 60),
            recursive: None,
        }
    }

    /// Defaults for the daemon: give up after 1 hour.
    pub fn daemon() -> Self {
        WatchOptions {
            timeout: Duration::from_secs(60 * 60),
            ..Self::cli()
        }
    }
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self::cli()
    }
}

/// One server's state for one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    /// The server.
    pub server: Nameserver,
    /// The check holds on this server.
    pub passed: bool,
    /// For a `Present` check that passed: whether the split into character-strings is identical too.
    pub same_split: Option<bool>,
    /// The TXT records served at the name, or why there is no usable answer.
    pub serving: Result<Vec<TxtRecord>, ServerError>,
    /// Response code, when the server answered.
    pub rcode: Option<Rcode>,
    /// TTL of the records served, in seconds.
    pub ttl: Option<u32>,
    /// SOA of a negative answer.
    pub soa: Option<SoaInfo>,
    /// The answer needed TCP.
    pub tcp: bool,
}

impl ServerStatus {
    /// Judges one answer against a check.
    pub fn judge(
        server: &Nameserver,
        check: &Check,
        answer: Result<TxtAnswer, QueryError>,
        require_authoritative: bool,
    ) -> ServerStatus {
        let mut status = ServerStatus {
            server: server.clone(),
            passed: false,
            same_split: None,
            serving: Ok(Vec::new()),
            rcode: None,
            ttl: None,
            soa: None,
            tcp: false,
        };
        match answer {
            Err(e) => status.serving = Err(ServerError::Query(e)),
            Ok(a) => {
                status.rcode = Some(a.rcode);
                status.ttl = a.ttl;
                status.tcp = a.tcp;
                match usable(server.addr, &check.name, &a, require_authoritative) {
                    Err(e) => status.serving = Err(e),
                    Ok(()) => {
                        let verdict = evaluate(&check.expectation, &a.records);
                        status.passed = verdict.passed;
                        status.same_split = verdict.same_split;
                        status.serving = Ok(a.records);
                    }
                }
                status.soa = a.soa;
            }
        }
        status
    }
}

/// All servers' states for one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The name queried.
    pub name: Fqdn,
    /// What had to be served.
    pub expectation: Expectation,
    /// Every server passed.
    pub passed: bool,
    /// Per server, in the order the servers were given.
    pub per_server: Vec<ServerStatus>,
    /// Seconds a resolver may still hold the old answer after all passed (set once propagated).
    pub hold_secs: Option<u32>,
}

/// The result of a watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchReport {
    /// Every authoritative server passed every check (and the resolvers, when gating).
    pub propagated: bool,
    /// Rounds of queries made.
    pub rounds: u32,
    /// The last round's state of every check on the authoritative servers.
    pub per_check: Vec<CheckReport>,
    /// The last round's state of every check on the resolvers (empty when none configured).
    pub recursive: Vec<CheckReport>,
    /// When all passed.
    pub passed_at: Option<DateTime<Utc>>,
    /// When resolvers can no longer hold the old answer: `passed_at` plus the longest hold.
    pub safe_after: Option<DateTime<Utc>>,
}

/// Watches checks on a set of servers.
#[derive(Clone)]
pub struct Watcher {
    querier: Querier,
    options: WatchOptions,
    clock: Arc<dyn Clock>,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("querier", &self.querier)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What was seen of old answers while watching one check.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Longest TTL of an answer that did not pass yet.
    failing_ttl: Option<u32>,
    /// Longest negative-caching TTL seen in any answer.
    negative_ttl: Option<u32>,
}

fn max_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Watcher {
    /// A watcher using the system clock and no progress reporting.
    pub fn new(querier: Querier, options: WatchOptions) -> Watcher {
        Watcher {
            querier,
            options,
            clock: Arc::new(SystemClock),
            progress: Arc::new(NoProgress),
        }
    }

    /// Uses `clock` for "now".
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Watcher {
        self.clock = clock;
        self
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Watcher {
        self.progress = progress;
        self
    }

    /// The querier in use.
    pub fn querier(&self) -> &Querier {
        &self.querier
    }

    /// One round: asks every server about every check once. `authoritative`
    /// selects direct queries (recursion off, AA flag required) or resolver
    /// queries (recursion on).
    pub async fn check(
        &self,
        checks: &[Check],
        servers: &[Nameserver],
        authoritative: bool,
    ) -> Vec<CheckReport> {
        let mut grid: Vec<Vec<Option<ServerStatus>>> =
            checks.iter().map(|_| vec![None; servers.len()]).collect();
        // Bound the tasks alive at once, not just the queries in flight.
        let spawn_permits = Arc::new(Semaphore::new(
            self.querier.options().concurrency.max(1).saturating_mul(2),
        ));
        let mut tasks = JoinSet::new();
        let record = |done: Option<(usize, usize, ServerStatus)>,
                      grid: &mut Vec<Vec<Option<ServerStatus>>>| {
            if let Some((ci, si, status)) = done
                && let (Some(check), Some(server)) = (checks.get(ci), servers.get(si))
            {
                self.progress.update(check, server, &status);
                if let Some(slot) = grid.get_mut(ci).and_then(|row| row.get_mut(si)) {
                    *slot = Some(status);
                }
            }
        };
        for (ci, check) in checks.iter().enumerate() {
            for (si, server) in servers.iter().enumerate() {
                // Collect finished tasks while waiting for room.
                let permit = loop {
                    match spawn_permits.clone().try_acquire_owned() {
                        Ok(p) => break p,
                        Err(_) => {
                            let done = tasks.join_next().await.and_then(Result::ok);
                            record(done, &mut grid);
                        }
                    }
                };
                let querier = self.querier.clone();
                let check = check.clone();
                let server = server.clone();
                tasks.spawn(async move {
                    let answer = querier.txt(server.addr, &check.name, !authoritative).await;
                    drop(permit);
                    (
                        ci,
                        si,
                        ServerStatus::judge(&server, &check, answer, authoritative),
                    )
                });
            }
        }
        while let Some(done) = tasks.join_next().await {
            record(done.ok(), &mut grid);
        }
        checks
            .iter()
            .zip(grid)
            .map(|(check, row)| {
                let per_server: Vec<ServerStatus> = row
                    .into_iter()
                    .zip(servers)
                    .map(|(slot, server)| {
                        slot.unwrap_or_else(|| ServerStatus {
                            server: server.clone(),
                            passed: false,
                            same_split: None,
                            serving: Err(ServerError::Query(QueryError::Failed {
                                server: server.addr,
                                name: check.name.to_string(),
                                qtype: "TXT".into(),
                                tcp: false,
                                message: "the query task did not finish".into(),
                            })),
                            rcode: None,
                            ttl: None,
                            soa: None,
                            tcp: false,
                        })
                    })
                    .collect();
                CheckReport {
                    name: check.name.clone(),
                    expectation: check.expectation.clone(),
                    passed: !per_server.is_empty() && per_server.iter().all(|s| s.passed),
                    per_server,
                    hold_secs: None,
                }
            })
            .collect()
    }

    /// Polls until every server passes every check, or the timeout.
    ///
    /// With no servers nothing can pass: the report says not propagated.
    /// When the name was reached through a CNAME, put the CNAME's target in
    /// [`Check::name`].
    pub async fn watch(&self, checks: &[Check], servers: &[Nameserver]) -> WatchReport {
        let start = tokio::time::Instant::now();
        let deadline = start + self.options.timeout;
        let resolvers: Vec<Nameserver> = self
            .options
            .recursive
            .as_ref()
            .map(|r| {
                r.resolvers
                    .iter()
                    .copied()
                    .map(Nameserver::from_addr)
                    .collect()
            })
            .unwrap_or_default();
        let gate = self.options.recursive.as_ref().is_some_and(|r| r.gate);
        let mut seen = vec![Seen::default(); checks.len()];
        let mut delay = self.options.backoff.initial;
        let mut rounds = 0u32;
        loop {
            rounds = rounds.saturating_add(1);
            let per_check = self.check(checks, servers, true).await;
            for (report, seen) in per_check.iter().zip(seen.iter_mut()) {
                observe(report, seen);
            }
            let recursive = if resolvers.is_empty() {
                Vec::new()
            } else {
                self.check(checks, &resolvers, false).await
            };
            let auth_ok = !servers.is_empty() && per_check.iter().all(|c| c.passed);
            let rec_ok = !gate || recursive.iter().all(|c| c.passed);
            let total = checks.len() * servers.len();
            let passed = per_check
                .iter()
                .map(|c| c.per_server.iter().filter(|s| s.passed).count())
                .sum();
            if auth_ok && rec_ok {
                self.progress.round(rounds, passed, total, None);
                let passed_at = self.clock.now();
                let mut per_check = per_check;
                let mut longest = 0u32;
                for ((report, check), seen) in per_check.iter_mut().zip(checks).zip(&seen) {
                    let hold = self.hold(check, seen, servers).await;
                    longest = longest.max(hold);
                    report.hold_secs = Some(hold);
                }
                return WatchReport {
                    propagated: true,
                    rounds,
                    per_check,
                    recursive,
                    passed_at: Some(passed_at),
                    safe_after: Some(passed_at + chrono::Duration::seconds(i64::from(longest))),
                };
            }
            let now = tokio::time::Instant::now();
            if now >= deadline || servers.is_empty() {
                self.progress.round(rounds, passed, total, None);
                return WatchReport {
                    propagated: false,
                    rounds,
                    per_check,
                    recursive,
                    passed_at: None,
                    safe_after: None,
                };
            }
            let pause = delay.min(deadline - now);
            self.progress.round(rounds, passed, total, Some(pause));
            tokio::time::sleep(pause).await;
            delay = self.options.backoff.next(delay);
        }
    }

    /// Seconds a resolver may still hold the old answer for `check`.
    async fn hold(&self, check: &Check, seen: &Seen, servers: &[Nameserver]) -> u32 {
        let base = match (&check.expectation, check.previous_ttl) {
            (_, Some(ttl)) => Some(ttl),
            (Expectation::Present(_), None) => match seen.negative_ttl {
                Some(n) => Some(n),
                None => self.negative_ttl(&check.name, servers).await,
            },
            (Expectation::Absent(_), None) => None,
        };
        max_opt(base, seen.failing_ttl).unwrap_or(0)
    }

    /// The largest negative-caching TTL the servers serve for `name`: asks
    /// `SOA? name` (the SOA itself at the apex, the zone's SOA in the authority
    /// section below it).
    pub async fn negative_ttl(&self, name: &Fqdn, servers: &[Nameserver]) -> Option<u32> {
        let mut longest = None;
        for server in servers {
            if let Ok((response, _)) = self
                .querier
                .query(server.addr, name, RecordType::SOA, false)
                .await
                && let Some(soa) =
                    soa_in(&response.answers).or_else(|| soa_in(&response.authorities))
            {
                longest = max_opt(longest, Some(soa.negative_ttl()));
            }
        }
        longest
    }
}

/// Records what a round shows of old answers.
fn observe(report: &CheckReport, seen: &mut Seen) {
    for status in &report.per_server {
        let negative = status.soa.as_ref().map(SoaInfo::negative_ttl);
        seen.negative_ttl = max_opt(seen.negative_ttl, negative);
        if status.passed {
            continue;
        }
        if let Ok(records) = &status.serving {
            let ttl = if records.is_empty() {
                negative
            } else {
                status.ttl
            };
            seen.failing_ttl = max_opt(seen.failing_ttl, ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let mut d = b.initial;
        let mut seen = vec![d];
        for _ in 0..6 {
            d = b.next(d);
            seen.push(d);
        }
        let secs: Vec<u64> = seen.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn observe_keeps_the_longest_old_ttl() {
        let name = Fqdn::parse("s._domainkey.example.test").unwrap();
        let server = Nameserver::from_addr("127.0.0.1:53".parse().unwrap());
        let status = |passed, records: Vec<TxtRecord>, ttl, soa| ServerStatus {
            server: server.clone(),
            passed,
            same_split: None,
            serving: Ok(records),
            rcode: Some(Rcode::NoError),
            ttl,
            soa,
            tcp: false,
        };
        let soa = SoaInfo {
            zone: "example.test".into(),
            ttl: 3600,
            minimum: 120,
            serial: 7,
        };
        let report = CheckReport {
            name,
            expectation: Expectation::Present(TxtRecord::from_value(b"x")),
            passed: false,
            per_server: vec![
                status(false, vec![], None, Some(soa)),
                status(false, vec![TxtRecord::from_value(b"old")], Some(900), None),
                status(true, vec![TxtRecord::from_value(b"x")], Some(5000), None),
            ],
            hold_secs: None,
        };
        let mut seen = Seen::default();
        observe(&report, &mut seen);
        assert_eq!(seen.negative_ttl, Some(120));
        // the passing server's TTL is the new answer's, not an old one
        assert_eq!(seen.failing_ttl, Some(900));
    }
}
