//! `maildns rotate`: one pass of DKIM rotation over the domains (for cron or a
//! systemd timer). Each domain runs until its rotation only waits; prints what
//! was done and what is next. Exits 1 when any domain's step failed or its
//! rotation is blocked (the failed step is retried with backoff on the next
//! run). With `--now` while the daemon holds the state lock, the rotation is
//! asked of the daemon through the store instead.

use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_gated, print_json};
use super::common::{Selection, selected};
use super::credentials::EnvCredentials;
use crate::accounts::connect_all;
use crate::propagation::SystemClock;
use crate::rotation::keyring::sweep;
use crate::rotation::{
    Algorithm, Request, RunOutcome, Runner, SqliteStore, Start, Store, StoreError, unblock,
};

/// How long `rotate --now` waits for a running daemon to take its request.
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `rotate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Which domains
    #[command(flatten)]
    pub selection: Selection,
    /// Start a rotation now, even if none is due; while the daemon runs, ask it to
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
    /// True when a step failed or the rotation is blocked (exit 1).
    failed: bool,
    /// What failed, in words.
    failures: Vec<String>,
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let config = load_gated(cli)?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
    let domains: Vec<_> = selected(&config, &args.selection)?
        .into_iter()
        .filter(|d| d.dkim.is_some())
        .map(|d| d.name.clone())
        .collect();
    let store: Arc<dyn Store> = match &config.state {
        // A shared store: this process works as one more replica (each
        // domain under its lease).
        Some(_) => match super::state::open(&config, super::state::Access::Write)? {
            Some(s) => s,
            None => anyhow::bail!("the shared state store could not be opened"),
        },
        None => match SqliteStore::open_locked(&config.state_dir) {
            Ok(s) => Arc::new(s),
            Err(StoreError::Locked { holder, .. }) if args.now && !args.unblock => {
                return ask_daemon(cli, &config.state_dir, &domains, &holder).await;
            }
            Err(e) => return Err(e.into()),
        },
    };
    sweep(&config, Some(store.as_ref()))?;
    if args.unblock {
        let now = chrono::Utc::now();
        for d in &domains {
            let saved = crate::rotation::store::change_leased(store.as_ref(), d, |state| {
                let mut events: Vec<_> = [Algorithm::Rsa, Algorithm::Ed25519]
                    .into_iter()
                    .filter_map(|a| unblock(state, a, now))
                    .collect();
                // Steps a signer probe holds are retried now, not after their backoff.
                events.extend(crate::rotation::retry_held(state, now));
                events
            })?;
            if saved {
                eoutln!("{d}: unblocked; the signer switch will be retried");
            }
        }
    }
    let creds = EnvCredentials::from_process();
    let (providers, failed_accounts) = connect_all(&config, &creds, Default::default());
    // Told once: on standard output with the report, or logged beside --json.
    if cli.json {
        for (name, e) in &failed_accounts {
            tracing::error!("account '{name}': {e:#}");
        }
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
    // Requests queued while another maildns held the lock: this run does them.
    // Those this run does not do (outside the selection, or a domain
    // another replica works now) go back in the queue at the end.
    let taken = runner.store().take_requests()?;
    let requested: Vec<_> = taken
        .iter()
        .filter(|r| r.what == Request::ROTATE_NOW)
        .map(|r| r.domain.clone())
        .collect();
    let mut not_done: Vec<_> = taken
        .iter()
        .filter(|r| r.what != Request::ROTATE_NOW || !domains.contains(&r.domain))
        .collect();
    let mut reports = Vec::new();
    for d in &domains {
        let start = if args.now || requested.contains(d) {
            Start::Now
        } else {
            Start::WhenDue
        };
        let r = runner.run(d, start).await;
        let mine = taken
            .iter()
            .filter(|q| &q.domain == d && q.what == Request::ROTATE_NOW);
        if let Err(crate::rotation::RunnerError::Store(StoreError::Leased { .. })) = &r {
            not_done.extend(mine);
        } else {
            // Done: removed from the queue at once (a process killed later
            // does not leave it to be done twice).
            let ids: Vec<i64> = mine.map(|q| q.id).collect();
            if let Err(e) = runner.store().done_requests(&ids) {
                tracing::error!("cannot remove done requests {ids:?} from the queue: {e}");
            }
        }
        reports.push(match r {
            Ok(o) => DomainReport {
                domain: d.to_string(),
                failures: o.failures(),
                failed: !o.failures().is_empty(),
                outcome: Some(o),
                error: None,
            },
            Err(e) => DomainReport {
                domain: d.to_string(),
                outcome: None,
                failures: vec![e.to_string()],
                failed: true,
                error: Some(e.to_string()),
            },
        });
    }
    if let Err(e) = crate::rotation::store::requeue(runner.store().as_ref(), not_done) {
        tracing::error!("cannot queue the requests not done again: {e}");
    }
    if cli.json {
        print_json(&reports)?;
    } else {
        for (name, e) in &failed_accounts {
            outln!("account {name}: {e:#}");
        }
        for r in &reports {
            print_human(r);
        }
        if domains.is_empty() {
            outln!("no selected domain has DKIM rotation configured");
        }
    }
    let bad = reports.iter().any(|r| r.failed);
    Ok(if bad { Exit::Failure } else { Exit::Ok })
}

/// `rotate --now` while another maildns (normally the daemon) holds the state
/// lock: queues one request per domain in the store, which the daemon polls
/// (and a later `rotate` takes), then waits a little for it to be taken.
async fn ask_daemon(
    cli: &Cli,
    state_dir: &std::path::Path,
    domains: &[maildns_providers::Fqdn],
    holder: &str,
) -> anyhow::Result<Exit> {
    if domains.is_empty() {
        outln!("no selected domain has DKIM rotation configured");
        return Ok(Exit::Ok);
    }
    let store = SqliteStore::open(state_dir)?;
    let now = chrono::Utc::now();
    let mut ids = Vec::new();
    for d in domains {
        ids.push(store.add_request(d, Request::ROTATE_NOW, now)?);
    }
    let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
    let taken = loop {
        let queued = store.requests()?;
        if !queued.iter().any(|r| ids.contains(&r.id)) {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    #[derive(Serialize)]
    struct Handover<'a> {
        requested: &'a [maildns_providers::Fqdn],
        lock_holder: &'a str,
        taken: bool,
    }
    if cli.json {
        print_json(&Handover {
            requested: domains,
            lock_holder: holder,
            taken,
        })?;
    } else if taken {
        outln!(
            "maildns daemon ({holder}) holds the state lock: it took the rotation request for {} domain(s); see `maildns status`",
            domains.len()
        );
    } else {
        outln!(
            "another maildns ({holder}) holds the state lock: rotation requested for {} domain(s), queued until the daemon (or the next `maildns rotate`) takes it",
            domains.len()
        );
    }
    Ok(Exit::Ok)
}

fn print_human(r: &DomainReport) {
    outln!("{}", r.domain);
    if let Some(e) = &r.error {
        outln!("  FAILED: {e}");
    }
    let Some(o) = &r.outcome else {
        return;
    };
    for f in &o.failures() {
        outln!("  FAILED: {f}");
    }
    for w in &o.warnings {
        outln!("  warning: {}", w.message);
    }
    for p in &o.performed {
        outln!(
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
        outln!("  nothing to do");
    }
    for k in &o.keys {
        outln!(
            "  key {} ({} {} bits): {}",
            k.selector,
            k.algorithm,
            k.bits,
            k.status
        );
    }
    for b in &o.blocked {
        let what = b.kind.describe();
        outln!(
            "  BLOCKED: {} {what} at {}: {}",
            b.algorithm,
            b.selector,
            b.reason
        );
    }
    match o.next_due {
        Some(t) => outln!("  next: {t}"),
        None if o.blocked.is_empty() => {}
        None => outln!("  next: waits for an operator"),
    }
}
