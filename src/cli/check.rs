//! `maildns check`: the configuration and every configured record, linted by
//! the same gate every writing command runs ([`crate::gate`]).
//!
//! A problem never hides another: a file with configuration errors still has
//! the records of its domains that loaded linted (and reported), and a signer
//! that cannot prove a switch does not hide the records' findings. The exit
//! code is 65 when anything is wrong.

use super::Cli;
use super::common::{Exit, print_json};
use crate::config::{self, ConfigError, ConfigErrors};
use crate::records::Severity;

pub(super) async fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let path = config::locate(cli.config.as_deref())?;
    let (config, load_errors) = config::load_partial(&path)?;
    let Some(mut config) = config else {
        // Not TOML: nothing of it can be linted.
        return Err(ConfigErrors(load_errors).into());
    };
    // With configuration errors, only the domains without one of their own
    // are linted (a domain whose setting did not read is not linted as if
    // the setting were absent), and the signer is not probed.
    let signer_error = if load_errors.is_empty() {
        super::common::check_signer(&config).err()
    } else {
        config
            .domains
            .retain(|d| !load_errors.iter().any(|e| about(e, &d.source.key)));
        None
    };
    let report = crate::gate::lint(&config);
    let errors = report.blocking().count();
    let waived = report
        .findings
        .iter()
        .filter(|f| f.waived.is_some())
        .count();
    if cli.json {
        let config_errors: Vec<serde_json::Value> = load_errors
            .iter()
            .map(|e| {
                serde_json::json!({
                    "file": e.path,
                    "line": e.line,
                    "key": e.key,
                    "message": e.message,
                    "hint": e.hint,
                })
            })
            .chain(signer_error.iter().map(|e| {
                serde_json::json!({
                    "file": config.path,
                    "line": null,
                    "key": "signer",
                    "message": format!("{e:#}"),
                    "hint": null,
                })
            }))
            .collect();
        print_json(&serde_json::json!({
            "config": config.path,
            "domains": config.domains.len(),
            "config_errors": config_errors,
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
        if load_errors.is_empty() {
            outln!(
                "{}: {} domain(s), {} error(s), {} other finding(s)",
                config.path.display(),
                config.domains.len(),
                errors,
                other
            );
        } else {
            outln!(
                "{}: {} configuration error(s) (on stderr); the records of the {} domain(s) without one: {} error(s), {} other finding(s)",
                config.path.display(),
                load_errors.len(),
                config.domains.len(),
                errors,
                other
            );
        }
    }
    if !load_errors.is_empty() {
        return Err(ConfigErrors(load_errors).into());
    }
    if let Some(e) = signer_error {
        return Err(e);
    }
    Ok(if errors > 0 { Exit::DataErr } else { Exit::Ok })
}

/// Whether the configuration error `e` is about the domain whose dotted key
/// is `domain` (its own table or a key in it).
fn about(e: &ConfigError, domain: &str) -> bool {
    e.key
        .strip_prefix(domain)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}
