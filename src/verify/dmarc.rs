//! DMARC as served: one record every server agrees on, parsing, linted, and
//! every external report destination authorising it (RFC 7489 §7.1).

use maildns_providers::TxtRecord;

use super::{Finding, Resolver, Status, agreed, quoted, served_record};
use crate::config::Domain;
use crate::propagation::{Nameserver, Querier};
use crate::records::dmarc;

/// The DMARC findings of `domain`, with its external report destinations.
pub(super) async fn check_dmarc(
    querier: &Querier,
    resolver: &Resolver,
    domain: &Domain,
    servers: &[Nameserver],
    f: &mut Vec<Finding>,
) {
    let Ok(name) = dmarc::record_name(&domain.name) else {
        return;
    };
    let Some(values) = agreed(querier, servers, &name, "DMARC", dmarc::is_dmarc, f).await else {
        return;
    };
    let Some(first) = values.first() else {
        let status = if domain.dmarc.is_some() {
            Status::Error
        } else {
            Status::Warning
        };
        f.push(Finding::new(
            "DMARC",
            status,
            format!("no v=DMARC1 record served at {name}"),
        ));
        return;
    };
    if values.len() > 1 {
        f.push(Finding::new(
            "DMARC",
            Status::Error,
            format!(
                "{} v=DMARC1 records at {name} ({}): receivers ignore them all (RFC 7489 §6.6.3)",
                values.len(),
                crate::publish::plan::quote_all(
                    &values
                        .iter()
                        .map(TxtRecord::value_escaped)
                        .collect::<Vec<_>>()
                )
            ),
        ));
        return;
    }
    let value = first.value_lossy();
    let record = match dmarc::Dmarc::parse(&value) {
        Ok(r) => r,
        Err(e) => {
            f.push(Finding::new(
                "DMARC",
                Status::Error,
                format!("{} does not parse: {e}", quoted(first)),
            ));
            return;
        }
    };
    served_record("DMARC", quoted(first), &record.lint(), &[], f);
    for dest in record.external_destinations(&domain.name) {
        let check = format!("DMARC reports to {}", dest.report_domain);
        let auth = match &dest.authorization_name {
            Ok(n) => n,
            Err(e) => {
                f.push(Finding::new(
                    &check,
                    Status::Error,
                    format!("authorisation name: {e}"),
                ));
                continue;
            }
        };
        match resolver.txt(auth).await {
            Err(e) => f.push(Finding::new(&check, Status::Error, format!("cannot check {auth}: {e}"))),
            Ok(v) if v.iter().flatten().any(|r| dmarc::is_dmarc(&r.value())) => f.push(
                Finding::new(&check, Status::Ok, format!("authorised by {auth}")),
            ),
            Ok(_) => f.push(Finding::new(
                &check,
                Status::Error,
                format!(
                    "{auth} has no v=DMARC1 record: {} will not accept reports for {} (RFC 7489 §7.1)",
                    dest.report_domain, domain.name
                ),
            )),
        }
    }
}
