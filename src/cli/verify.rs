//! `maildns verify`: what DNS serves, checked against the local keys and state.
//! Needs no provider credential: it only reads DNS, the key files and the state.

use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_config, print_json};
use super::publish::{Selection, selected};
use crate::propagation::upstream;
use crate::verify::{self, DomainReport, Resolver, Status};

/// Arguments of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Which domains
    #[command(flatten)]
    pub selection: Selection,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    errors: usize,
    warnings: usize,
    domains: &'a [DomainReport],
}

pub(super) async fn run(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    let config = load_config(cli)?;
    let domains = selected(&config, &args.selection)?;
    let store = crate::rotation::SqliteStore::open_existing(&config.state_dir)?;
    let querier = super::watch::querier();
    let resolvers = upstream(&config.propagation.resolvers).addrs()?;
    let resolver = Resolver::new(querier.clone(), resolvers);
    let mut reports = Vec::new();
    for d in domains {
        let selectors = verify::selectors(&config, d, store.as_ref())?;
        let mut report = verify::verify_domain(
            &querier,
            &resolver,
            &config.propagation.resolvers,
            d,
            &selectors,
        )
        .await;
        if let Some(s) = &config.signer
            && report.failure.is_none()
            && d.dkim.is_some()
        {
            let found = verify::check_signer(&querier, s, d, &report.servers).await;
            report.findings.extend(found);
        }
        reports.push(report);
    }
    let count = |s: Status| {
        reports
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| f.status == s)
            .count()
    };
    let (errors, warnings) = (count(Status::Error), count(Status::Warning));
    let failed = reports.iter().any(|r| r.failure.is_some());
    if cli.json {
        print_json(&Report {
            ok: errors == 0 && !failed,
            errors,
            warnings,
            domains: &reports,
        })?;
    } else {
        print_table(&reports);
        println!(
            "Summary: {} domain(s), {errors} error(s), {warnings} warning(s){}",
            reports.len(),
            if failed {
                ", some domains could not be checked"
            } else {
                ""
            }
        );
    }
    Ok(if errors > 0 {
        Exit::DataErr
    } else if failed {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

fn print_table(reports: &[DomainReport]) {
    for r in reports {
        println!("{}", r.domain);
        if let Some(e) = &r.failure {
            println!("  FAILED  {e}");
            continue;
        }
        let width = r
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(0)
            .max(5);
        for f in &r.findings {
            let status = match f.status {
                Status::Ok => "ok",
                Status::Warning => "warning",
                Status::Error => "ERROR",
            };
            println!("  {:<width$}  {status:<7}  {}", f.check, f.reason);
        }
    }
}
