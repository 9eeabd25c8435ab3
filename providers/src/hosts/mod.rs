//! One module per DNS host, all the same shape: a `HOST` entry for the
//! [`crate::registry`] (kind, descriptor, credential, required settings,
//! constructor), a `Config` (typed, validated, credentials passed in, never read
//! from the environment here), a constructor that validates it and takes the
//! [`crate::Profile`] from the host's descriptor, and the [`crate::Provider`]
//! implementation.

pub mod cloudflare;
pub mod desec;
pub mod digitalocean;
pub mod gandi;
pub mod google;
pub mod hetzner;
pub mod powerdns;
pub mod rfc2136;
pub mod route53;
pub mod zonefile;

use crate::{Error, Fqdn, Operation, Profile, TxtRecord, TxtSet};

/// For hosts that may re-split values: each record shaped to the host's string
/// limit, checked against its profile before anything is sent, duplicates dropped.
pub(crate) fn check_all(
    kind: &'static str,
    profile: &Profile,
    name: &Fqdn,
    set: &TxtSet,
) -> Result<Vec<TxtRecord>, Error> {
    let mut out: Vec<TxtRecord> = Vec::new();
    for shaped in set.records.iter().map(|r| profile.shape(r)) {
        profile.check_set(
            kind,
            Operation::Replace,
            name,
            std::slice::from_ref(&shaped),
        )?;
        if !out.contains(&shaped) {
            out.push(shaped);
        }
    }
    Ok(out)
}
