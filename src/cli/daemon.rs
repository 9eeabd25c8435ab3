//! `maildns daemon`: the rotation daemon (see [`crate::daemon`]). Holds the state
//! lock for its whole life; SIGHUP reloads the configuration, SIGTERM and SIGINT
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
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_locked(&config.state_dir)?);
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
    let mut runner = Runner::new(config, store, providers, Arc::new(SystemClock))?;

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
        DaemonOptions {
            once: args.once,
            ..DaemonOptions::default()
        },
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
