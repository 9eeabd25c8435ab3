//! `maildns check`: the configuration and every configured record, linted by
//! the same gate every writing command runs ([`crate::gate`]).

use super::Cli;
use super::common::{Exit, load_config, print_json};
use crate::records::Severity;

pub(super) async fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let config = load_config(cli)?;
    super::common::check_signer(&config)?;
    let report = crate::gate::lint(&config);
    let errors = report.blocking().count();
    let waived = report
        .findings
        .iter()
        .filter(|f| f.waived.is_some())
        .count();
    if cli.json {
        print_json(&serde_json::json!({
            "config": config.path,
            "domains": config.domains.len(),
            "errors": errors,
            "waived": waived,
            "findings": report.findings,
        }))?;
    } else {
        for f in &report.findings {
            outln!("{f}");
        }
        let other = report
            .findings
            .iter()
            .filter(|f| f.diagnostic.severity != Severity::Error || f.waived.is_some())
            .count();
        outln!(
            "{}: {} domain(s), {} error(s), {} other finding(s)",
            config.path.display(),
            config.domains.len(),
            errors,
            other
        );
    }
    Ok(if errors > 0 { Exit::DataErr } else { Exit::Ok })
}
