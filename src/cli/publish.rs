//! `maildns plan` and `maildns publish`: parse, connect the accounts, call
//! [`crate::command::publish`], print.

use maildns_providers::TxtRecord;

use super::Cli;
use super::common::{Exit, Selection, load_gated, print_json, selected};
use super::credentials::EnvCredentials;
use super::watch::WaitShown;
use crate::accounts::connect_all;
use crate::command::publish::{self, Mode, PublishOptions, Report};
use crate::config::Config;
use crate::publish::{Action, DomainError, DomainOutcome, Plan, plan::shorten};
use crate::rotation::Store;
use maildns_providers::hosts::manual;
use maildns_providers::{Observed, TxtChange, TxtSet};

/// `maildns plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Which domains
    #[command(flatten)]
    pub selection: Selection,
    /// Exit 2 when changes are pending (0 when in sync)
    #[arg(long)]
    pub exit_code: bool,
}

/// `maildns publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// Which domains
    #[command(flatten)]
    pub selection: Selection,
    /// Allow deleting more managed records than publish.max_delete_share in one run
    #[arg(long)]
    pub force: bool,
    /// After applying, wait until every authoritative server serves the changes
    /// (exit 3 when they do not within the timeout); the default for `manual`
    /// accounts, whose changes an operator makes
    #[arg(long, conflicts_with = "no_wait")]
    pub wait: bool,
    /// Return once the changes are handed over, also for `manual` accounts
    /// (see them served later with `maildns watch`)
    #[arg(long)]
    pub no_wait: bool,
    /// How long the wait lasts, e.g. 90s, 10m, 2h [default: propagation.timeout]
    #[arg(long, conflicts_with = "no_wait", value_parser = super::watch::parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

pub(super) async fn plan(cli: &Cli, args: &PlanArgs) -> anyhow::Result<Exit> {
    let (_, report) = run(cli, &args.selection, Run::Plan).await?;
    if cli.json {
        print_json(&report)?;
    }
    Ok(if report.failed() {
        Exit::Failure
    } else if args.exit_code && report.pending() > 0 {
        Exit::Changes
    } else {
        Exit::Ok
    })
}

pub(super) async fn publish(cli: &Cli, args: &PublishArgs) -> anyhow::Result<Exit> {
    let apply = Run::Apply {
        force: args.force,
        wait: args.wait,
        no_wait: args.no_wait,
    };
    let (config, mut report) = run(cli, &args.selection, apply).await?;
    // A domain handed to an operator counts its changes there.
    let handed_over = report.summary.handed_over > 0;
    if handed_over && args.no_wait && !cli.json {
        outln!(
            "When the records are entered, `maildns watch` shows when every authoritative server serves them."
        );
    }
    if args.wait || (handed_over && !args.no_wait) {
        if !cli.json {
            let domains = selected(&config, &args.selection)?;
            for line in expected_delays(&config, &domains) {
                outln!("{line}");
            }
        }
        if handed_over && !cli.json {
            outln!(
                "Waiting until every authoritative server serves the records above (Ctrl-C to stop; `maildns watch` resumes)..."
            );
        }
        let options = super::watch::watch_options(Some(&config), args.timeout);
        let mut display = WaitShown::new(cli.json);
        let querier = super::watch::querier();
        let watches = publish::wait(&config, &report, &querier, &options, &mut display).await;
        report.watch = Some(watches);
    }
    if cli.json {
        print_json(&report)?;
    }
    Ok(if report.failed() {
        Exit::Failure
    } else if report.timed_out() {
        Exit::Timeout
    } else {
        Exit::Ok
    })
}

/// One line per account whose host publishes on its own schedule or after a
/// refresh (its descriptor's `publish_delay_seconds`: Linode's ~15-minute cycle,
/// OVH's refresh task), for `publish --wait`: the wait is expected to last that long.
fn expected_delays(config: &Config, domains: &[&crate::config::Domain]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for d in domains {
        if !seen.insert(d.account.as_str()) {
            continue;
        }
        let Some(account) = config.accounts.get(&d.account) else {
            continue;
        };
        let host = account.provider.host;
        let Some(secs) = host
            .descriptor()
            .ok()
            .and_then(|x| x.limits.publish_delay_seconds)
            .filter(|&s| s > 0)
        else {
            continue;
        };
        let about = if secs >= 60 {
            format!("{} min", secs.div_ceil(60))
        } else {
            format!("{secs} s")
        };
        out.push(format!(
            "account '{}' ({}): the host publishes changes on its own schedule; expect about {about} before its servers serve them",
            account.name, host.kind
        ));
    }
    out
}

/// Plan only, or apply (`force`: past the deletion threshold; `wait`,
/// `no_wait`: `publish --wait`, `--no-wait`).
enum Run {
    Plan,
    Apply {
        force: bool,
        wait: bool,
        no_wait: bool,
    },
}

/// Loads, connects, runs, prints the human report (JSON is printed by the caller,
/// after any watch).
async fn run(cli: &Cli, selection: &Selection, what: Run) -> anyhow::Result<(Config, Report)> {
    let (mode, force) = match what {
        Run::Plan => (Mode::Plan, false),
        Run::Apply { force, .. } => (Mode::Apply, force),
    };
    let config = load_gated(cli)?;
    let domains = selected(&config, selection)?;
    let (providers, failed_accounts) =
        connect_all(&config, &EnvCredentials::from_process(), Default::default());
    let opts = PublishOptions {
        mode,
        domains: domains.iter().map(|d| d.name.clone()).collect(),
        force,
        querier: super::watch::querier(),
        now: chrono::Utc::now(),
    };
    // A run that the hosts' rate limits make long says so before it starts.
    for p in crate::publish::pacing::expected(&domains, &providers, mode) {
        eoutln!("account {}: {p}", p.account);
    }
    // The shared store when [state] names one (DKIM keys then live there),
    // else the embedded one.
    let shared = match &config.state {
        Some(_) => super::state::open(
            &config,
            if mode == Mode::Apply {
                super::state::Access::Write
            } else {
                super::state::Access::Read
            },
        )?,
        None => None,
    };
    let embedded = match &shared {
        Some(_) => None,
        None => publish::open_store(&config, &opts)?,
    };
    let store = match (&shared, &embedded) {
        (Some(s), _) => Some(s.as_ref()),
        (None, Some(s)) => Some(s as &dyn Store),
        (None, None) => None,
    };
    // An account that could not be set up is reported once, on the lines of
    // the domains it serves (human and --json), with the reason.
    let explain = |o: &mut DomainOutcome| {
        if let Some(DomainError::Account { account, message }) = &mut o.error
            && let Some((_, e)) = failed_accounts.iter().find(|(n, _)| n == account)
        {
            *message = e.reason();
        }
        // A TTL the host refused before sending (deSEC's per-domain minimum,
        // read from the host): say where that TTL comes from in the
        // configuration.
        if let Some(DomainError::Provider(e)) = &mut o.error
            && matches!(
                e.kind,
                maildns_providers::ErrorKind::Limit(
                    maildns_providers::LimitError::TtlTooLow { .. }
                        | maildns_providers::LimitError::TtlTooHigh { .. }
                )
            )
            && let Some(d) = config.domains.iter().find(|d| d.name == o.domain)
        {
            e.message = format!(
                "{}; the TTL comes from {}",
                e.message,
                crate::gate::ttl_source(&config, d)
            );
        }
    };
    // Every domain's outcome is kept for --json and for the wait after
    // publishing (`--wait`, or a `manual` account's changes); otherwise each
    // domain's lines are printed as it ends and nothing of it is kept, so a
    // run's memory does not grow with the number of domains.
    let deferred = providers.values().any(|p| p.apply_traits().deferred);
    let keep = cli.json
        || match what {
            Run::Plan => false,
            Run::Apply { wait, no_wait, .. } => wait || (deferred && !no_wait),
        };
    let report = if keep {
        let mut report = publish::run(&config, &providers, store, &opts).await?;
        report.domains.iter_mut().for_each(explain);
        print_warnings(&report);
        if !cli.json {
            for o in &report.domains {
                print_domain(&config, o);
            }
        }
        report
    } else {
        let mut each = |mut o: DomainOutcome| {
            explain(&mut o);
            print_domain(&config, &o);
        };
        let report = publish::run_each(&config, &providers, store, &opts, &mut each).await?;
        print_warnings(&report);
        report
    };
    if !cli.json {
        print_summary(&report);
    }
    Ok((config, report))
}

fn print_warnings(report: &Report) {
    for w in &report.warnings {
        eoutln!("warning: {}: {}", w.domain, w.message);
    }
}

/// One domain's lines of the human report.
fn print_domain(config: &Config, o: &DomainOutcome) {
    let show = |rs: &[TxtRecord]| {
        let quoted: Vec<String> = rs
            .iter()
            .map(|r| format!("\"{}\"", shorten(&r.value_escaped(), 72)))
            .collect();
        quoted.join(", ")
    };
    let zone = o.zone.as_ref().map(|z| format!(", zone {z}"));
    outln!(
        "{} (account {}{})",
        o.domain,
        o.account,
        zone.unwrap_or_default()
    );
    for c in o.plan.iter().flat_map(|p| &p.changes) {
        // A TTL change is shown even when no value changes.
        let ttl = c.ttl_change().map(|(o, n)| format!(" (TTL {o} -> {n})"));
        let ttl = ttl.unwrap_or_default();
        let (verb, values) = match (c.action, c.ttl_change()) {
            (Action::Create, _) => ("CREATE", format!("{}{ttl}", show(&c.new))),
            (Action::Update, Some((o, n))) if c.same_values() => {
                let v = show(&c.new);
                ("UPDATE", format!("TTL {o} -> {n} (value unchanged: {v})"))
            }
            (Action::Update, _) => {
                let (old, new) = (show(&c.old), show(&c.new));
                ("UPDATE", format!("{old} -> {new}{ttl}"))
            }
            (Action::Delete, _) => ("DELETE", show(&c.old)),
        };
        outln!("  {verb} {} TXT {} {values}", c.name, c.kind.label());
        if !c.foreign.is_empty() {
            let n = c.foreign.len();
            outln!("         keeping {n} other value(s) at {}", c.name);
        }
    }
    if o.pending
        && let Some(p) = &o.plan
    {
        let form = config
            .accounts
            .get(&o.account)
            .and_then(|a| a.provider.settings.value_form)
            .unwrap_or_default();
        let zone = o
            .zone
            .as_deref()
            .and_then(|z| maildns_providers::Fqdn::parse(z).ok())
            .unwrap_or_else(|| o.domain.clone());
        let text = manual::instructions(&zone, &handed_over(p), form);
        for line in text.lines() {
            outln!("  {line}");
        }
    }
    if let Some(p) = o.plan.as_ref().filter(|p| p.changes.is_empty()) {
        outln!("  in sync ({} name(s))", p.in_sync);
    }
    for k in o.plan.iter().flat_map(|p| &p.ttl_kept) {
        outln!("  note: {k}");
    }
    if let Some(e) = &o.error {
        let what = match e {
            DomainError::Threshold { .. } => "refused",
            _ => "FAILED",
        };
        match e {
            // Its own message names the account.
            DomainError::Account { .. } => outln!("  {what}: {e}"),
            _ => outln!("  {what}: account '{}': {e}", o.account),
        }
    }
}

/// The summary and notes after the domains' lines.
fn print_summary(report: &Report) {
    let s = &report.summary;
    let (verb, count) = match report.applied {
        true => ("applied", s.applied),
        false => ("to apply", report.pending()),
    };
    outln!(
        "Summary: {} to create, {} to update, {} to delete, {} in sync; {count} change(s) {verb}; {} domain(s), {} failed",
        s.create,
        s.update,
        s.delete,
        s.in_sync,
        s.domains,
        s.failed
    );
    if s.handed_over > 0 {
        outln!(
            "{} change(s) handed to the operator (manual accounts): made once the authoritative servers serve them",
            s.handed_over
        );
    }
    for (account, bits) in &report.saved_limits {
        outln!(
            "note: account '{account}' holds DKIM keys of at most {bits} bits (saved); the next `maildns publish` or rotation step replaces a key not yet in use"
        );
    }
    for d in &report.without_key {
        outln!(
            "note: {d} has no DKIM key yet: `maildns publish` generates and publishes the first one"
        );
    }
}

/// A plan's changes as the change set handed to a `manual` host's operator.
fn handed_over(plan: &Plan) -> Vec<TxtChange> {
    plan.changes
        .iter()
        .map(|c| {
            let mut before = c.foreign.clone();
            before.extend(c.old.iter().cloned());
            TxtChange {
                name: c.name.clone(),
                old: Observed::of(c.old_ttl.map(|ttl| TxtSet {
                    ttl,
                    records: before,
                })),
                new: (!c.write.records.is_empty()).then(|| c.write.clone()),
            }
        })
        .collect()
}
