//! Between the rotation state and the rest: the policy from the configuration,
//! where private keys live, which DKIM records the state wants published, and
//! the key-generation step that `publish` (first key) and the runner share.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use maildns_providers::Fqdn;

use super::machine::{
    Action, Disposal, DomainState, KeyRecord, KeyStatus, Observation, Policy, PolicySettings,
    Withdrawal,
};
use crate::config::{Config, DkimPolicy, Retire};
use crate::keys::{self, Algorithm, PrivateKey, WriteOptions};
use crate::publish::DkimEntry;
use crate::records::dkim::{DkimKey, KeyType};

fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// The rotation policy of a domain's DKIM settings; `max_bits_for_host` from the
/// account's profile or its latest diagnosis (the 1024-bit fallback).
pub fn policy(dkim: &DkimPolicy, max_bits_for_host: Option<u32>) -> anyhow::Result<Policy> {
    Ok(Policy::new(settings(dkim, max_bits_for_host))?)
}

/// The rotation settings of a domain's DKIM settings (validated by
/// [`Policy::problems`], which the configuration loader also runs).
pub fn settings(dkim: &DkimPolicy, max_bits_for_host: Option<u32>) -> PolicySettings {
    PolicySettings {
        keys: dkim.keys.clone(),
        selector_format: dkim.selector_format.clone(),
        rotation_interval: delta(dkim.rotation_interval),
        overlap: delta(dkim.overlap),
        min_overlap: delta(dkim.min_overlap),
        withdrawal: match dkim.retire {
            Retire::Revoke => Withdrawal::Revoke,
            Retire::Remove => Withdrawal::Remove,
        },
        disposal: if dkim.publish_retired_private_keys {
            Disposal::Disclose
        } else {
            Disposal::Delete
        },
        max_bits_for_host,
        ..PolicySettings::default()
    }
}

/// Where the private key of `selector` goes: the signer's key directory when a
/// signer is configured, else `<state_dir>/keys/<domain>/<selector>.private`.
pub fn key_path(config: &Config, domain: &Fqdn, selector: &str) -> PathBuf {
    let base = match &config.signer {
        Some(s) => s.key_dir.clone(),
        None => config.state_dir.join("keys"),
    };
    base.join(domain.as_str())
        .join(format!("{selector}.private"))
}

/// The DKIM record of a private key.
pub fn record_for(key: &PrivateKey, testing: bool) -> anyhow::Result<DkimKey> {
    let kt = match key.algorithm() {
        Algorithm::Rsa => KeyType::Rsa,
        Algorithm::Ed25519 => KeyType::Ed25519,
    };
    let mut rec = DkimKey::new(kt, key.public_key_der()?);
    if testing {
        rec = rec.with_flags(vec![crate::records::dkim::Flag::Testing]);
    }
    Ok(rec)
}

/// What each key's status wants at its selector: the full record while it may be
/// published or signing, the revoked record (or nothing) once withdrawn.
pub fn dkim_entries(
    state: &DomainState,
    dkim: &DkimPolicy,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<DkimEntry>> {
    let mut out = Vec::new();
    for k in &state.keys {
        let full = matches!(
            k.status,
            KeyStatus::Generated
                | KeyStatus::Published
                | KeyStatus::Propagated
                | KeyStatus::Switched
                | KeyStatus::SwitchFailed
                | KeyStatus::Active
                | KeyStatus::Retiring
        );
        let withdrawn = matches!(
            k.status,
            KeyStatus::Withdrawing | KeyStatus::Withdrawn | KeyStatus::Disclosed
        ) || (k.status == KeyStatus::Destroyed
            && k.destroyed_at
                .is_some_and(|t| now - t < TimeDelta::days(30)));
        let record = if full {
            Some(load_record(k, dkim.testing)?.to_txt())
        } else if withdrawn {
            match dkim.retire {
                Retire::Revoke => Some(revoked(k)),
                Retire::Remove => None,
            }
        } else {
            continue;
        };
        out.push(DkimEntry {
            selector: k.selector.as_str().to_string(),
            record,
            in_use: k.status.may_be_signing(),
        });
    }
    Ok(out)
}

fn revoked(k: &KeyRecord) -> maildns_providers::TxtRecord {
    let kt = match k.algorithm {
        Algorithm::Rsa => KeyType::Rsa,
        Algorithm::Ed25519 => KeyType::Ed25519,
    };
    DkimKey::new(kt, Vec::new()).revoked().to_txt()
}

fn load_record(k: &KeyRecord, testing: bool) -> anyhow::Result<DkimKey> {
    let path = k.key_path.as_ref().with_context(|| {
        format!(
            "key {} has no private key file recorded",
            k.selector.as_str()
        )
    })?;
    let key = keys::load_private_key(std::path::Path::new(path))?;
    record_for(&key, testing)
}

/// Performs a `GenerateKey` action: makes the key and writes it (0600, never
/// overwriting; an existing file from an interrupted earlier run is adopted).
pub fn generate(
    config: &Config,
    domain: &Fqdn,
    action: &Action,
) -> anyhow::Result<Option<Observation>> {
    let Action::GenerateKey {
        selector,
        algorithm,
        bits,
    } = action
    else {
        return Ok(None);
    };
    let path = key_path(config, domain, selector.as_str());
    if path.exists() {
        // Crash after writing, before saving the state: the file is ours.
        let key = keys::load_private_key(&path)?;
        if key.algorithm() == *algorithm {
            return Ok(Some(Observation::KeyGenerated {
                selector: selector.clone(),
                key_path: path.display().to_string(),
            }));
        }
        anyhow::bail!(
            "{} exists and holds a {} key, not {}",
            path.display(),
            key.algorithm(),
            algorithm
        );
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    let spec = keys::KeySpec {
        algorithm: *algorithm,
        bits: *bits,
    };
    let key = PrivateKey::generate(spec)?;
    keys::write_private_key(&path, &key, WriteOptions::default())?;
    Ok(Some(Observation::KeyGenerated {
        selector: selector.clone(),
        key_path: path.display().to_string(),
    }))
}

/// Length of `p=` for RSA keys of each size (base64 of the SubjectPublicKeyInfo).
const RSA_P_LEN: [(u32, usize); 4] = [(4096, 736), (3072, 564), (2048, 392), (1024, 216)];

/// The largest RSA size whose DKIM record `profile` can hold unchanged, or `None`
/// when 4096 bits fits. Never below 1024 (RFC 8301).
pub fn max_rsa_bits_for(profile: &maildns_providers::Profile) -> Option<u32> {
    for (bits, len) in RSA_P_LEN {
        let value = format!("v=DKIM1; h=sha256; k=rsa; p={}", "A".repeat(len));
        let record = maildns_providers::TxtRecord::split(
            value.as_bytes(),
            maildns_providers::Split::Before(b"p="),
        );
        if profile.check(&profile.shape(&record)).is_ok() {
            return if bits == 4096 { None } else { Some(bits) };
        }
    }
    Some(1024)
}

/// The largest RSA key `account`'s host can hold: the lower of its declared
/// profile's limit and the latest `maildns diagnose` recommendation, if any.
pub fn max_bits_for(
    account: &str,
    providers: &crate::accounts::Providers,
    store: Option<&dyn super::Store>,
) -> Option<u32> {
    let from_profile = providers
        .get(account)
        .and_then(|p| max_rsa_bits_for(p.profile()));
    let from_diagnosis = store
        .and_then(|s| s.latest_diagnosis(account).ok().flatten())
        .and_then(|d| d.recommended_max_bits);
    match (from_profile, from_diagnosis) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Prepares a domain's DKIM records for `publish`: when `generate` and the domain
/// has no key yet, runs the machine to generate its first key(s) (saved before
/// anything is published), then returns what each key's status wants published.
pub fn prepare_publish(
    store: &dyn super::Store,
    config: &Config,
    domain: &crate::config::Domain,
    max_bits_for_host: Option<u32>,
    now: DateTime<Utc>,
    generate_first: bool,
) -> anyhow::Result<(Vec<DkimEntry>, Vec<super::Warning>)> {
    let Some(dkim) = &domain.dkim else {
        return Ok((Vec::new(), Vec::new()));
    };
    let policy = policy(dkim, max_bits_for_host)?;
    let mut state = store.load(&domain.name)?;
    let mut warnings = Vec::new();
    if generate_first && state.keys.is_empty() {
        // No key for a configuration that fails the lint gate (callers run it
        // first; this keeps the library from generating one without it).
        crate::gate::gate(config)?;
        let mut observations = Vec::new();
        // A handful of steps: plan the key(s), generate, stop at publishing.
        for _ in 0..4 {
            let d = super::step(&state, &observations, now, &policy);
            store.save(&d.state, &d.events)?;
            warnings.extend(d.warnings.iter().cloned());
            observations.clear();
            for a in d.work() {
                if let Some(o) = generate(config, &domain.name, a)? {
                    observations.push(o);
                }
            }
            state = d.state;
            if observations.is_empty() {
                break;
            }
        }
    }
    for w in super::strength::key_strength_warnings(&state) {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    Ok((dkim_entries(&state, dkim, now)?, warnings))
}

/// Tells the machine that `publish` put the records of freshly generated keys at
/// the host (so the rotation goes on with propagation, not another publish).
pub fn after_publish(
    store: &dyn super::Store,
    domain: &crate::config::Domain,
    max_bits_for_host: Option<u32>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(dkim) = &domain.dkim else {
        return Ok(());
    };
    let policy = policy(dkim, max_bits_for_host)?;
    let state = store.load(&domain.name)?;
    let observations: Vec<Observation> = state
        .keys
        .iter()
        .filter(|k| k.status == KeyStatus::Generated)
        .map(|k| Observation::KeyPublished {
            selector: k.selector.clone(),
        })
        .collect();
    if observations.is_empty() {
        return Ok(());
    }
    let d = super::step(&state, &observations, now, &policy);
    store.save(&d.state, &d.events)?;
    Ok(())
}

/// Removes private key material nothing should keep, at the start of every
/// command that writes keys (a killed run cannot clean up after itself):
///
/// - temporary key files (`.<selector>.private.<random>.tmp`, possibly holding a
///   complete key) left in each configured domain's key directory and in the
///   directory of every key the store knows, unless a live writer holds them
///   ([`keys::remove_stale_temp_files`]);
/// - the key file of every destroyed selector that is back on disk (a crash
///   between deleting and saving, a restore from backup), unless a key that is
///   not destroyed uses the same file.
///
/// Returns what was removed (paths only, never contents).
///
/// # Errors
///
/// The store cannot be read, or a directory cannot be listed or a file removed.
pub fn sweep(
    config: &Config,
    store: Option<&dyn super::store::Store>,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs: std::collections::BTreeSet<PathBuf> = config
        .domains
        .iter()
        .filter(|d| d.dkim.is_some())
        .filter_map(|d| key_path(config, &d.name, "x").parent().map(PathBuf::from))
        .collect();
    let mut removed = Vec::new();
    if let Some(store) = store {
        for domain in store.domains()? {
            let state = store.load(&domain)?;
            let live: Vec<&str> = state
                .keys
                .iter()
                .filter(|k| k.status != KeyStatus::Destroyed)
                .filter_map(|k| k.key_path.as_deref())
                .collect();
            for k in &state.keys {
                let Some(file) = k.key_path.as_deref() else {
                    continue;
                };
                let path = PathBuf::from(file);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    dirs.insert(dir.to_path_buf());
                }
                if k.status != KeyStatus::Destroyed || live.contains(&file) {
                    continue;
                }
                match std::fs::remove_file(&path) {
                    Ok(()) => removed.push(path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!(
                                "removing {}, the private key of destroyed selector {} of {domain}",
                                path.display(),
                                k.selector
                            )
                        });
                    }
                }
            }
        }
    }
    for dir in &dirs {
        removed.extend(keys::remove_stale_temp_files(dir)?);
    }
    for path in &removed {
        tracing::warn!("removed left-over private key material {}", path.display());
    }
    Ok(removed)
}
