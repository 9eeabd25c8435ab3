//! The rotation daemon: sleep until the next due action of any domain, run the
//! due domains, repeat.
//!
//! No polling of the DNS: the sleep lasts until the earliest [`crate::rotation::next_due`]
//! over all domains, capped at [`DaemonOptions::max_sleep`] (so a clock jump or
//! an outside change is noticed within the hour) and at least
//! [`DaemonOptions::min_sleep`] (so a bug can never spin). Shutdown is a future
//! passed in (as in mini-redis): it is only honoured between domains, so a
//! domain's run — its store writes, provider calls and signer switch — is
//! finished, never cut in the middle. A reload request swaps in a new
//! configuration and providers between domains; if the new configuration is
//! invalid the old one stays.
//!
//! Each active key's signer is also probed every `[signer] probe_interval`
//! (default hourly; [`Runner::probe_signers`]): drift (a signer restarted with
//! old tables, tables edited by hand, a signer gone) is saved as a blocked
//! condition that `status` shows, logged as an error, and fails the pass.
//!
//! `maildns rotate --now` run while the daemon holds the state lock queues a
//! request in the store; the sleeping daemon looks for requests every
//! [`DaemonOptions::request_poll`] (a signal would do too, but the requesting
//! process may run as another user and the lock holder may not be a daemon)
//! and runs the requested domains at once, as `rotate --now` would.
//!
//! Logging goes through `tracing` (plain lines on stderr: journald adds the
//! timestamps). systemd readiness (`READY=1`, `RELOADING=1`, `STOPPING=1`) and
//! progress (`STATUS=rotating example.com (1/3)`, then after each pass
//! `STATUS=idle: 3 domain(s), 1 failing: example.com; next action ...`) are
//! sent when `NOTIFY_SOCKET` is set. A pass in which any domain's step failed
//! counts as failed: `maildns daemon --once` then exits 1.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use tokio::sync::mpsc;

use crate::accounts::Providers;
use crate::config::Config;
use crate::rotation::{KeyStatus, Request, Runner};

/// Timing of the daemon loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonOptions {
    /// Longest sleep between passes (default 1 hour).
    pub max_sleep: Duration,
    /// Shortest sleep between passes (default 1 second).
    pub min_sleep: Duration,
    /// How often a sleeping daemon looks for requests queued in the store by
    /// `maildns rotate --now` (default 2 seconds; one small read).
    pub request_poll: Duration,
    /// Run one pass and return (`maildns daemon --once`).
    pub once: bool,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            max_sleep: Duration::from_secs(3600),
            min_sleep: Duration::from_secs(1),
            request_poll: Duration::from_secs(2),
            once: false,
        }
    }
}

/// What one pass over the domains did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Domains whose rotation ran (due, or requested).
    pub ran: usize,
    /// Domains whose step failed, waits to retry, or is blocked, with why
    /// ([`crate::rotation::RunOutcome::failures`], or the run's error).
    pub failed: Vec<(Fqdn, Vec<String>)>,
    /// The earliest next due time over all domains.
    pub next_due: Option<DateTime<Utc>>,
}

impl PassReport {
    /// The one-line progress shown as systemd `STATUS=` after a pass.
    pub fn status_line(&self, domains: usize) -> String {
        let next = self
            .next_due
            .map(|t| format!("; next action {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        if self.failed.is_empty() {
            format!("idle: {domains} domain(s), all fine{next}")
        } else {
            let names: Vec<&str> = self.failed.iter().map(|(d, _)| d.as_str()).collect();
            format!(
                "idle: {domains} domain(s), {} failing: {}{next}",
                self.failed.len(),
                names.join(", ")
            )
        }
    }
}

/// Sends a systemd notification when `NOTIFY_SOCKET` is set (errors are logged).
pub fn notify(state: sd_notify::NotifyState<'_>) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!("systemd notification failed: {e}");
    }
}

/// Domains with DKIM rotation in `config`.
fn rotating(config: &Config) -> Vec<Fqdn> {
    config
        .domains
        .iter()
        .filter(|d| d.dkim.is_some())
        .map(|d| d.name.clone())
        .collect()
}

/// Domains with a queued `rotate --now` request (taken from the store: each
/// request is done once; one of another kind is removed).
fn requested(runner: &Runner) -> Vec<Request> {
    match runner.store().take_requests() {
        Ok(reqs) => {
            let (rotate, other): (Vec<Request>, Vec<Request>) = reqs
                .into_iter()
                .partition(|r| r.what == Request::ROTATE_NOW);
            done(runner, other.iter());
            for r in &rotate {
                tracing::info!(domain = %r.domain, "rotation requested at {}", r.at);
            }
            rotate
        }
        Err(e) => {
            tracing::error!("cannot read queued requests: {e}");
            Vec::new()
        }
    }
}

/// Removes taken requests that were done (or cannot be done) from the queue.
fn done<'a>(runner: &Runner, requests: impl Iterator<Item = &'a Request>) {
    let ids: Vec<i64> = requests.map(|r| r.id).collect();
    if let Err(e) = runner.store().done_requests(&ids) {
        tracing::error!("cannot remove done requests {ids:?} from the queue: {e}");
    }
}

/// True when requests are queued (a cheap read while sleeping).
fn has_requests(runner: &Runner) -> bool {
    runner
        .store()
        .requests()
        .map(|r| !r.is_empty())
        .unwrap_or(false)
}

/// How often active signers are probed for drift (`None`: no probe-able signer).
fn probe_interval(runner: &Runner) -> Option<chrono::TimeDelta> {
    let s = runner.config().signer.as_ref()?;
    if s.confirm != crate::config::SignerConfirm::Probe {
        return None;
    }
    chrono::TimeDelta::from_std(s.probe_interval).ok()
}

/// The drift probe of `domain` when its last probe (in `probed`) is older than
/// the probe interval; returns the drift found and when the next probe is due.
async fn drift_probe(
    runner: &Runner,
    domain: &Fqdn,
    probed: &mut HashMap<Fqdn, DateTime<Utc>>,
) -> (Vec<String>, Option<DateTime<Utc>>) {
    let Some(interval) = probe_interval(runner) else {
        return (Vec::new(), None);
    };
    let now = runner.clock().now();
    let mut drift = Vec::new();
    if probed.get(domain).is_none_or(|t| *t + interval <= now) {
        match runner.probe_signers(domain).await {
            Ok(blocked) => {
                for b in blocked
                    .iter()
                    .filter(|b| b.kind == crate::rotation::BlockKind::Drift)
                {
                    let line = format!("signer drift on {}: {}", b.selector, b.reason);
                    tracing::error!(domain = %domain, "{line}");
                    drift.push(line);
                }
            }
            Err(crate::rotation::RunnerError::Store(crate::rotation::StoreError::Leased {
                ..
            })) => {
                // Another replica works the domain: probed on a later pass.
                return (drift, Some(now));
            }
            Err(e) => tracing::error!(domain = %domain, "signer probe failed: {e}"),
        }
        probed.insert(domain.clone(), now);
    }
    (drift, probed.get(domain).map(|t| *t + interval))
}

/// Runs every due or requested domain once, and the periodic signer probes.
async fn pass(
    runner: &Runner,
    stop: &mut (impl Future<Output = ()> + Unpin),
    probed: &mut HashMap<Fqdn, DateTime<Utc>>,
) -> PassReport {
    let mut report = PassReport::default();
    let domains = rotating(runner.config());
    let taken = requested(runner);
    let requested: Vec<Fqdn> = taken.iter().map(|r| r.domain.clone()).collect();
    for d in requested.iter().filter(|d| !domains.contains(d)) {
        tracing::warn!(domain = %d, "rotation requested for a domain without DKIM rotation in the configuration");
    }
    done(
        runner,
        taken.iter().filter(|r| !domains.contains(&r.domain)),
    );
    let total = domains.len();
    // One read of every state per pass (the states of domains run meanwhile
    // by another replica may be stale: a run re-reads its domain first).
    let mut states: HashMap<Fqdn, crate::rotation::DomainState> = match runner.store().load_all() {
        Ok(all) => all.into_iter().map(|s| (s.domain.clone(), s)).collect(),
        Err(e) => {
            tracing::error!("cannot read the states: {e}");
            HashMap::new()
        }
    };
    let mut limits = HashMap::new();
    for (i, domain) in domains.iter().enumerate() {
        if stopped(stop).await {
            // Requests for the domains not reached stay queued (for the
            // next replica, or this one after a restart).
            let left = &domains[i..];
            if let Err(e) = crate::rotation::store::requeue(
                runner.store().as_ref(),
                taken.iter().filter(|r| left.contains(&r.domain)),
            ) {
                tracing::error!("cannot queue the requests not done again: {e}");
            }
            return report;
        }
        let domain = domain.clone();
        let mine: Vec<&Request> = taken.iter().filter(|r| r.domain == domain).collect();
        // Still this replica's (its take may have expired during a long pass
        // and another replica taken the request over: that one does it).
        let forced = mine.iter().any(|r| match runner.store().keep_request(r) {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!(domain = %domain, "cannot keep the request: {e}");
                false
            }
        });
        let state = states
            .remove(&domain)
            .unwrap_or_else(|| crate::rotation::DomainState::new(domain.clone()));
        let due = match runner.next_due_of(&state, &mut limits) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(domain = %domain, "cannot read its state: {e}");
                report
                    .failed
                    .push((domain.clone(), vec![format!("cannot read its state: {e}")]));
                continue;
            }
        };
        let due = match due {
            Some(t) if forced || t <= runner.clock().now() => {
                report.ran += 1;
                notify(sd_notify::NotifyState::Status(&format!(
                    "rotating {domain} ({}/{total}){}",
                    i + 1,
                    if forced { ", requested" } else { "" }
                )));
                let start = if forced {
                    crate::rotation::Start::Now
                } else {
                    crate::rotation::Start::WhenDue
                };
                let result = runner.run(&domain, start).await;
                if forced
                    && !matches!(
                        result,
                        Err(crate::rotation::RunnerError::Store(
                            crate::rotation::StoreError::Leased { .. }
                        ))
                    )
                {
                    done(runner, mine.iter().copied());
                }
                match result {
                    Ok(outcome) => {
                        for w in &outcome.warnings {
                            tracing::warn!(domain = %domain, "{}", w.message);
                        }
                        let failures = outcome.failures();
                        for f in &failures {
                            tracing::error!(domain = %domain, "{f}");
                        }
                        if !failures.is_empty() {
                            report.failed.push((domain.clone(), failures));
                        }
                        outcome.next_due
                    }
                    Err(crate::rotation::RunnerError::Store(
                        crate::rotation::StoreError::Leased { holder, .. },
                    )) => {
                        // Another replica works it now; look again soon (its
                        // lease may expire if that replica stopped).
                        report.ran -= 1;
                        tracing::debug!(domain = %domain, "worked by replica {holder}; skipped");
                        if forced {
                            // The request stays for whoever runs it next.
                            if let Err(e) = crate::rotation::store::requeue(
                                runner.store().as_ref(),
                                mine.iter().copied(),
                            ) {
                                tracing::error!(domain = %domain, "cannot queue the request again: {e}");
                            }
                        }
                        Some(runner.clock().now())
                    }
                    Err(e) => {
                        tracing::error!(domain = %domain, "rotation run failed: {e}");
                        report
                            .failed
                            .push((domain.clone(), vec![format!("rotation run failed: {e}")]));
                        None
                    }
                }
            }
            other => {
                if forced {
                    // Blocked: a request cannot start anything.
                    tracing::warn!(domain = %domain, "rotation requested, but it is blocked: see `maildns status`");
                    done(runner, mine.iter().copied());
                }
                // Not run in this pass: still failing if its last step failed.
                let failures = stored_failures(runner, &domain);
                if !failures.is_empty() {
                    report.failed.push((domain.clone(), failures));
                }
                other
            }
        };
        let (drift, next_probe) = drift_probe(runner, &domain, probed).await;
        if !drift.is_empty() {
            match report.failed.iter_mut().find(|(d, _)| d == &domain) {
                Some((_, why)) => why.extend(drift),
                None => report.failed.push((domain.clone(), drift)),
            }
        }
        for t in [due, next_probe].into_iter().flatten() {
            report.next_due = Some(report.next_due.map_or(t, |e| e.min(t)));
        }
    }
    report
}

/// The failed steps (waiting to retry) and blocked rotations saved for `domain`.
fn stored_failures(runner: &Runner, domain: &Fqdn) -> Vec<String> {
    let state = match runner.store().load(domain) {
        Ok(s) => s,
        Err(e) => return vec![format!("cannot read its state: {e}")],
    };
    state
        .keys
        .iter()
        .filter(|k| k.status != KeyStatus::Destroyed)
        .filter_map(|k| {
            let f = k.failed_attempt()?;
            Some(if k.status == KeyStatus::SwitchFailed {
                format!("{} rotation blocked at {}: {f}", k.algorithm, k.selector)
            } else {
                format!("{}: attempt {} failed: {f}", k.selector, k.attempts)
            })
        })
        .collect()
}

/// Why a reload (SIGHUP) could not produce a new configuration; the daemon
/// logs it and keeps the old one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The configuration cannot be found or read, or is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    /// The configuration fails the lint gate.
    #[error(transparent)]
    Gate(#[from] crate::gate::GateError),
}

/// Polls `stop` once: true when shutdown was requested.
async fn stopped(stop: &mut (impl Future<Output = ()> + Unpin)) -> bool {
    tokio::select! {
        biased;
        () = stop => true,
        () = std::future::ready(()) => false,
    }
}

/// Runs the daemon loop until `shutdown` completes (or after one pass with
/// [`DaemonOptions::once`]); returns the report of the last pass. Each message
/// on `reloads` calls `reconfigure` and, when it succeeds, swaps the runner's
/// configuration and providers (the store and its lock stay). Requests queued
/// in the store (`rotate --now`) end the sleep within
/// [`DaemonOptions::request_poll`].
pub async fn run<R>(
    runner: &mut Runner,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
    reconfigure: R,
    options: DaemonOptions,
) -> PassReport
where
    R: Fn() -> Result<(Config, Providers), ReloadError>,
{
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = futures_fuse(shutdown);
    tracing::info!(
        "maildns daemon started: {} domain(s) with DKIM rotation",
        rotating(runner.config()).len()
    );
    notify(sd_notify::NotifyState::Ready);
    let mut last;
    let mut probed: HashMap<Fqdn, DateTime<Utc>> = HashMap::new();
    loop {
        last = pass(runner, &mut shutdown, &mut probed).await;
        let line = last.status_line(rotating(runner.config()).len());
        tracing::info!("pass done: {} domain(s) run; {line}", last.ran);
        notify(sd_notify::NotifyState::Status(&line));
        if options.once || stopped(&mut shutdown).await {
            break;
        }
        let now = runner.clock().now();
        let sleep = last
            .next_due
            .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(options.max_sleep)
            .clamp(options.min_sleep, options.max_sleep);
        tracing::debug!(
            "next pass in {}s{}",
            sleep.as_secs(),
            last.next_due
                .map(|t| format!(" (due {t})"))
                .unwrap_or_default()
        );
        let wake = tokio::time::sleep(sleep);
        tokio::pin!(wake);
        let mut poll = tokio::time::interval(options.request_poll.max(Duration::from_millis(100)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = loop {
            tokio::select! {
                () = &mut shutdown => break true,
                Some(()) = reloads.recv() => {
                    notify(sd_notify::NotifyState::Reloading);
                    match reconfigure() {
                        Ok((config, providers)) => {
                            if config.state_dir != runner.config().state_dir {
                                tracing::warn!(
                                    "state_dir changed to {}; the daemon keeps using {} until restarted",
                                    config.state_dir.display(),
                                    runner.config().state_dir.display()
                                );
                            }
                            match runner.reconfigure(config, providers) {
                                Ok(()) => tracing::info!("configuration reloaded"),
                                Err(e) => tracing::error!("reload refused, keeping the old configuration: {e}"),
                            }
                        }
                        Err(e) => tracing::error!("reload failed, keeping the old configuration: {}", crate::error::chain(&e)),
                    }
                    notify(sd_notify::NotifyState::Ready);
                    break false;
                }
                () = &mut wake => break false,
                _ = poll.tick() => {
                    if has_requests(runner) {
                        break false;
                    }
                }
            }
        };
        if stop {
            break;
        }
    }
    notify(sd_notify::NotifyState::Stopping);
    tracing::info!("maildns daemon stopped");
    last
}

/// A future that, once complete, stays complete (polling it again returns
/// `Ready` at once instead of panicking or hanging).
fn futures_fuse<F: Future<Output = ()> + Unpin>(f: F) -> Fused<F> {
    Fused { inner: Some(f) }
}

/// See [`futures_fuse`].
struct Fused<F> {
    inner: Option<F>,
}

impl<F: Future<Output = ()> + Unpin> Future for Fused<F> {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        match self.inner.as_mut() {
            None => std::task::Poll::Ready(()),
            Some(f) => match std::pin::Pin::new(f).poll(cx) {
                std::task::Poll::Ready(()) => {
                    self.inner = None;
                    std::task::Poll::Ready(())
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            },
        }
    }
}
