//! `maildns diagnose`: probe what an account's DNS host really stores and serves,
//! print the table and the recommendation, save the result for `publish`.

use anyhow::Context;
use maildns_providers::Fqdn;
use maildns_providers::http::RetryPolicy;
use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_config, print_json};
use super::credentials::EnvCredentials;
use crate::accounts::connect;
use crate::diagnose::{self, Options, Report, Servers};
use crate::propagation::{DiscoveryOptions, Nameserver, Querier, QueryOptions, Upstream, discover};
use crate::rotation::SqliteStore;

/// Arguments of `diagnose`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The configured account to probe
    #[arg(long)]
    pub account: String,
    /// The zone to write probes in [default: the zone of the account's first domain]
    #[arg(long)]
    pub zone: Option<String>,
    /// List the probes without writing anything
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Serialize)]
struct DryRun<'a> {
    account: &'a str,
    zone: String,
    probes: Vec<DryProbe>,
}

#[derive(Serialize)]
struct DryProbe {
    id: &'static str,
    name: String,
    about: &'static str,
    sent: diagnose::Shape,
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let config = load_config(cli)?;
    let account = config
        .accounts
        .get(&args.account)
        .with_context(|| format!("no account named '{}' in the configuration", args.account))?;
    let domains: Vec<_> = config
        .domains
        .iter()
        .filter(|d| d.account == args.account)
        .collect();
    let zone = match &args.zone {
        Some(z) => Fqdn::parse(z).with_context(|| format!("--zone '{z}'"))?,
        None => domains
            .first()
            .map(|d| d.zone.clone().unwrap_or_else(|| d.name.clone()))
            .with_context(|| {
                format!(
                    "account '{}' has no domain: name the zone with --zone",
                    args.account
                )
            })?,
    };
    if args.dry_run {
        let list = diagnose::probes(&zone)?;
        let out = DryRun {
            account: &args.account,
            zone: zone.to_string(),
            probes: list
                .iter()
                .map(|p| DryProbe {
                    id: p.id,
                    name: p.name.to_string(),
                    about: p.about,
                    sent: diagnose::Shape::of(&p.record),
                })
                .collect(),
        };
        if cli.json {
            print_json(&out)?;
        } else {
            outln!(
                "Probes for account {} in zone {} (dry run: nothing written)",
                out.account,
                out.zone
            );
            for p in &out.probes {
                outln!("  {:<9} {:<48} {}", p.id, p.name, p.about);
            }
        }
        return Ok(Exit::Ok);
    }

    let creds = EnvCredentials::from_process();
    let provider = connect(
        account,
        std::slice::from_ref(&zone),
        &creds,
        RetryPolicy::default(),
    )?;
    let querier = Querier::new(QueryOptions::default());
    let overrides: Vec<Nameserver> = domains
        .iter()
        .filter(|d| d.name.is_within(&zone))
        .flat_map(|d| d.nameservers.iter().copied())
        .fold(Vec::new(), |mut acc, a| {
            if !acc.contains(&a) {
                acc.push(a);
            }
            acc
        })
        .into_iter()
        .map(Nameserver::from_addr)
        .collect();
    let servers = if overrides.is_empty() {
        let opts = DiscoveryOptions {
            upstream: if config.propagation.resolvers.is_empty() {
                Upstream::System
            } else {
                Upstream::Servers(config.propagation.resolvers.clone())
            },
            ..DiscoveryOptions::default()
        };
        match discover(&querier, &opts, &zone).await {
            Ok(d) if !d.nameservers.is_empty() => Servers {
                querier: querier.clone(),
                list: d.nameservers,
                note: None,
            },
            Ok(_) => Servers {
                querier: querier.clone(),
                list: Vec::new(),
                note: Some("discovery found no nameserver address".into()),
            },
            Err(e) => Servers {
                querier: querier.clone(),
                list: Vec::new(),
                note: Some(format!("discovery failed: {e}")),
            },
        }
    } else {
        Servers {
            querier: querier.clone(),
            list: overrides,
            note: None,
        }
    };
    let shutdown = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        eoutln!("maildns: interrupted, removing the probes");
    };
    let report = diagnose::run(
        provider.as_ref(),
        &zone,
        &servers,
        &Options::default(),
        shutdown,
    )
    .await?;

    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
    let store: std::sync::Arc<dyn crate::rotation::Store> = match &config.state {
        Some(shared) => std::sync::Arc::new(super::state::connect_shared(shared)?),
        None => std::sync::Arc::new(SqliteStore::open(&config.state_dir)?),
    };
    diagnose::save(store.as_ref(), &args.account, &report, chrono::Utc::now())?;

    if cli.json {
        print_json(&report)?;
    } else {
        print_human(&args.account, &report);
    }
    Ok(Exit::Ok)
}

fn print_human(account: &str, r: &Report) {
    outln!(
        "Diagnosis of account {account} ({}), zone {}",
        r.provider,
        r.zone
    );
    if r.servers.is_empty() {
        outln!(
            "Servers: none asked ({})",
            r.servers_note.as_deref().unwrap_or("none known")
        );
    } else {
        let list: Vec<String> = r.servers.iter().map(ToString::to_string).collect();
        outln!("Servers: {}", list.join(", "));
    }
    if !r.leftovers_removed.is_empty() {
        outln!(
            "Removed leftovers of an earlier run: {}",
            r.leftovers_removed.join(", ")
        );
    }
    outln!(
        "{:<9} {:<20} {:<26} {:<26} VERDICT",
        "PROBE",
        "SENT",
        "API READBACK",
        "SERVED"
    );
    for p in &r.probes {
        let api = if p.api_found.is_empty() {
            "-".to_string()
        } else {
            p.api_found
                .iter()
                .map(diagnose::Shape::label)
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let served = if p.served.is_empty() {
            "-".to_string()
        } else {
            let ok = p.served.iter().filter(|s| s.verdict.intact()).count();
            format!("{ok}/{} intact", p.served.len())
        };
        outln!(
            "{:<9} {:<20} {:<26} {:<26} {}",
            p.id,
            p.sent.label(),
            api,
            served,
            p.verdict.label()
        );
        for s in p.served.iter().filter(|s| !s.verdict.intact()) {
            outln!("          {}: {}", s.server, s.verdict.label());
        }
    }
    for d in &r.profile_differences {
        outln!("profile differs: {d}");
    }
    if let Some(t) = r.dkim_transport {
        let what = match t {
            "udp" => "fits a plain 512-byte UDP answer",
            "edns0" => "needs EDNS0 (over 512 bytes)",
            _ => "needs TCP (over 1232 bytes)",
        };
        outln!("Largest intact DKIM record: {what}");
    }
    if !r.rate_limits_seen.is_empty() {
        let h: Vec<String> = r
            .rate_limits_seen
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        outln!("Rate-limit headers: {}", h.join(", "));
    }
    for f in &r.cleanup_failures {
        outln!("warning: probe not removed: {f}");
    }
    outln!("Recommendation: {}", r.recommendation.text);
}
