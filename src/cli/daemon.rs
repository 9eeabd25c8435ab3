//! `maildns daemon`: the rotation daemon (see [`crate::daemon`]). Holds the state
//! lock for its whole life (with a shared `[state]` store: runs as one replica
//! among any number, each domain under its lease); SIGHUP reloads the configuration, SIGTERM and SIGINT
//! stop it cleanly (exit 0) after the domain being worked on. With `--once` it
//! runs one pass (the due and requested domains) and exits 1 when any domain's
//! step failed.

use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::Cli;
use super::common::{Exit, load_gated};
use super::credentials::EnvCredentials;
use crate::accounts::connect_all;
use crate::daemon::{self, DaemonOptions};
use crate::propagation::SystemClock;
use crate::rotation::{Runner, SqliteStore, Store};

/// `daemon` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Run one pass over the due (and requested) domains, then exit: 0 when
    /// every step went well, 1 when any failed
    #[arg(long)]
    pub once: bool,
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let config = load_gated(cli)?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
    #[cfg(feature = "test-hooks")]
    let test_clock = test_clock()?;
    #[cfg(feature = "test-hooks")]
    let clock: Arc<dyn crate::propagation::Clock> = match &test_clock {
        Some(c) => c.clone(),
        None => Arc::new(SystemClock),
    };
    #[cfg(not(feature = "test-hooks"))]
    let clock: Arc<dyn crate::propagation::Clock> = Arc::new(SystemClock);
    let store: Arc<dyn Store> = match &config.state {
        Some(shared) => {
            let s = super::state::connect_shared(shared)?.with_clock(clock.clone());
            s.lock_exclusive()?;
            tracing::info!(
                "shared state store {} as replica {}",
                s.url(),
                s.replica().unwrap_or_default()
            );
            Arc::new(s)
        }
        None => Arc::new(SqliteStore::open_locked(&config.state_dir)?.with_clock(clock.clone())),
    };
    crate::rotation::keyring::sweep(&config, Some(store.as_ref()))?;
    let connect = |config: &crate::config::Config| {
        let creds = EnvCredentials::from_process();
        let (providers, failed) = connect_all(config, &creds, Default::default());
        for (name, e) in &failed {
            tracing::error!("account '{name}': {e:#}");
        }
        providers
    };
    let providers = connect(&config);
    let mut runner = Runner::new(config, store, providers, clock)?;

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let _ = reload_tx.try_send(());
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
    };
    let path = cli.config.clone();
    let reconfigure = move || {
        let p = crate::config::locate(path.as_deref())?;
        let config = crate::config::load(&p)?;
        crate::gate::gate(&config)?;
        let providers = connect(&config);
        Ok((config, providers))
    };
    let last = daemon::run(
        &mut runner,
        shutdown,
        reload_rx,
        reconfigure,
        daemon_options(
            args,
            #[cfg(feature = "test-hooks")]
            test_clock.is_some(),
        ),
    )
    .await;
    if args.once {
        for (domain, failures) in &last.failed {
            for f in failures {
                outln!("{domain}: FAILED: {f}");
            }
        }
        if !last.failed.is_empty() {
            return Ok(Exit::Failure);
        }
    }
    Ok(Exit::Ok)
}

fn daemon_options(args: &Args, #[cfg(feature = "test-hooks")] simulated: bool) -> DaemonOptions {
    let options = DaemonOptions {
        once: args.once,
        ..DaemonOptions::default()
    };
    // Simulated time jumps: look at the clock often.
    #[cfg(feature = "test-hooks")]
    let options = if simulated {
        DaemonOptions {
            max_sleep: std::time::Duration::from_millis(300),
            min_sleep: std::time::Duration::from_millis(100),
            request_poll: std::time::Duration::from_millis(100),
            ..options
        }
    } else {
        options
    };
    options
}

/// Feature `test-hooks` only (enabled by the tests, never in a release build):
/// MAILDNS_TEST_CLOCK_FILE=PATH makes the daemon's clock read "now" (RFC 3339)
/// from PATH at every reading, so tests drive several daemon processes
/// through weeks of simulated time; the daemon then sleeps at most 300 ms.
#[cfg(feature = "test-hooks")]
fn test_clock() -> anyhow::Result<Option<Arc<FileClock>>> {
    let Some(path) = std::env::var_os("MAILDNS_TEST_CLOCK_FILE") else {
        return Ok(None);
    };
    let path = std::path::PathBuf::from(path);
    let now = FileClock::read(&path).context("MAILDNS_TEST_CLOCK_FILE")?;
    Ok(Some(Arc::new(FileClock(path, std::sync::Mutex::new(now)))))
}

/// A clock read from a file (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[derive(Debug)]
struct FileClock(
    std::path::PathBuf,
    std::sync::Mutex<chrono::DateTime<chrono::Utc>>,
);

#[cfg(feature = "test-hooks")]
impl FileClock {
    fn read(path: &std::path::Path) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(chrono::DateTime::parse_from_rfc3339(text.trim())
            .with_context(|| format!("{}: not an RFC 3339 time", path.display()))?
            .with_timezone(&chrono::Utc))
    }
}

#[cfg(feature = "test-hooks")]
impl crate::propagation::Clock for FileClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        // The test replaces the file atomically; should a read fail, the
        // last time read stands (time never jumps back to the real clock).
        let mut last = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(t) = FileClock::read(&self.0) {
            *last = t;
        }
        *last
    }
}
