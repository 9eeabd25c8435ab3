//! Between the rotation state and the rest: the policy from the configuration,
//! where private keys live, which DKIM records the state wants published, and
//! the key-generation step that `publish` (first key) and the runner share, and
//! the fallback of a pending key the DNS host cannot hold ([`fall_back`]).

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use maildns_providers::Fqdn;

use super::machine::{
    Action, DomainState, Event, KeyRecord, KeyStatus, Observation, Policy, PolicyError, Warning,
    Withdrawal,
};
use super::{RunnerError, StoreError};
use crate::config::{Config, DkimPolicy};
use crate::gate::GateError;
use crate::keys::{self, Algorithm, KeyError, PrivateKey, WriteOptions};
use crate::publish::{DkimEntry, Mode};
use crate::records::dkim::{DkimKey, KeyType};
use crate::signer::Signer;

/// Why a key could not be prepared, generated, loaded or swept, or a domain's
/// key state not advanced. Wrapped errors keep their own message (and
/// sources); the others say what was done to which file, with the cause as
/// their source (so `{:#}` through anyhow reads "removing <file>: <cause>").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A key could not be generated, read, written or converted.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The domain's DKIM policy is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The configuration fails the lint gate (nothing was generated).
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The signer could not be set up from the configuration.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The signer refused the names or could not write the key file.
    #[error(transparent)]
    Signer(#[from] crate::signer::SignerError),
    /// The state names a key without a private key file.
    #[error("key {selector} has no private key file recorded")]
    NoKeyFile {
        /// The key's selector.
        selector: String,
    },
    /// The key file of a selector holds a key of another algorithm.
    #[error("{} exists and holds a {found} key, not {wanted}", path.display())]
    WrongAlgorithm {
        /// The key file.
        path: PathBuf,
        /// What it holds.
        found: Algorithm,
        /// What the selector is for.
        wanted: Algorithm,
    },
    /// The key file holds another RSA size, and the signer may be using it.
    #[error("{} holds a {found}-bit key, not {wanted}, and the signer's key table names it", path.display())]
    SignerNamesKey {
        /// The key file.
        path: PathBuf,
        /// Its size in bits.
        found: u32,
        /// The size wanted.
        wanted: u32,
    },
    /// A file or directory could not be read, created or removed.
    #[error("{action} {}", path.display())]
    Io {
        /// `reading`, `creating` or `removing`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The signer's key table cannot be parsed.
    #[error("reading {}", path.display())]
    KeyTable {
        /// The key table.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: crate::signer::opendkim::ParseError,
    },
    /// The private key file of a destroyed selector cannot be removed.
    #[error("removing {}, the private key of destroyed selector {selector} of {domain}", path.display())]
    DestroyedKey {
        /// The key file.
        path: PathBuf,
        /// The destroyed selector.
        selector: String,
        /// Its domain.
        domain: Fqdn,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
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
///
/// # Errors
/// The public key cannot be encoded.
pub fn record_for(key: &PrivateKey, testing: bool) -> Result<DkimKey, KeyError> {
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
///
/// # Errors
/// The private key of a key whose full record is wanted is not recorded or
/// cannot be read.
pub fn dkim_entries(
    state: &DomainState,
    dkim: &DkimPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<DkimEntry>, KeyringError> {
    // Only the public half is needed: read without building the private key.
    entries(state, dkim, now, &|k: &KeyRecord| {
        let path = k.key_path.as_ref().ok_or_else(|| KeyringError::NoKeyFile {
            selector: k.selector.as_str().to_string(),
        })?;
        let (algorithm, _, der) = keys::load_public_key(std::path::Path::new(path))?;
        let kt = match algorithm {
            Algorithm::Rsa => KeyType::Rsa,
            Algorithm::Ed25519 => KeyType::Ed25519,
        };
        let mut rec = DkimKey::new(kt, der);
        if dkim.testing {
            rec = rec.with_flags(vec![crate::records::dkim::Flag::Testing]);
        }
        Ok(rec)
    })
}

/// The signer whose keys live in a store shared by every MTA and every
/// machine (`opendkim-sql`, `rspamd`), set up from the configuration;
/// `None` without a signer or with file-based OpenDKIM (whose key files are
/// the keys).
///
/// # Errors
/// The signer cannot be set up (see [`super::runner::signer_from_config`]).
pub fn shared_signer(config: &Config) -> Result<Option<Signer>, KeyringError> {
    match &config.signer {
        Some(s) if s.sql.is_some() || s.rspamd.is_some() => {
            Ok(Some(super::runner::signer_from_config(s, &config.path)?))
        }
        _ => Ok(None),
    }
}

/// The private key of `k`, looked up as the runner looks it up: with a
/// database-backed `signer` ([`shared_signer`]) the recorded key file or
/// this machine's copy, else the key in the engine's shared store
/// ([`Signer::load_key`]); otherwise the recorded key file. With `share`, a
/// key not yet switched to is (re)put into the shared store on the way
/// ([`Signer::share_key`], nothing when it is there), as the runner does.
///
/// # Errors
/// No copy of the key exists (the error names the selector and where
/// maildns looked), or it cannot be read; the shared store cannot be
/// reached or holds another key under the selector.
pub fn load_key(
    signer: Option<&Signer>,
    domain: &Fqdn,
    k: &KeyRecord,
    share: bool,
) -> Result<PrivateKey, KeyringError> {
    let recorded = k.key_path.as_deref().map(std::path::Path::new);
    let Some(signer) = signer else {
        let path = recorded.ok_or_else(|| KeyringError::NoKeyFile {
            selector: k.selector.as_str().to_string(),
        })?;
        return Ok(keys::load_private_key(path)?);
    };
    let d = domain.as_str();
    let key = crate::signer::block_on(signer.load_key(d, &k.selector, recorded))?;
    if share
        && signer.shares_keys()
        && matches!(
            k.status,
            KeyStatus::Generated | KeyStatus::Published | KeyStatus::Propagated
        )
    {
        crate::signer::block_on(signer.share_key(d, &k.selector, &key))?;
    }
    Ok(key)
}

/// [`dkim_entries`] with each private key found by [`load_key`] (the
/// engine's shared store too, for a database-backed `signer`): what
/// `publish` and `records` publish.
///
/// # Errors
/// As [`load_key`], for a key whose full record is wanted.
pub fn dkim_entries_from(
    state: &DomainState,
    dkim: &DkimPolicy,
    now: DateTime<Utc>,
    signer: Option<&Signer>,
    share: bool,
) -> Result<Vec<DkimEntry>, KeyringError> {
    if signer.is_none() {
        // The recorded key files, of which publishing needs the public half.
        return dkim_entries(state, dkim, now);
    }
    dkim_entries_with(state, dkim, now, &|k: &KeyRecord| {
        load_key(signer, &state.domain, k, share)
    })
}

/// Whether a key at `status` wants its full record published (it may be
/// published, propagated or signing): the keys whose private key
/// [`dkim_entries`] reads.
pub fn wants_full_record(status: KeyStatus) -> bool {
    matches!(
        status,
        KeyStatus::Generated
            | KeyStatus::Published
            | KeyStatus::Propagated
            | KeyStatus::Switched
            | KeyStatus::SwitchFailed
            | KeyStatus::Active
            | KeyStatus::Retiring
    )
}

/// [`dkim_entries`] with the private key of each key that wants its full
/// record given by `load` (the runner reads it from the key file or, for a
/// database-backed signer, from the engine's shared store).
///
/// # Errors
/// `load` fails for a key whose full record is wanted.
pub fn dkim_entries_with(
    state: &DomainState,
    dkim: &DkimPolicy,
    now: DateTime<Utc>,
    load: &dyn Fn(&KeyRecord) -> Result<PrivateKey, KeyringError>,
) -> Result<Vec<DkimEntry>, KeyringError> {
    entries(state, dkim, now, &|k: &KeyRecord| {
        Ok(record_for(&load(k)?, dkim.testing)?)
    })
}

/// [`dkim_entries_with`], the full record of a key given by `record`.
fn entries(
    state: &DomainState,
    dkim: &DkimPolicy,
    now: DateTime<Utc>,
    record: &dyn Fn(&KeyRecord) -> Result<DkimKey, KeyringError>,
) -> Result<Vec<DkimEntry>, KeyringError> {
    let mut out = Vec::new();
    for k in &state.keys {
        let full = wants_full_record(k.status);
        let withdrawn = matches!(
            k.status,
            KeyStatus::Withdrawing | KeyStatus::Withdrawn | KeyStatus::Disclosed
        ) || (k.status == KeyStatus::Destroyed
            && k.destroyed_at
                .is_some_and(|t| now - t < TimeDelta::days(30)));
        let record = if full {
            Some(record(k)?.to_txt())
        } else if withdrawn {
            match dkim.policy.settings().withdrawal {
                Withdrawal::Revoke => Some(revoked(k)),
                Withdrawal::Remove => None,
            }
        } else {
            continue;
        };
        out.push(DkimEntry {
            selector: k.selector.clone(),
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

/// Performs a `GenerateKey` action: makes the key and writes it (0600, never
/// overwriting; an existing file from an interrupted earlier run is adopted).
/// `None` for any other action.
///
/// # Errors
/// The existing file holds another algorithm, or another size the signer's
/// key table names; the key cannot be generated, read or written.
pub fn generate(
    config: &Config,
    domain: &Fqdn,
    action: &Action,
) -> Result<Option<Observation>, KeyringError> {
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
        let same_size = key.algorithm() != Algorithm::Rsa || key.bits() == *bits;
        if key.algorithm() == *algorithm && same_size {
            return Ok(Some(Observation::KeyGenerated {
                selector: selector.clone(),
                key_path: path.display().to_string(),
            }));
        }
        if key.algorithm() != *algorithm {
            return Err(KeyringError::WrongAlgorithm {
                path,
                found: key.algorithm(),
                wanted: *algorithm,
            });
        }
        // Written for this selector before a fallback to a smaller size
        // (selectors are never reused): never published, so replaced, unless
        // the signer's tables name it.
        if signer_names(config, &path)? {
            return Err(KeyringError::SignerNamesKey {
                path,
                found: key.bits(),
                wanted: *bits,
            });
        }
        std::fs::remove_file(&path).map_err(|source| KeyringError::Io {
            action: "removing",
            path: path.clone(),
            source,
        })?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| KeyringError::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
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

/// Rounds of [`prepare_publish`] making a domain's first key(s): plan, generate
/// and save (a guard: two or three suffice).
const FIRST_KEY_ROUNDS: usize = 8;

/// The runner's `GenerateKey` step, shared by rotation and `publish` (first
/// key): with a `signer`, the signer writes a NEW key file in its key directory
/// with its owner and mode (an existing file is left as it is); then the file
/// is adopted, or written under `<state_dir>/keys` without a signer
/// ([`generate`]).
///
/// # Errors
/// The signer refuses the names or cannot write the file; the key cannot be
/// generated, read or written.
pub fn generate_key(
    config: &Config,
    signer: Option<&crate::signer::Signer>,
    domain: &Fqdn,
    action: &Action,
) -> Result<Option<Observation>, KeyringError> {
    if let (
        Some(signer),
        Action::GenerateKey {
            selector,
            algorithm,
            bits,
        },
    ) = (signer, action)
    {
        let path = signer.key_path(domain.as_str(), selector)?;
        if !path.exists() {
            let key = PrivateKey::generate(keys::KeySpec {
                algorithm: *algorithm,
                bits: *bits,
            })?;
            signer.install_key(domain.as_str(), selector, &key)?;
        }
    }
    generate(config, domain, action)
}

/// [`generate_key`] with the engine's shared store of a database-backed
/// signer: a key the store already holds for the selector (another machine
/// made it) is adopted as this machine's copy, never replaced by a second
/// key; a key generated here goes into the store at once
/// ([`Signer::share_key`]; unused until the switch), before the state
/// records it as generated, so every machine finds it. The runner's
/// generate step and `publish`'s first key both come here.
///
/// # Errors
/// As [`generate_key`]; the shared store cannot be reached, or holds
/// another key under the selector.
pub fn generate_shared(
    config: &Config,
    signer: Option<&Signer>,
    domain: &Fqdn,
    action: &Action,
) -> Result<Option<Observation>, KeyringError> {
    let shared = signer.filter(|s| s.shares_keys());
    let d = domain.as_str();
    if let (Some(s), Action::GenerateKey { selector, .. }) = (shared, action)
        && !s.key_path(d, selector)?.exists()
        && let Some(key) = crate::signer::block_on(s.stored_key(d, selector))?
    {
        s.install_key(d, selector, &key)?;
    }
    let observation = generate_key(config, signer, domain, action)?;
    if let (
        Some(s),
        Some(Observation::KeyGenerated {
            selector, key_path, ..
        }),
    ) = (shared, &observation)
    {
        let key = keys::load_private_key(std::path::Path::new(key_path))?;
        crate::signer::block_on(s.share_key(d, selector, &key))?;
    }
    Ok(observation)
}

/// True when the signer's key table (if a signer with file tables is
/// configured and the table exists) names the key file `path`: the signer may
/// be signing with it. An `opendkim-sql` signer never names a key FILE (its
/// rows hold the key data; a KeyTable row is used only once the SigningTable
/// names it, at the switch, after publication).
fn signer_names(config: &Config, path: &std::path::Path) -> Result<bool, KeyringError> {
    let Some(signer) = config.signer.as_ref().filter(|s| s.sql.is_none()) else {
        return Ok(false);
    };
    let text = match std::fs::read_to_string(&signer.key_table) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(KeyringError::Io {
                action: "reading",
                path: signer.key_table.clone(),
                source,
            });
        }
    };
    let table = crate::signer::opendkim::KeyTable::parse(&text).map_err(|source| {
        KeyringError::KeyTable {
            path: signer.key_table.clone(),
            source,
        }
    })?;
    Ok(table
        .entries()
        .any(|e| std::path::Path::new(&e.key) == path))
}

/// What [`fall_back`] did to a domain's state.
#[derive(Debug, Default)]
pub struct Fallback {
    /// Events to save with the changed state.
    pub events: Vec<Event>,
    /// Warnings for the operator.
    pub warnings: Vec<Warning>,
    /// Private key files of discarded keys, to remove once the state is saved
    /// (a file that is already gone counts as removed).
    pub remove: Vec<PathBuf>,
}

impl Fallback {
    /// True when the state changed (save it, then remove the files).
    pub fn changed(&self) -> bool {
        !self.events.is_empty()
    }

    /// Removes the discarded keys' files; returns the failures as warnings.
    pub fn remove_files(&self) -> Vec<Warning> {
        let mut out = Vec::new();
        for path in &self.remove {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => out.push(Warning {
                    code: "key_not_removed",
                    message: format!("removing the discarded key {}: {e}", path.display()),
                }),
            }
        }
        out
    }
}

/// The RSA size a key of `bits` gets behind a host that holds at most `max`
/// bits: the largest of 4096/3072/2048/1024 that fits, never below 1024.
fn fitting_bits(bits: u32, max: u32) -> u32 {
    [4096, 3072, 2048, 1024]
        .into_iter()
        .find(|b| *b <= max && *b <= bits)
        .unwrap_or(1024)
}

/// Falls back a pending RSA key the host cannot hold (larger than the policy's
/// `max_bits_for_host`, e.g. after a publish read-back found its record cut
/// short) so the next step publishes one it can:
///
/// - a `planned` key (nothing generated or published yet) keeps its selector
///   and gets the fitting size;
/// - a `generated` or `published` key (its record may sit at the host, cut
///   short; no signer ever used it) is discarded: it becomes `destroyed`
///   (kept as history, so its selector is not reused, and its record is
///   revoked or removed like a retired key's) and its file is listed for
///   removal; the machine then plans a new key of the fitting size under a
///   new selector (a resolver may still cache the cut record at the old one).
///   A key whose file the signer's key table names is left alone, with a
///   warning.
///
/// Keys that may be signing (`switched`, `active`, ...), `propagated` keys
/// (served intact everywhere) and retired keys are never touched.
pub fn fall_back(
    config: &Config,
    state: &mut DomainState,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Fallback {
    let mut out = Fallback::default();
    let Some(max) = policy.settings().max_bits_for_host else {
        return out;
    };
    let domain = state.domain.clone();
    for k in &mut state.keys {
        if k.algorithm != Algorithm::Rsa || k.bits <= max.max(1024) {
            continue;
        }
        let fit = fitting_bits(k.bits, max);
        let event = |selector: &super::Selector, detail: String| Event {
            at: now,
            domain: domain.clone(),
            selector: Some(selector.clone()),
            what: "bits_fallback".into(),
            outcome: "warning".into(),
            detail,
        };
        match k.status {
            KeyStatus::Planned => {
                let message = format!(
                    "{domain}: the DNS host cannot hold the {}-bit key planned as {} (host limit {max} bits): it gets {fit} bits",
                    k.bits, k.selector
                );
                out.events.push(event(&k.selector, message.clone()));
                out.warnings.push(Warning {
                    code: "bits_fallback",
                    message,
                });
                k.bits = fit;
            }
            KeyStatus::Generated | KeyStatus::Published => {
                let path = k.key_path.as_ref().map(PathBuf::from);
                if let Some(p) = &path
                    && !matches!(signer_names(config, p), Ok(false))
                {
                    out.warnings.push(Warning {
                        code: "bits_fallback_blocked",
                        message: format!(
                            "{domain}: the DNS host cannot hold the {}-bit key {}, but the signer's key table names its file (or cannot be read): left alone",
                            k.bits, k.selector
                        ),
                    });
                    continue;
                }
                let message = format!(
                    "{domain}: the DNS host cannot hold the {}-bit key {} (host limit {max} bits): discarded before use; a {fit}-bit key replaces it under a new selector",
                    k.bits, k.selector
                );
                out.events.push(event(&k.selector, message.clone()));
                out.warnings.push(Warning {
                    code: "bits_fallback",
                    message: message.clone(),
                });
                k.status = KeyStatus::Destroyed;
                k.destroyed_at = Some(now);
                k.not_before = None;
                k.attempts = 0;
                k.failure = None;
                out.remove.extend(path);
            }
            _ => {}
        }
    }
    out
}

/// Records on the key whose record is at `name` that `publish` found it not
/// kept by the host (`reason`), so `status` shows it; an event says the same.
/// Nothing happens when no key of `domain` has its record there.
///
/// # Errors
/// The store's.
pub fn record_publish_failure(
    store: &dyn super::Store,
    domain: &Fqdn,
    name: &Fqdn,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut state = store.load(domain)?;
    let Some(k) = state
        .keys
        .iter_mut()
        .find(|k| crate::publish::selector_name(domain, &k.selector).is_ok_and(|n| &n == name))
    else {
        return Ok(());
    };
    k.attempts = k.attempts.saturating_add(1);
    k.failure = Some(reason.to_string());
    let event = Event {
        at: now,
        domain: domain.clone(),
        selector: Some(k.selector.clone()),
        what: "publish_key".into(),
        outcome: "error".into(),
        detail: format!("attempt {}: {reason}", k.attempts),
    };
    store.save(&state, &[event])?;
    Ok(())
}

/// The warnings of a domain whose configured RSA size its host cannot hold,
/// given on every run while the fallback applies.
pub fn fallback_warnings(domain: &crate::config::Domain, policy: &Policy) -> Vec<Warning> {
    let mut out = Vec::new();
    for spec in &policy.settings().keys {
        let (bits, fallback) = policy.effective_bits(spec);
        if fallback {
            out.push(Warning {
                code: "bits_fallback",
                message: format!(
                    "{}: the DNS host of account '{}' cannot hold a {}-bit RSA key (limit {} bits): new keys get {bits} bits",
                    domain.name,
                    domain.account,
                    spec.bits,
                    policy.settings().max_bits_for_host.unwrap_or_default()
                ),
            });
        }
    }
    out
}

/// Length of `p=` for RSA keys of each size (base64 of the SubjectPublicKeyInfo).
const RSA_P_LEN: [(u32, usize); 4] = [(4096, 736), (3072, 564), (2048, 392), (1024, 216)];

/// The largest RSA size whose DKIM record `profile` can hold unchanged, or `None`
/// when 4096 bits fits. Never below 1024 (RFC 8301).
pub fn max_rsa_bits_for(profile: &maildns_providers::Profile) -> Option<u32> {
    for (bits, _) in RSA_P_LEN {
        if rsa_record_fits(profile, bits) {
            return if bits == 4096 { None } else { Some(bits) };
        }
    }
    Some(1024)
}

/// Whether `profile` holds the DKIM record of an RSA key of `bits` (one of
/// 1024, 2048, 3072, 4096) unchanged.
pub fn rsa_record_fits(profile: &maildns_providers::Profile, bits: u32) -> bool {
    let Some((_, len)) = RSA_P_LEN.iter().find(|(b, _)| *b == bits) else {
        return false;
    };
    let value = format!("v=DKIM1; h=sha256; k=rsa; p={}", "A".repeat(*len));
    let record = maildns_providers::TxtRecord::split(
        value.as_bytes(),
        maildns_providers::Split::Before(b"p="),
    );
    profile.check(&profile.shape(&record)).is_ok()
}

/// The largest RSA key `account`'s host can hold: the lower of its declared
/// profile's limit and the latest `maildns diagnose` recommendation, if any.
///
/// # Errors
/// The store cannot read the latest diagnosis (never taken as "no limit":
/// a key too large for the host would be published cut short).
pub fn max_bits_for(
    account: &str,
    providers: &crate::accounts::Providers,
    store: Option<&dyn super::Store>,
) -> Result<Option<u32>, super::StoreError> {
    let from_profile = providers
        .get(account)
        .and_then(|p| max_rsa_bits_for(p.profile()));
    let from_diagnosis = match store {
        Some(s) => s.latest_diagnosis(account)?,
        None => None,
    }
    .and_then(|d| d.recommended_max_bits);
    Ok(match (from_profile, from_diagnosis) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Prepares a domain's DKIM records for `publish`: with [`Mode::Apply`], when the
/// domain has no key yet, runs the machine to generate its first key(s) (saved
/// before anything is published), and falls back a pending key its host cannot
/// hold ([`fall_back`]); then returns what each key's status wants published.
///
/// # Errors
/// [`KeyringError::Gate`] when the configuration fails the lint gate and a key
/// would be made or discarded; [`KeyringError::Store`] when the state cannot
/// be read or saved; the policy, signer or key cannot be had.
pub fn prepare_publish(
    store: &dyn super::Store,
    config: &Config,
    domain: &crate::config::Domain,
    max_bits_for_host: Option<u32>,
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<(Vec<DkimEntry>, Vec<super::Warning>), KeyringError> {
    let generate_first = mode == Mode::Apply;
    let Some(dkim) = &domain.dkim else {
        return Ok((Vec::new(), Vec::new()));
    };
    let policy = dkim.policy.for_host(max_bits_for_host);
    let mut state = store.load(&domain.name)?;
    let mut warnings = fallback_warnings(domain, &policy);
    // Keys in the engine's shared store are found as the runner finds them.
    let shared = shared_signer(config)?;
    if generate_first {
        let mut next = state.clone();
        let fallback = fall_back(config, &mut next, &policy, now);
        if fallback.changed() {
            // Nothing changes for a configuration that fails the lint gate.
            crate::gate::gate(config)?;
            store.save(&next, &fallback.events)?;
            warnings.extend(fallback.remove_files());
            state = next;
        }
        warnings.extend(fallback.warnings);
    }
    // No key yet, or only keys discarded before use: the first key(s).
    if generate_first && state.keys.iter().all(|k| k.status == KeyStatus::Destroyed) {
        // No key for a configuration that fails the lint gate (callers run it
        // first; this keeps the library from generating one without it).
        crate::gate::gate(config)?;
        // The machine plans the key(s); each `GenerateKey` it asks for is
        // performed by the runner's own generate step ([`generate_key`]: through
        // the signer when one is configured, so the file is the signer's); the
        // rounds end when it asks for anything else (publishing: the caller's).
        let signer = match &shared {
            Some(s) => Some(s.clone()),
            None => config
                .signer
                .as_ref()
                .map(|s| super::runner::signer_from_config(s, &config.path))
                .transpose()?,
        };
        let mut observations = Vec::new();
        for _ in 0..FIRST_KEY_ROUNDS {
            let d = super::step(&state, &observations, now, &policy);
            if d.changed(&state) {
                store.save(&d.state, &d.events)?;
            }
            for w in &d.warnings {
                if !warnings.iter().any(|x| x.code == w.code) {
                    warnings.push(w.clone());
                }
            }
            observations.clear();
            for a in d.work().filter(|a| matches!(a, Action::GenerateKey { .. })) {
                observations.extend(generate_shared(config, signer.as_ref(), &domain.name, a)?);
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
    let entries = dkim_entries_from(&state, dkim, now, shared.as_ref(), generate_first)?;
    Ok((entries, warnings))
}

/// Whether [`prepare_publish`] in [`Mode::Apply`] makes `domain`'s first
/// key(s): it has DKIM settings and no key, or only keys discarded before use.
/// (A fallback to a smaller size may also make one; callers use this to
/// schedule the slow ones, not to decide whether keys are made.)
///
/// # Errors
/// The store cannot be read.
pub fn needs_first_key(
    store: &dyn super::Store,
    domain: &crate::config::Domain,
) -> Result<bool, KeyringError> {
    if domain.dkim.is_none() {
        return Ok(false);
    }
    let state = store.load(&domain.name)?;
    Ok(state.keys.iter().all(|k| k.status == KeyStatus::Destroyed))
}

/// Tells the machine that `publish` put the records of freshly generated keys at
/// the host (so the rotation goes on with propagation, not another publish).
///
/// # Errors
/// The policy is invalid, or the store cannot be read or saved.
pub fn after_publish(
    store: &dyn super::Store,
    domain: &crate::config::Domain,
    max_bits_for_host: Option<u32>,
    now: DateTime<Utc>,
) -> Result<(), KeyringError> {
    let Some(dkim) = &domain.dkim else {
        return Ok(());
    };
    let policy = dkim.policy.for_host(max_bits_for_host);
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
) -> Result<Vec<PathBuf>, KeyringError> {
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
                    Err(source) => {
                        return Err(KeyringError::DestroyedKey {
                            path,
                            selector: k.selector.to_string(),
                            domain,
                            source,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::machine::{Selector, check_invariants, step};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-10T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap()
    }

    fn key(selector: &str, status: KeyStatus, path: Option<&std::path::Path>) -> KeyRecord {
        KeyRecord {
            selector: Selector::parse(selector).unwrap(),
            algorithm: Algorithm::Rsa,
            bits: 2048,
            status,
            created_at: now() - TimeDelta::days(40),
            key_path: path.map(|p| p.display().to_string()),
            published_at: None,
            propagated_at: None,
            safe_after: None,
            active_at: None,
            retired_at: None,
            withdrawn_at: None,
            destroyed_at: None,
            withdrawal_safe_after: None,
            not_before: Some(now() + TimeDelta::minutes(1)),
            attempts: 1,
            failure: Some("the host truncated it".into()),
            held: None,
        }
    }

    fn active(selector: &str) -> KeyRecord {
        let mut k = key(
            selector,
            KeyStatus::Active,
            Some(std::path::Path::new("/k")),
        );
        k.safe_after = Some(now() - TimeDelta::days(35));
        k.active_at = Some(now() - TimeDelta::days(35));
        k
    }

    fn setup(dir: &std::path::Path, max: Option<u32>) -> (Config, Policy) {
        let text = format!(
            r#"state_dir = "{d}/state"
[accounts.z]
provider = "zonefile"
path = "{d}/zone.db"

[domains."example.com"]
account = "z"
[domains."example.com".dkim]
bits = 2048

[signer]
confirm = "tables-only"
key_dir = "{d}/keys"
key_table = "{d}/key.table"
signing_table = "{d}/signing.table"
user = "opendkim"
"#,
            d = dir.display()
        );
        let config = crate::config::parse(&text, &dir.join("maildns.toml")).unwrap();
        let dkim = config.domains[0].dkim.clone().unwrap();
        let policy = dkim.policy.for_host(max);
        (config, policy)
    }

    fn state(keys: Vec<KeyRecord>) -> DomainState {
        let mut s = DomainState::new(Fqdn::parse("example.com").unwrap());
        s.keys = keys;
        s
    }

    #[test]
    fn a_planned_key_keeps_its_selector_and_gets_the_fitting_size() {
        let dir = tempfile::tempdir().unwrap();
        let (config, policy) = setup(dir.path(), Some(1024));
        let mut st = state(vec![key("202401", KeyStatus::Planned, None)]);
        let f = fall_back(&config, &mut st, &policy, now());
        assert!(f.changed());
        assert!(f.remove.is_empty());
        assert_eq!(st.keys[0].status, KeyStatus::Planned);
        assert_eq!(st.keys[0].bits, 1024);
        assert_eq!(f.events[0].what, "bits_fallback");
        assert!(f.events[0].detail.contains("it gets 1024 bits"));
    }

    #[test]
    fn a_published_key_is_discarded_and_a_new_selector_planned_at_1024_bits() {
        let dir = tempfile::tempdir().unwrap();
        let (config, policy) = setup(dir.path(), Some(1024));
        let file = dir.path().join("202402.private");
        std::fs::write(&file, "x").unwrap();
        let mut st = state(vec![
            active("202401"),
            key("202402", KeyStatus::Published, Some(&file)),
        ]);
        let before = st.clone();
        let f = fall_back(&config, &mut st, &policy, now());
        assert!(f.changed());
        assert_eq!(st.keys[0], before.keys[0], "the active key is untouched");
        let gone = &st.keys[1];
        assert_eq!(gone.status, KeyStatus::Destroyed);
        assert_eq!(gone.destroyed_at, Some(now()));
        assert_eq!(f.remove, vec![file.clone()]);
        assert!(file.exists(), "removed only after the state is saved");
        assert!(f.remove_files().is_empty());
        assert!(!file.exists());
        check_invariants(&st).expect("a discarded key keeps the invariants");
        // The next step plans its successor at the fitting size, new selector.
        let d = step(&st, &[], now(), &policy);
        let planned: Vec<_> = d
            .state
            .keys
            .iter()
            .filter(|k| k.status == KeyStatus::Planned)
            .collect();
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].selector.as_str(), "202401a");
        assert_eq!(planned[0].bits, 1024);
        assert!(d.warnings.iter().any(|w| w.code == "bits_fallback"));
        // Its record is revoked like a retired key's.
        let dkim = config.domains[0].dkim.clone().unwrap();
        let entries = dkim_entries(&state(vec![gone.clone()]), &dkim, now()).unwrap();
        assert_eq!(
            entries[0].record.as_ref().map(|r| r.value_lossy()),
            Some("v=DKIM1; h=sha256; k=rsa; p=".to_string())
        );
    }

    #[test]
    fn a_key_the_signer_names_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (config, policy) = setup(dir.path(), Some(1024));
        let file = dir.path().join("keys/example.com/202402.private");
        std::fs::write(
            dir.path().join("key.table"),
            format!(
                "202402._domainkey.example.com example.com:202402:{}\n",
                file.display()
            ),
        )
        .unwrap();
        assert!(signer_names(&config, &file).unwrap());
        assert!(!signer_names(&config, &dir.path().join("other.private")).unwrap());
        let mut st = state(vec![key("202402", KeyStatus::Generated, Some(&file))]);
        let before = st.clone();
        let f = fall_back(&config, &mut st, &policy, now());
        assert!(!f.changed());
        assert_eq!(st, before);
        assert_eq!(f.warnings[0].code, "bits_fallback_blocked");
    }

    #[test]
    fn max_bits_for_reports_a_store_that_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::rotation::SqliteStore::open(dir.path()).unwrap();
        let providers = crate::accounts::Providers::new();
        assert_eq!(max_bits_for("z", &providers, Some(&store)).unwrap(), None);
        // A store whose diagnoses cannot be read is an error, not "no limit".
        rusqlite::Connection::open(dir.path().join(crate::rotation::store::DB_FILE))
            .unwrap()
            .execute_batch("DROP TABLE diagnoses")
            .unwrap();
        assert!(max_bits_for("z", &providers, Some(&store)).is_err());
        assert_eq!(max_bits_for("z", &providers, None).unwrap(), None);
    }

    #[test]
    fn nothing_changes_without_a_limit_or_for_keys_that_fit_or_sign() {
        let dir = tempfile::tempdir().unwrap();
        let (config, unlimited) = setup(dir.path(), None);
        let mut st = state(vec![key("202402", KeyStatus::Generated, None)]);
        assert!(!fall_back(&config, &mut st, &unlimited, now()).changed());
        let (_, capped) = setup(dir.path(), Some(2048));
        assert!(!fall_back(&config, &mut st, &capped, now()).changed());
        let (_, small) = setup(dir.path(), Some(1024));
        let mut signing = state(vec![active("202401")]);
        assert!(!fall_back(&config, &mut signing, &small, now()).changed());
    }
}
