//! The rotation daemon: sleep until the next due action of any domain, run the
//! due domains, repeat.
//!
//! No polling: the sleep lasts until the earliest [`crate::rotation::next_due`]
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
//! condition that `status` shows, and logged as an error.
//!
//! Logging goes through `tracing` (plain lines on stderr: journald adds the
//! timestamps). systemd readiness (`READY=1`, `RELOADING=1`, `STOPPING=1`) is
//! sent when `NOTIFY_SOCKET` is set.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use tokio::sync::mpsc;

use crate::accounts::Providers;
use crate::config::Config;
use crate::rotation::Runner;

/// Timing of the daemon loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonOptions {
    /// Longest sleep between passes (default 1 hour).
    pub max_sleep: Duration,
    /// Shortest sleep between passes (default 1 second).
    pub min_sleep: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            max_sleep: Duration::from_secs(3600),
            min_sleep: Duration::from_secs(1),
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

/// How often active signers are probed for drift (`None`: no probe-able signer).
fn probe_interval(runner: &Runner) -> Option<chrono::TimeDelta> {
    let s = runner.config().signer.as_ref()?;
    if s.confirm != crate::config::SignerConfirm::Probe {
        return None;
    }
    chrono::TimeDelta::from_std(s.probe_interval).ok()
}

/// Runs every due domain once, and the drift probe of every domain whose last
/// probe (in `probed`) is older than the probe interval; returns the earliest
/// next due time (rotation or probe).
async fn pass(
    runner: &Runner,
    stop: &mut (impl Future<Output = ()> + Unpin),
    probed: &mut HashMap<Fqdn, DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let mut earliest: Option<DateTime<Utc>> = None;
    for domain in rotating(runner.config()) {
        if stopped(stop).await {
            return None;
        }
        let due = match runner.next_due(&domain) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(domain = %domain, "cannot read its state: {e}");
                continue;
            }
        };
        let due = match due {
            Some(t) if t <= runner.clock().now() => match runner.run_once(&domain).await {
                Ok(outcome) => {
                    for b in &outcome.blocked {
                        tracing::error!(
                            domain = %domain,
                            "{} rotation blocked at {}: {}",
                            b.algorithm,
                            b.selector,
                            b.reason
                        );
                    }
                    outcome.next_due
                }
                Err(e) => {
                    tracing::error!(domain = %domain, "rotation run failed: {e}");
                    None
                }
            },
            other => other,
        };
        if let Some(t) = due {
            earliest = Some(earliest.map_or(t, |e| e.min(t)));
        }
        if let Some(interval) = probe_interval(runner) {
            let now = runner.clock().now();
            let next = probed.get(&domain).map(|t| *t + interval);
            if next.is_none_or(|t| t <= now) {
                match runner.probe_signers(&domain).await {
                    Ok(blocked) => {
                        for b in blocked
                            .iter()
                            .filter(|b| b.kind == crate::rotation::BlockKind::Drift)
                        {
                            tracing::error!(domain = %domain, "signer drift on {}: {}", b.selector, b.reason);
                        }
                    }
                    Err(e) => tracing::error!(domain = %domain, "signer probe failed: {e}"),
                }
                probed.insert(domain.clone(), now);
            }
            if let Some(t) = probed.get(&domain).map(|t| *t + interval) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
    }
    earliest
}

/// Polls `stop` once: true when shutdown was requested.
async fn stopped(stop: &mut (impl Future<Output = ()> + Unpin)) -> bool {
    tokio::select! {
        biased;
        () = stop => true,
        () = std::future::ready(()) => false,
    }
}

/// Runs the daemon loop until `shutdown` completes. Each message on `reloads`
/// calls `reconfigure` and, when it succeeds, swaps the runner's configuration
/// and providers (the store and its lock stay).
pub async fn run<R>(
    runner: &mut Runner,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
    reconfigure: R,
    options: DaemonOptions,
) where
    R: Fn() -> anyhow::Result<(Config, Providers)>,
{
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = futures_fuse(shutdown);
    tracing::info!(
        "maildns daemon started: {} domain(s) with DKIM rotation",
        rotating(runner.config()).len()
    );
    notify(sd_notify::NotifyState::Ready);
    let mut probed: HashMap<Fqdn, DateTime<Utc>> = HashMap::new();
    loop {
        let earliest = pass(runner, &mut shutdown, &mut probed).await;
        if stopped(&mut shutdown).await {
            break;
        }
        let now = runner.clock().now();
        let sleep = earliest
            .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(options.max_sleep)
            .clamp(options.min_sleep, options.max_sleep);
        tracing::debug!(
            "next pass in {}s{}",
            sleep.as_secs(),
            earliest.map(|t| format!(" (due {t})")).unwrap_or_default()
        );
        tokio::select! {
            () = &mut shutdown => break,
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
                    Err(e) => tracing::error!("reload failed, keeping the old configuration: {e:#}"),
                }
                notify(sd_notify::NotifyState::Ready);
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
    notify(sd_notify::NotifyState::Stopping);
    tracing::info!("maildns daemon stopped");
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
