//! What maildns wants published for a domain, built from its configuration and
//! the DKIM keys the key store says are published.

use maildns_providers::{Fqdn, TxtRecord};
use serde::Serialize;

use super::plan::Desired;
use crate::config::Domain;
use crate::records::RecordKind;
use crate::rotation::Selector;

/// A DKIM selector's record as the key store wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimEntry {
    /// The selector.
    pub selector: Selector,
    /// The record to publish (a revoked key has an empty `p=`); `None` removes it.
    pub record: Option<TxtRecord>,
    /// This key signs mail now: its record must never be removed.
    pub in_use: bool,
}

/// `<selector>._domainkey.<domain>` (RFC 6376 §3.6.2.1).
///
/// # Errors
/// [`maildns_providers::NameError`] when the name would be longer than 255
/// bytes.
pub fn selector_name(
    domain: &Fqdn,
    selector: &Selector,
) -> Result<Fqdn, maildns_providers::NameError> {
    crate::records::dkim::record_name(selector.as_str(), domain)
}

/// The desired values at each name maildns manages for `domain`.
pub fn for_domain(
    domain: &Domain,
    dkim: &[DkimEntry],
) -> Result<Vec<Desired>, maildns_providers::NameError> {
    // Exactly as many as there are names: a run holds every domain's job.
    let mut out = Vec::with_capacity(
        usize::from(domain.spf.is_some())
            + dkim.len()
            + usize::from(domain.dmarc.is_some())
            + usize::from(domain.adsp.is_some()),
    );
    let one = |name: Fqdn, kind: RecordKind, record: TxtRecord| Desired {
        name,
        kind,
        records: vec![record],
        ttl: domain.ttl,
        in_use: false,
        only_remove: None,
    };
    if let Some(spf) = &domain.spf {
        out.push(one(domain.name.clone(), RecordKind::Spf, spf.to_txt()));
    }
    for e in dkim {
        out.push(Desired {
            name: selector_name(&domain.name, &e.selector)?,
            kind: RecordKind::Dkim,
            records: e.record.iter().cloned().collect(),
            ttl: domain.ttl,
            in_use: e.in_use,
            only_remove: None,
        });
    }
    if let Some(dmarc) = &domain.dmarc {
        out.push(one(
            domain.name.child("_dmarc")?,
            RecordKind::Dmarc,
            dmarc.to_txt(),
        ));
    }
    if let Some(adsp) = &domain.adsp {
        out.push(one(
            domain.name.child("_adsp._domainkey")?,
            RecordKind::Adsp,
            adsp.to_txt(),
        ));
    }
    Ok(out)
}
