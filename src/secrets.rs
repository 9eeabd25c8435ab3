//! Credentials for DNS-host accounts.
//!
//! A credential is looked up, in order, in: an environment variable (named in the
//! account's config, default `MAILDNS_<ACCOUNT>_TOKEN`), the systemd credentials
//! directory (`$CREDENTIALS_DIRECTORY/<account>`), the OS keyring (service
//! `maildns`, user = account), and a `token_file` named in the config, which is
//! refused unless its mode is 0600 or stricter. The environment is passed in, never
//! read here. Errors list every place looked at and never contain the value.
//!
//! # Which OS keyring
//!
//! Two stores are compiled in (crate `keyring` 3.6, features `linux-native` and
//! `async-secret-service`), and [`store`] chooses one per process, explicitly:
//!
//! - the [Secret Service] (GNOME Keyring, KWallet, KeePassXC, ...) when the D-Bus
//!   session bus (`DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`) can be
//!   reached and a Secret Service on it opens a session (`OpenSession`, which
//!   also starts one that the bus can activate);
//! - the kernel keyring (keyutils, the session keyring) otherwise: no bus, or
//!   no Secret Service on it. Why the probe failed is logged at debug level.
//!
//! Entries are built with the chosen store's credential type
//! ([`keyring::secret_service::SsCredential`] or
//! [`keyring::keyutils::KeyutilsCredential`]), never through
//! [`keyring::Entry::new`]: with several store features keyring's default is
//! the Secret Service even where no bus exists, and with none it is an
//! in-memory mock that forgets everything at exit. So a credential is never
//! "stored" in the mock, and every message names the store used.
//!
//! zbus runs on its own `async-io` executor (keyring feature `async-io`), not on
//! tokio: keyring's blocking calls made from inside maildns's tokio runtime would
//! otherwise risk the deadlock keyring documents (keyring-rs issue #132).
//!
//! The two stores do not share entries: a token set under a desktop session
//! lives in the Secret Service, and a process without the session bus (a
//! daemon under systemd) does not see it. A daemon should use a systemd
//! credential or a token file.
//!
//! The kernel keyring needs a session keyring (what `pam_keyinit`, systemd or
//! `keyctl session` give). Without one, storing fails with EACCES, which the
//! keyring crate reports as a misleading "no entry": [`set`] reports that case
//! as [`SecretError::NoSessionKeyring`].
//!
//! [Secret Service]: https://specifications.freedesktop.org/secret-service/latest/

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use maildns_providers::Secret;
use maildns_providers::hosts::route53::AwsCredentials;

/// The keyring service name.
pub const KEYRING_SERVICE: &str = "maildns";

/// The OS keyring store this process uses; see the module docs for the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The freedesktop Secret Service on the D-Bus session bus (items with the
    /// attributes `service` = [`KEYRING_SERVICE`] and `username` = the account,
    /// in the default collection).
    SecretService,
    /// The Linux kernel key-retention service (keyutils), in the session keyring.
    KernelKeyring,
}

impl Store {
    /// A short machine name: `secret-service` or `kernel-keyring`.
    pub fn name(self) -> &'static str {
        match self {
            Store::SecretService => "secret-service",
            Store::KernelKeyring => "kernel-keyring",
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Store::SecretService => "Secret Service",
            Store::KernelKeyring => "kernel keyring",
        })
    }
}

/// The store this process uses: the Secret Service when one answers on the
/// D-Bus session bus, the kernel keyring otherwise. Probed once per process.
pub fn store() -> Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    *STORE.get_or_init(probe)
}

fn probe() -> Store {
    // Connecting opens the bus and calls OpenSession on org.freedesktop.secrets
    // (with the same DH-encrypted session keyring uses), so success means a
    // Secret Service is there; the connection is dropped at once.
    match secret_service::blocking::SecretService::connect(secret_service::EncryptionType::Dh) {
        Ok(_) => Store::SecretService,
        Err(e) => {
            tracing::debug!(reason = %e, "no Secret Service on the D-Bus session bus; using the kernel keyring");
            Store::KernelKeyring
        }
    }
}

/// Where an account's credential may be configured to come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSpec {
    /// Environment variable to read; default [`default_env_var`] of the account.
    pub env_var: Option<String>,
    /// A token file, used last.
    pub token_file: Option<PathBuf>,
}

/// Where a credential was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An environment variable.
    Env(String),
    /// A file in the systemd credentials directory.
    CredentialsDirectory(PathBuf),
    /// The OS keyring ([`store`] says which).
    Keyring,
    /// The configured token file.
    TokenFile(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::CredentialsDirectory(p) => write!(f, "systemd credential {}", p.display()),
            Source::Keyring => write!(f, "OS keyring ({}, service \"{KEYRING_SERVICE}\")", store()),
            Source::TokenFile(p) => write!(f, "token file {}", p.display()),
        }
    }
}

/// A credential and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The credential.
    pub secret: Secret,
    /// Where it was found.
    pub source: Source,
}

/// Why no credential could be had. Never contains the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Nothing found anywhere; `looked` says what was tried and what each place said.
    #[error("no credential for account '{account}'; looked at: {}", looked.join("; "))]
    NotFound {
        /// The account.
        account: String,
        /// Every place looked at, with what was found there.
        looked: Vec<String>,
    },
    /// The token file is readable by others.
    #[error(
        "token file {path} has mode {mode:04o}: refused because group or others can access it; run `chmod 600 {path}`"
    )]
    TokenFileMode {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The process has no session keyring, so the kernel keyring cannot store keys.
    #[error(
        "the OS keyring cannot store the credential for '{account}': this process has no session keyring (the kernel answered EACCES, which the keyring library reports as 'no entry'); run under a login or systemd session, or `keyctl session`, or use an environment variable, systemd credential or a 0600 token file"
    )]
    NoSessionKeyring {
        /// The account.
        account: String,
    },
    /// The keyring failed otherwise.
    #[error("OS keyring ({store}), account '{account}': {message}")]
    Keyring {
        /// The account.
        account: String,
        /// The store used ([`Store`]'s display name).
        store: String,
        /// What the keyring said.
        message: String,
    },
    /// No AWS access key in the environment nor in the shared credentials
    /// file; `looked` says what each place said.
    #[error("no AWS credentials found; looked at: {}", looked.join("; "))]
    NoAwsCredentials {
        /// Every place looked at, with what was found there.
        looked: Vec<String>,
    },
    /// A credential file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
}

/// `MAILDNS_<ACCOUNT>_TOKEN`, the account name upper-cased with other characters as `_`.
pub fn default_env_var(account: &str) -> String {
    let a: String = account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("MAILDNS_{a}_TOKEN")
}

fn strip_newline(s: &str) -> &str {
    s.strip_suffix("\r\n")
        .or_else(|| s.strip_suffix('\n'))
        .unwrap_or(s)
}

/// Looks up the credential of `account` in every place, in order.
///
/// # Errors
/// [`SecretError::NotFound`] listing every place looked at and what each said;
/// when a token file is configured and none of the earlier places holds the
/// credential, [`read_token_file`]'s error.
pub fn lookup(
    account: &str,
    spec: &SecretSpec,
    env: &HashMap<String, String>,
) -> Result<Found, SecretError> {
    let mut looked = Vec::new();

    let var = spec
        .env_var
        .clone()
        .unwrap_or_else(|| default_env_var(account));
    match env.get(&var) {
        Some(v) if !v.is_empty() => {
            return Ok(Found {
                secret: Secret::new(v.clone()),
                source: Source::Env(var),
            });
        }
        Some(_) => looked.push(format!("environment variable {var}: empty")),
        None => looked.push(format!("environment variable {var}: not set")),
    }

    match env.get("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        None => looked.push("systemd credentials: CREDENTIALS_DIRECTORY not set".to_string()),
        Some(dir) => {
            let path = Path::new(dir).join(account);
            match std::fs::read_to_string(&path) {
                Ok(v) if !strip_newline(&v).is_empty() => {
                    return Ok(Found {
                        secret: Secret::new(strip_newline(&v)),
                        source: Source::CredentialsDirectory(path),
                    });
                }
                Ok(_) => looked.push(format!("systemd credential {}: empty", path.display())),
                Err(e) => looked.push(format!("systemd credential {}: {e}", path.display())),
            }
        }
    }

    match keyring_get(account) {
        Ok(Some(secret)) => {
            return Ok(Found {
                secret,
                source: Source::Keyring,
            });
        }
        Ok(None) => looked.push(no_entry(account)),
        Err(e) => looked.push(e.to_string()),
    }

    match &spec.token_file {
        None => looked.push("token_file: not configured".to_string()),
        Some(path) => {
            return read_token_file(path).map(|secret| Found {
                secret,
                source: Source::TokenFile(path.clone()),
            });
        }
    }

    Err(SecretError::NotFound {
        account: account.to_string(),
        looked,
    })
}

/// Looks up AWS credentials (for Route 53) the way the AWS tools do, from a
/// passed-in environment: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`
/// (+ `AWS_SESSION_TOKEN`), else the profile `AWS_PROFILE` (default
/// `default`, also found as `[profile NAME]`) of the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, default `<home>/.aws/credentials`).
/// <https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html>
///
/// The face reads the environment and this reads the file, so the providers
/// crate gets typed credentials and does no I/O of its own.
///
/// # Errors
/// [`SecretError::NoAwsCredentials`] listing every place looked at (never a
/// value) when neither the environment nor the file's profile has both the
/// access key id and the secret access key.
pub fn aws_credentials(
    env: &HashMap<String, String>,
    home: Option<&Path>,
) -> Result<AwsCredentials, SecretError> {
    let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut looked = Vec::new();
    match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(key)) => {
            return Ok(AwsCredentials {
                access_key_id: id.to_string(),
                secret_access_key: Secret::new(key),
                session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
            });
        }
        (Some(_), None) => looked
            .push("environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into()),
        (None, Some(_)) => looked
            .push("environment: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into()),
        (None, None) => {
            looked.push("environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set".into());
        }
    }
    let profile = get("AWS_PROFILE").unwrap_or("default");
    let file: Option<PathBuf> = get("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".aws").join("credentials")));
    match file {
        None => looked.push("shared credentials file: no home directory known".into()),
        Some(path) => match std::fs::read_to_string(&path) {
            Err(e) => looked.push(format!("{}: {e}", path.display())),
            Ok(text) => {
                let section = ini_section(&text, profile);
                let id = section.get("aws_access_key_id");
                let key = section.get("aws_secret_access_key");
                if let (Some(id), Some(key)) = (id, key) {
                    return Ok(AwsCredentials {
                        access_key_id: id.clone(),
                        secret_access_key: Secret::new(key.clone()),
                        session_token: section
                            .get("aws_session_token")
                            .map(|t| Secret::new(t.clone())),
                    });
                }
                looked.push(format!(
                    "{}: profile [{profile}] lacks aws_access_key_id and/or aws_secret_access_key",
                    path.display()
                ));
            }
        },
    }
    Err(SecretError::NoAwsCredentials { looked })
}

/// The `key = value` pairs of `[profile]` in the shared credentials file, a
/// tiny INI dialect (keys lowercased). Written here rather than with an INI
/// crate: the format is three keys in one section and the AWS SDK's own
/// parser comes only with the whole SDK.
fn ini_section(text: &str, profile: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside =
                name == profile || name.strip_prefix("profile ").map(str::trim) == Some(profile);
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// Reads a token file, refusing one that group or others can access.
///
/// # Errors
/// [`SecretError::TokenFileMode`] when group or others can access the file;
/// [`SecretError::Io`] when it cannot be read.
pub fn read_token_file(path: &Path) -> Result<Secret, SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| SecretError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TokenFileMode {
            path: path.display().to_string(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let v = strip_newline(&text);
    if v.is_empty() {
        return Err(SecretError::Io {
            path: path.display().to_string(),
            message: "the file is empty".to_string(),
        });
    }
    Ok(Secret::new(v))
}

fn entry(account: &str) -> Result<keyring::Entry, SecretError> {
    let credential: Box<keyring::credential::Credential> = match store() {
        Store::SecretService => Box::new(
            keyring::secret_service::SsCredential::new_with_target(None, KEYRING_SERVICE, account)
                .map_err(|e| keyring_error(account, e))?,
        ),
        Store::KernelKeyring => Box::new(
            keyring::keyutils::KeyutilsCredential::new_with_target(None, KEYRING_SERVICE, account)
                .map_err(|e| keyring_error(account, e))?,
        ),
    };
    Ok(keyring::Entry::new_with_credential(credential))
}

fn keyring_error(account: &str, e: keyring::Error) -> SecretError {
    // keyring's errors describe the store, not the stored value.
    let message = match (&e, store()) {
        (keyring::Error::NoStorageAccess(_), Store::SecretService) => format!(
            "{e} (the Secret Service collection is locked or access was refused: unlock it, e.g. by logging in to the desktop session)"
        ),
        _ => e.to_string(),
    };
    SecretError::Keyring {
        account: account.to_string(),
        store: store().to_string(),
        message,
    }
}

/// What "no entry" says for `account` in the store in use.
fn no_entry(account: &str) -> String {
    let store = store();
    let hint = match store {
        Store::KernelKeyring => {
            " (if one was stored, this process may lack a session keyring, or it was stored in the Secret Service of a desktop session)"
        }
        Store::SecretService => "",
    };
    format!(
        "OS keyring ({store}, service \"{KEYRING_SERVICE}\", user \"{account}\"): no entry{hint}"
    )
}

fn keyring_get(account: &str) -> Result<Option<Secret>, SecretError> {
    match entry(account)?.get_password() {
        Ok(v) => Ok(Some(Secret::new(v))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(keyring_error(account, e)),
    }
}

/// Stores `value` in the OS keyring ([`store`]) for `account` (`maildns secret set`).
///
/// # Errors
/// [`SecretError::NoSessionKeyring`] when the kernel keyring is used and the
/// process has no session keyring; [`SecretError::Keyring`] when the store
/// refuses otherwise (e.g. a locked Secret Service collection).
pub fn set(account: &str, value: &Secret) -> Result<(), SecretError> {
    match entry(account)?.set_password(value.expose()) {
        Ok(()) => Ok(()),
        Err(keyring::Error::NoEntry) if store() == Store::KernelKeyring => {
            Err(SecretError::NoSessionKeyring {
                account: account.to_string(),
            })
        }
        Err(e) => Err(keyring_error(account, e)),
    }
}

/// The credential stored in the OS keyring ([`store`]) for `account`.
///
/// # Errors
/// [`SecretError::NotFound`] when there is no entry; [`SecretError::Keyring`]
/// when the store fails.
pub fn get(account: &str) -> Result<Secret, SecretError> {
    keyring_get(account)?.ok_or_else(|| SecretError::NotFound {
        account: account.to_string(),
        looked: vec![no_entry(account)],
    })
}

/// Removes the credential of `account` from the OS keyring ([`store`])
/// (`maildns secret delete`): `true` when there was one, `false` when there
/// was none (not an error).
///
/// # Errors
/// [`SecretError::Keyring`] when the store fails.
pub fn delete(account: &str) -> Result<bool, SecretError> {
    match entry(account)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(keyring_error(account, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const VALUE: &str = "tok-very-secret-4242";

    fn unique(account: &str) -> String {
        format!("{account}-{}-{}", std::process::id(), rand::random::<u32>())
    }

    #[test]
    fn aws_credentials_from_env_then_file() {
        let mut env = HashMap::new();
        env.insert("AWS_ACCESS_KEY_ID".to_string(), "AKIDENV".to_string());
        env.insert(
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "s3cr3t-env".to_string(),
        );
        let c = aws_credentials(&env, None).unwrap();
        assert_eq!(c.access_key_id, "AKIDENV");
        assert_eq!(c.secret_access_key.expose(), "s3cr3t-env");

        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = def-secret\n\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=work-secret\naws_session_token=tok\n",
        )
        .unwrap();
        let mut env = HashMap::new();
        env.insert("AWS_PROFILE".to_string(), "work".to_string());
        let c = aws_credentials(&env, Some(dir)).unwrap();
        assert_eq!(c.access_key_id, "AKIDWORK");
        assert_eq!(c.session_token.unwrap().expose(), "tok");
        env.insert("AWS_PROFILE".to_string(), "missing".to_string());
        let e = aws_credentials(&env, Some(dir)).unwrap_err();
        let SecretError::NoAwsCredentials { looked } = &e else {
            panic!("{e:?}");
        };
        let message = looked.join("; ");
        assert!(message.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(message.contains("profile [missing]"), "{e}");
        assert!(
            !e.to_string().contains("def-secret") && !e.to_string().contains("work-secret"),
            "{e}"
        );
    }

    #[test]
    fn env_wins_over_everything() {
        let dir = tempfile::tempdir().unwrap();
        let account = unique("acme");
        std::fs::write(dir.path().join(&account), "from-credentials-dir\n").unwrap();
        let mut env = HashMap::new();
        env.insert(default_env_var(&account), VALUE.to_string());
        env.insert(
            "CREDENTIALS_DIRECTORY".to_string(),
            dir.path().display().to_string(),
        );
        let f = lookup(&account, &SecretSpec::default(), &env).unwrap();
        assert_eq!(f.secret.expose(), VALUE);
        assert_eq!(f.source, Source::Env(default_env_var(&account)));
        // a configured variable name is used instead of the default
        let spec = SecretSpec {
            env_var: Some("CF_TOKEN".into()),
            token_file: None,
        };
        env.insert("CF_TOKEN".into(), "other".into());
        assert_eq!(
            lookup(&account, &spec, &env).unwrap().secret.expose(),
            "other"
        );
    }

    #[test]
    fn default_env_var_name() {
        assert_eq!(default_env_var("my-cloud.1"), "MAILDNS_MY_CLOUD_1_TOKEN");
    }

    #[test]
    fn credentials_directory_is_second() {
        let dir = tempfile::tempdir().unwrap();
        let account = unique("prod");
        std::fs::write(dir.path().join(&account), format!("{VALUE}\n")).unwrap();
        let mut env = HashMap::new();
        env.insert(
            "CREDENTIALS_DIRECTORY".to_string(),
            dir.path().display().to_string(),
        );
        let f = lookup(&account, &SecretSpec::default(), &env).unwrap();
        assert_eq!(f.secret.expose(), VALUE);
        assert_eq!(
            f.source,
            Source::CredentialsDirectory(dir.path().join(&account))
        );
    }

    #[test]
    fn token_file_mode_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{VALUE}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let account = unique("filed");
        let spec = SecretSpec {
            env_var: None,
            token_file: Some(path.clone()),
        };
        let e = lookup(&account, &spec, &HashMap::new()).unwrap_err();
        assert!(
            matches!(e, SecretError::TokenFileMode { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        assert!(!format!("{e} {e:?}").contains(VALUE));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let f = lookup(&account, &spec, &HashMap::new()).unwrap();
        assert_eq!(f.secret.expose(), VALUE);
        assert_eq!(f.source, Source::TokenFile(path));
    }

    #[test]
    fn not_found_lists_every_place() {
        let account = unique("nowhere");
        let e = lookup(&account, &SecretSpec::default(), &HashMap::new()).unwrap_err();
        let text = e.to_string();
        for place in [
            default_env_var(&account).as_str(),
            "CREDENTIALS_DIRECTORY",
            "OS keyring",
            "token_file",
        ] {
            assert!(text.contains(place), "{place} missing from: {text}");
        }
    }

    #[test]
    fn keyring_round_trip_or_clear_error() {
        let account = unique("kr");
        match set(&account, &Secret::new(VALUE)) {
            Ok(()) => {
                assert_eq!(get(&account).unwrap().expose(), VALUE);
                let f = lookup(&account, &SecretSpec::default(), &HashMap::new()).unwrap();
                assert_eq!(f.source, Source::Keyring);
                delete(&account).unwrap();
                assert!(matches!(get(&account), Err(SecretError::NotFound { .. })));
                delete(&account).unwrap();
            }
            Err(e) => {
                // No session keyring here: the error must say so, not "no entry".
                assert!(
                    matches!(
                        e,
                        SecretError::NoSessionKeyring { .. } | SecretError::Keyring { .. }
                    ),
                    "{e:?}"
                );
                if let SecretError::NoSessionKeyring { .. } = e {
                    assert!(e.to_string().contains("no session keyring"), "{e}");
                }
                assert!(!format!("{e} {e:?}").contains(VALUE));
            }
        }
    }

    #[test]
    fn entries_use_the_chosen_store_never_the_default_builder() {
        // With both store features keyring's default builder is the Secret
        // Service even without a bus, and with none the mock: entry() must build
        // the credential of the store probed for this process.
        let e = entry("probe-account").unwrap();
        let c = e.get_credential();
        match store() {
            Store::SecretService => assert!(
                c.downcast_ref::<keyring::secret_service::SsCredential>()
                    .is_some()
            ),
            Store::KernelKeyring => assert!(
                c.downcast_ref::<keyring::keyutils::KeyutilsCredential>()
                    .is_some()
            ),
        }
        assert!(c.downcast_ref::<keyring::mock::MockCredential>().is_none());
        assert_eq!(Store::SecretService.to_string(), "Secret Service");
        assert_eq!(Store::KernelKeyring.name(), "kernel-keyring");
    }

    #[test]
    fn no_error_ever_shows_the_value() {
        let errors = [
            SecretError::NotFound {
                account: "a".into(),
                looked: vec!["x".into()],
            },
            SecretError::TokenFileMode {
                path: "/t".into(),
                mode: 0o644,
            },
            SecretError::NoSessionKeyring {
                account: "a".into(),
            },
            SecretError::Io {
                path: "/t".into(),
                message: "denied".into(),
            },
        ];
        for e in errors {
            assert!(!format!("{e} {e:?}").contains(VALUE));
        }
        let found = Found {
            secret: Secret::new(VALUE),
            source: Source::Keyring,
        };
        assert!(!format!("{found:?}").contains(VALUE));
    }
}
