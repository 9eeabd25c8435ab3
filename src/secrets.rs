//! Credential lookup (stub until the secrets module lands).

use std::collections::BTreeMap;

use maildns_providers::Secret;

use crate::config::Account;

/// Looks up an account's credential: environment variable, then token file.
pub fn lookup(account: &Account, env: &BTreeMap<String, String>) -> anyhow::Result<Secret> {
    if let Some(v) = env.get(&account.credential.env) {
        return Ok(Secret::new(v.trim()));
    }
    anyhow::bail!(
        "no credential for account '{}': set {}",
        account.name,
        account.credential.env
    )
}
