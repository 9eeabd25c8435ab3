//! `maildns rotate`: one pass of DKIM rotation over the domains (for cron or a
//! systemd timer). Each domain runs until its rotation only waits; prints what
//! was done and what is next.

use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_config, print_json};
use super::publish::{EnvCredentials, Selection, selected};
use crate::accounts::connect_all;
use crate::propagation::SystemClock;
use crate::rotation::{Algorithm, RunOutcome, Runner, SqliteStore, Store, unblock};

/// `rotate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Which domains
    #[command(flatten)]
    pub selection: Selection,
    /// Start a rotation now, even if none is due
    #[arg(long)]
    pub now: bool,
    /// Clear a blocked rotation (a failed signer switch) after fixing its cause; the
    /// switch is retried in this pass, as are steps a signer probe holds
    #[arg(long)]
    pub unblock: bool,
}

#[derive(Serialize)]
struct DomainReport {
    #[serde(flatten)]
    outcome: Option<RunOutcome>,
    domain: String,
    error: Option<String>,
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let config = load_config(cli)?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_locked(&config.state_dir)?);
    let domains: Vec<_> = selected(&config, &args.selection)?
        .into_iter()
        .filter(|d| d.dkim.is_some())
        .map(|d| d.name.clone())
        .collect();
    if args.unblock {
        let now = chrono::Utc::now();
        for d in &domains {
            let mut state = store.load(d)?;
            let mut events: Vec<_> = [Algorithm::Rsa, Algorithm::Ed25519]
                .into_iter()
                .filter_map(|a| unblock(&mut state, a, now))
                .collect();
            // Steps a signer probe holds are retried now, not after their backoff.
            events.extend(crate::rotation::retry_held(&mut state, now));
            if !events.is_empty() {
                store.save(&state, &events)?;
                eprintln!("{d}: unblocked; the signer switch will be retried");
            }
        }
    }
    let creds = EnvCredentials::from_process();
    let (providers, failed_accounts) = connect_all(&config, &creds, Default::default());
    for (name, e) in &failed_accounts {
        tracing::error!("account '{name}': {e:#}");
    }
    let runner = Runner::new(config, store, providers, Arc::new(SystemClock))?;
    // Feature `test-hooks` only (enabled by the tests, never in a release
    // build): MAILDNS_TEST_CRASH_AFTER=N aborts the process (no destructors, no
    // flush: like kill -9) at the N-th step boundary, for the crash tests that
    // run this binary.
    #[cfg(feature = "test-hooks")]
    let runner = match std::env::var("MAILDNS_TEST_CRASH_AFTER")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        Some(n) => {
            let seen = std::sync::atomic::AtomicU32::new(0);
            runner.with_crash_hook(Arc::new(move |_boundary: &str| {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= n {
                    std::process::abort();
                }
                false
            }))
        }
        None => runner,
    };
    let mut reports = Vec::new();
    for d in &domains {
        let r = runner.run(d, args.now).await;
        reports.push(match r {
            Ok(o) => DomainReport {
                domain: d.to_string(),
                outcome: Some(o),
                error: None,
            },
            Err(e) => DomainReport {
                domain: d.to_string(),
                outcome: None,
                error: Some(e.to_string()),
            },
        });
    }
    if cli.json {
        print_json(&reports)?;
    } else {
        for (name, e) in &failed_accounts {
            println!("account {name}: {e:#}");
        }
        for r in &reports {
            print_human(r);
        }
        if domains.is_empty() {
            println!("no selected domain has DKIM rotation configured");
        }
    }
    let bad = reports
        .iter()
        .any(|r| r.error.is_some() || r.outcome.as_ref().is_some_and(|o| !o.blocked.is_empty()));
    Ok(if bad { Exit::Failure } else { Exit::Ok })
}

fn print_human(r: &DomainReport) {
    println!("{}", r.domain);
    if let Some(e) = &r.error {
        println!("  FAILED: {e}");
    }
    let Some(o) = &r.outcome else {
        return;
    };
    for w in &o.warnings {
        println!("  warning: {}", w.message);
    }
    for p in &o.performed {
        println!(
            "  {} {}: {}{}",
            p.action,
            p.selector.as_ref().map(|s| s.as_str()).unwrap_or("-"),
            p.result,
            if p.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.detail)
            }
        );
    }
    if o.performed.is_empty() {
        println!("  nothing to do");
    }
    for k in &o.keys {
        println!(
            "  key {} ({} {} bits): {}",
            k.selector, k.algorithm, k.bits, k.status
        );
    }
    for b in &o.blocked {
        let what = match b.kind {
            crate::rotation::BlockKind::SwitchFailed => "rotation stopped",
            crate::rotation::BlockKind::NotSigning => "switch not proven",
            crate::rotation::BlockKind::StillSigning => "retirement held",
            crate::rotation::BlockKind::Drift => "signer drift",
        };
        println!(
            "  BLOCKED: {} {what} at {}: {}",
            b.algorithm, b.selector, b.reason
        );
    }
    match o.next_due {
        Some(t) => println!("  next: {t}"),
        None if o.blocked.is_empty() => {}
        None => println!("  next: waits for an operator"),
    }
}
