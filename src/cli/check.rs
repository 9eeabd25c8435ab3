//! `maildns check`: the configuration and every configured record, linted.

use serde::Serialize;

use super::Cli;
use super::common::{Exit, load_config, print_json};
use crate::records::{Diagnostic, Severity};

#[derive(Serialize)]
struct Finding {
    domain: String,
    record: &'static str,
    #[serde(flatten)]
    diagnostic: Diagnostic,
}

pub(super) async fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let config = load_config(cli)?;
    let mut findings = Vec::new();
    for d in &config.domains {
        let mut add = |record: &'static str, diags: Vec<Diagnostic>| {
            findings.extend(diags.into_iter().map(|diagnostic| Finding {
                domain: d.name.to_string(),
                record,
                diagnostic,
            }));
        };
        if let Some(s) = &d.spf {
            add("SPF", s.lint());
        }
        if let Some(s) = &d.dmarc {
            add("DMARC", s.lint());
        }
        if let Some(s) = &d.adsp {
            add("ADSP", s.lint());
        }
    }
    let errors = findings
        .iter()
        .filter(|f| f.diagnostic.severity == Severity::Error)
        .count();
    if cli.json {
        print_json(&serde_json::json!({
            "config": config.path,
            "domains": config.domains.len(),
            "errors": errors,
            "findings": findings,
        }))?;
    } else {
        for f in &findings {
            let sev = match f.diagnostic.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            outln!(
                "{sev}: {} {}: {} [{}]",
                f.domain,
                f.record,
                f.diagnostic.message,
                f.diagnostic.code
            );
        }
        outln!(
            "{}: {} domain(s), {} error(s), {} other finding(s)",
            config.path.display(),
            config.domains.len(),
            errors,
            findings.len() - errors
        );
    }
    Ok(if errors > 0 { Exit::DataErr } else { Exit::Ok })
}
