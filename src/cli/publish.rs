//! `maildns plan` and `maildns publish`: read, diff, (write), report.

use anyhow::Context;
use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_gated, print_json};
use crate::accounts::{Credentials, connect_all};
use crate::config::{Account, Config, Domain};
use crate::publish::{
    self, Action, DomainError, DomainJob, DomainOutcome, Options, for_domain, plan::shorten,
};
use crate::rotation::keyring::{
    after_publish, max_bits_for, prepare_publish, record_publish_failure,
};
use crate::rotation::{SqliteStore, Store};

/// Arguments shared by `plan` and `publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Only these domains (repeatable)
    #[arg(long = "domain", short = 'd')]
    pub domains: Vec<String>,
}

/// `publish --wait`: watch the changes propagate.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WaitArgs {
    /// After applying, wait until every authoritative server serves the changes
    /// (exit 3 when they do not within the timeout)
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 90s, 10m [default: propagation.timeout]
    #[arg(long, requires = "wait", value_parser = super::watch::parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

/// One domain's watch after publishing.
#[derive(Serialize)]
struct DomainWatch {
    domain: String,
    servers: Vec<crate::propagation::Nameserver>,
    /// Why the watch could not run (no servers found).
    error: Option<String>,
    report: Option<crate::propagation::WatchReport>,
}

#[derive(Serialize, Default)]
struct Summary {
    domains: usize,
    failed: usize,
    create: usize,
    update: usize,
    delete: usize,
    in_sync: usize,
    applied: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    applied: bool,
    summary: &'a Summary,
    domains: &'a [DomainOutcome],
    #[serde(skip_serializing_if = "Option::is_none")]
    watch: Option<&'a [DomainWatch]>,
}

/// The environment as credentials source (snapshotted once at the face).
pub(super) struct EnvCredentials {
    env: std::collections::HashMap<String, String>,
}

impl EnvCredentials {
    pub(super) fn from_process() -> Self {
        EnvCredentials {
            env: std::env::vars().collect(),
        }
    }
}

impl Credentials for EnvCredentials {
    fn credential(&self, account: &Account) -> anyhow::Result<maildns_providers::Secret> {
        let spec = crate::secrets::SecretSpec {
            env_var: Some(account.credential.env.clone()),
            token_file: account.credential.token_file.clone(),
        };
        Ok(crate::secrets::lookup(&account.name, &spec, &self.env)?.secret)
    }

    fn aws(
        &self,
        account: &Account,
    ) -> anyhow::Result<maildns_providers::hosts::route53::AwsCredentials> {
        let home = self.env.get("HOME").map(std::path::PathBuf::from);
        maildns_providers::hosts::route53::AwsCredentials::from_env_and_files(
            &self.env,
            home.as_deref(),
        )
        .with_context(|| format!("account '{}'", account.name))
    }
}

/// Which configured domains the selection names (all when none; an unknown name
/// is an error listing the configured ones).
pub(super) fn selected<'a>(
    config: &'a Config,
    selection: &Selection,
) -> anyhow::Result<Vec<&'a Domain>> {
    super::common::select_domains(config, &selection.domains)
}

pub(super) async fn run(
    cli: &Cli,
    selection: &Selection,
    apply: bool,
    force: bool,
    exit_code: bool,
    wait: &WaitArgs,
) -> anyhow::Result<Exit> {
    let config = load_gated(cli)?;
    let domains = selected(&config, selection)?;
    let creds = EnvCredentials::from_process();
    let (providers, failed_accounts) = connect_all(&config, &creds, Default::default());
    for (name, e) in &failed_accounts {
        tracing::error!("account '{name}': {e:#}");
    }
    let store = if !domains.iter().any(|d| d.dkim.is_some()) {
        None
    } else if apply {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
        Some(SqliteStore::open_locked(&config.state_dir)?)
    } else {
        // plan is read-only: no store yet means no keys yet.
        SqliteStore::open_existing(&config.state_dir)?
    };
    if apply {
        // publish writes first keys: no key material left by a killed run stays.
        crate::rotation::keyring::sweep(&config, store.as_ref().map(|s| s as &dyn Store))?;
    }
    let now = chrono::Utc::now();
    // What earlier runs published: SPF/DMARC/ADSP lines removed from the
    // configuration since are planned as DELETEs of exactly those values.
    let ledger = crate::publish::Ledger::load(&config.state_dir)?;
    let mut desired_by_domain = std::collections::BTreeMap::new();
    let mut jobs = Vec::new();
    let mut no_key = Vec::new();
    for d in &domains {
        let max_bits = max_bits_for(
            &d.account,
            &providers,
            store.as_ref().map(|s| s as &dyn Store),
        );
        let entries = match &store {
            Some(st) => {
                let (entries, warnings) = prepare_publish(st, &config, d, max_bits, now, apply)?;
                for w in warnings {
                    let prefix = format!("{}: ", d.name);
                    let message = w.message.strip_prefix(&prefix).unwrap_or(&w.message);
                    eprintln!("warning: {}: {message}", d.name);
                }
                entries
            }
            None => Vec::new(),
        };
        if d.dkim.is_some() && entries.is_empty() {
            no_key.push(d.name.to_string());
        }
        let mut desired = for_domain(d, &entries)?;
        desired.extend(ledger.retractions(d));
        desired_by_domain.insert(d.name.clone(), desired.clone());
        jobs.push(DomainJob {
            domain: d.name.clone(),
            account: d.account.clone(),
            zone: d.zone.clone(),
            desired,
        });
    }
    // Servers of hosts that serve writes at once are asked too (configured
    // `nameservers` only: no discovery here).
    let served = publish::ServedCheck {
        querier: super::watch::querier(),
        servers: domains
            .iter()
            .filter(|d| !d.nameservers.is_empty())
            .map(|d| (d.name.clone(), d.nameservers.clone()))
            .collect(),
        wait: std::time::Duration::from_secs(3),
    };
    let outcomes = publish::run_checked(
        jobs,
        &providers,
        Options {
            apply,
            force,
            max_delete_share: config.publish.max_delete_share,
        },
        Some(served),
    )
    .await;
    // A value the host did not keep: saved as its limit, so the next run (or
    // rotation step) sizes the key for it without a manual `maildns diagnose`.
    let mut readback_notes = Vec::new();
    let mut noted = std::collections::BTreeSet::new();
    if let Some(st) = &store {
        for o in &outcomes {
            if let Some(DomainError::NotStored(found)) = &o.error {
                let kind = providers
                    .get(&o.account)
                    .map(|p| p.kind())
                    .unwrap_or("unknown");
                let zone = o.zone.as_deref().unwrap_or(o.domain.as_str());
                let r = crate::diagnose::save_readback(st, &o.account, kind, zone, found, now)
                    .context("saving the read-back diagnosis")?;
                record_publish_failure(st, &o.domain, &found.name, &found.to_string(), now)?;
                if let Some(bits) = r.recommended_max_bits
                    && noted.insert(o.account.clone())
                {
                    readback_notes.push(format!(
                        "note: account '{}' holds DKIM keys of at most {bits} bits (saved); the next `maildns publish` or rotation step replaces a key not yet in use",
                        o.account
                    ));
                }
            }
        }
    }
    if apply {
        let mut updated = ledger.clone();
        for o in &outcomes {
            if let Some(desired) = desired_by_domain.get(&o.domain) {
                updated.record(desired, o);
            }
        }
        if updated != ledger {
            updated.save(&config.state_dir)?;
        }
    }
    if apply && let Some(st) = &store {
        for o in outcomes.iter().filter(|o| o.error.is_none()) {
            if let Some(d) = domains.iter().find(|d| d.name == o.domain) {
                let max_bits = max_bits_for(&d.account, &providers, Some(st));
                after_publish(st, d, max_bits, now)?;
            }
        }
    }
    let mut summary = Summary {
        domains: outcomes.len(),
        ..Default::default()
    };
    for o in &outcomes {
        if o.error.is_some() {
            summary.failed += 1;
        }
        summary.applied += o.applied;
        if let Some(p) = &o.plan {
            summary.in_sync += p.in_sync;
            for c in &p.changes {
                match c.action {
                    Action::Create => summary.create += 1,
                    Action::Update => summary.update += 1,
                    Action::Delete => summary.delete += 1,
                }
            }
        }
    }
    if !cli.json {
        print_human(&outcomes, &summary, apply, &failed_accounts);
        for n in &readback_notes {
            println!("{n}");
        }
        for d in &no_key {
            println!(
                "note: {d} has no DKIM key yet: `maildns publish` generates and publishes the first one"
            );
        }
    }
    let watched = if apply && wait.wait {
        Some(watch_outcomes(cli, &config, &domains, &outcomes, wait).await)
    } else {
        None
    };
    if cli.json {
        print_json(&Report {
            applied: apply,
            summary: &summary,
            domains: &outcomes,
            watch: watched.as_deref(),
        })?;
    }
    let watch_failed = watched.iter().flatten().any(|w| w.error.is_some());
    let timed_out = watched
        .iter()
        .flatten()
        .any(|w| w.report.as_ref().is_some_and(|r| !r.propagated));
    let pending = summary.create + summary.update + summary.delete;
    Ok(if summary.failed > 0 || watch_failed {
        Exit::Failure
    } else if timed_out {
        Exit::Timeout
    } else if !apply && exit_code && pending > 0 {
        Exit::Changes
    } else {
        Exit::Ok
    })
}

/// `--wait`: for every domain that changed, watch its changes on every
/// authoritative server of its zone and say when it is safe.
async fn watch_outcomes(
    cli: &Cli,
    config: &Config,
    domains: &[&Domain],
    outcomes: &[DomainOutcome],
    wait: &WaitArgs,
) -> Vec<DomainWatch> {
    let querier = super::watch::querier();
    let options = super::watch::watch_options(Some(config), wait.timeout);
    let mut out = Vec::new();
    for o in outcomes.iter().filter(|o| o.error.is_none()) {
        let (Some(plan), Some(d)) = (&o.plan, domains.iter().find(|d| d.name == o.domain)) else {
            continue;
        };
        let checks = crate::publish::checks_for_plan(plan);
        let title = o.domain.to_string();
        if checks.is_empty() {
            if !cli.json {
                println!("{title}: in sync, nothing to wait for");
            }
            continue;
        }
        let zone = d.zone.clone().unwrap_or_else(|| d.name.clone());
        let servers = match crate::propagation::authoritative_servers(
            &querier,
            &zone,
            &d.nameservers,
            &config.propagation.resolvers,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                let error = format!("finding the authoritative servers of {zone}: {e}");
                if !cli.json {
                    println!("{title}: cannot watch: {error}");
                }
                out.push(DomainWatch {
                    domain: title,
                    servers: Vec::new(),
                    error: Some(error),
                    report: None,
                });
                continue;
            }
        };
        let report = super::watch::watch_shown(
            cli.json,
            &title,
            querier.clone(),
            options.clone(),
            &checks,
            &servers,
        )
        .await;
        if !cli.json {
            super::watch::print_outcome(&title, &report);
        }
        out.push(DomainWatch {
            domain: title,
            servers,
            error: None,
            report: Some(report),
        });
    }
    out
}

fn print_human(
    outcomes: &[DomainOutcome],
    s: &Summary,
    apply: bool,
    failed_accounts: &[(String, anyhow::Error)],
) {
    for (name, e) in failed_accounts {
        println!("account {name}: {e:#}");
    }
    for o in outcomes {
        println!(
            "{} (account {}{})",
            o.domain,
            o.account,
            o.zone
                .as_ref()
                .map(|z| format!(", zone {z}"))
                .unwrap_or_default()
        );
        if let Some(p) = &o.plan {
            for c in &p.changes {
                let show = |rs: &[maildns_providers::TxtRecord]| {
                    rs.iter()
                        .map(|r| format!("\"{}\"", shorten(&r.value_lossy(), 72)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let verb = match c.action {
                    Action::Create => "CREATE",
                    Action::Update => "UPDATE",
                    Action::Delete => "DELETE",
                };
                match c.action {
                    Action::Create => println!(
                        "  {verb} {} TXT {} {}",
                        c.name,
                        c.kind.label(),
                        show(&c.new)
                    ),
                    Action::Update => println!(
                        "  {verb} {} TXT {} {} -> {}",
                        c.name,
                        c.kind.label(),
                        show(&c.old),
                        show(&c.new)
                    ),
                    Action::Delete => println!(
                        "  {verb} {} TXT {} {}",
                        c.name,
                        c.kind.label(),
                        show(&c.old)
                    ),
                }
                if !c.foreign.is_empty() {
                    println!(
                        "         keeping {} other value(s) at {}",
                        c.foreign.len(),
                        c.name
                    );
                }
            }
            if p.changes.is_empty() {
                println!("  in sync ({} name(s))", p.in_sync);
            }
        }
        if let Some(e) = &o.error {
            let what = match e {
                DomainError::Threshold { .. } => "refused",
                _ => "FAILED",
            };
            println!("  {what}: account '{}': {e}", o.account);
        }
    }
    let verb = if apply { "applied" } else { "to apply" };
    println!(
        "Summary: {} to create, {} to update, {} to delete, {} in sync; {} change(s) {verb}; {} domain(s), {} failed",
        s.create,
        s.update,
        s.delete,
        s.in_sync,
        if apply {
            s.applied
        } else {
            s.create + s.update + s.delete
        },
        s.domains,
        s.failed
    );
}
