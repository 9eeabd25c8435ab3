//! SPF as served: one record every server agrees on, parsing, linted, with its
//! DNS lookups counted by walking includes and redirects ([`super::spf_tree`]).

use super::spf_tree::{self, SpfLookups, count_lookups};
use super::{Finding, Resolver, Status, agreed, lint_findings, quoted, served_record};
use crate::config::Domain;
use crate::propagation::{Nameserver, Querier};
use crate::records::spf;

/// The SPF findings of `domain`, and its lookup tree when one record is served.
pub(super) async fn check_spf(
    querier: &Querier,
    resolver: &Resolver,
    domain: &Domain,
    servers: &[Nameserver],
    f: &mut Vec<Finding>,
) -> Option<SpfLookups> {
    let name = &domain.name;
    let values = agreed(querier, servers, name, "SPF", spf::is_spf, f).await?;
    lint_findings("SPF", &spf::lint_name(&values), &[], f);
    let Some(first) = values.first() else {
        let (status, reason) = if domain.spf.is_some() {
            (
                Status::Error,
                format!("no v=spf1 record served at {name} (configured; run `maildns publish`)"),
            )
        } else {
            (
                Status::Warning,
                format!("no SPF record at {name}: receivers cannot tell which hosts may send"),
            )
        };
        f.push(Finding::new("SPF", status, reason));
        return None;
    };
    if values.len() > 1 {
        return None;
    }
    let value = first.value_lossy();
    let record = match spf::Spf::parse(&value) {
        Ok(r) => r,
        Err(e) => {
            f.push(Finding::new(
                "SPF",
                Status::Error,
                format!("{} does not parse: {e}", quoted(first)),
            ));
            return None;
        }
    };
    served_record(
        "SPF",
        quoted(first),
        &record.lint(),
        &["spf-too-many-lookups"],
        f,
    );
    if let Some(want) = &domain.spf
        && want.to_value() != value
    {
        f.push(Finding::new(
            "SPF",
            Status::Warning,
            "the served value differs from the configuration: run `maildns publish`",
        ));
    }
    let tree = count_lookups(resolver, name, &record).await;
    let macros = if tree.macros > 0 {
        format!(
            "; {} term(s) with macros counted, not resolved",
            tree.macros
        )
    } else {
        String::new()
    };
    // Every lookup, with the record it sits in: whole in --json, wrapped by
    // the table (never cut).
    let details = tree.lines();
    let listed = if details.is_empty() { "" } else { ":" };
    if tree.lookups > spf_tree::MAX_LOOKUPS {
        f.push(Finding {
            details,
            ..Finding::new(
                "SPF lookups",
                Status::Error,
                format!(
                    "{} DNS lookups across includes, receivers stop at {} with a permanent error (RFC 7208 §4.6.4){macros}{listed}",
                    tree.lookups,
                    spf_tree::MAX_LOOKUPS
                ),
            )
        });
    } else {
        f.push(Finding {
            details,
            ..Finding::new(
                "SPF lookups",
                Status::Ok,
                format!(
                    "{} of at most {}{macros}{listed}",
                    tree.lookups,
                    spf_tree::MAX_LOOKUPS
                ),
            )
        });
    }
    if tree.void_lookups.len() > spf_tree::MAX_VOID_LOOKUPS {
        f.push(Finding::new(
            "SPF void lookups",
            Status::Error,
            format!(
                "{} lookups return nothing ({}); receivers stop at {} (RFC 7208 §4.6.4)",
                tree.void_lookups.len(),
                tree.void_lookups.join(", "),
                spf_tree::MAX_VOID_LOOKUPS
            ),
        ));
    } else if !tree.void_lookups.is_empty() {
        f.push(Finding::new(
            "SPF void lookups",
            Status::Warning,
            format!("{} return nothing", tree.void_lookups.join(", ")),
        ));
    }
    lint_findings("SPF lookups", &tree.problems, &[], f);
    Some(tree)
}
