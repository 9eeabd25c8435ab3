//! rspamd as the signer, with its DKIM keys and selectors in Redis.
//!
//! Why this module exists: an operator with several outbound MTAs that all
//! run rspamd gives them one Redis, and rspamd's `dkim_signing` module reads
//! the key and selector for each message from it (as mailcow does). A key
//! written there reaches every MTA at once, and no key file has to be copied
//! anywhere. maildns writes the key and the selector; rspamd is never reloaded.
//!
//! # The layout (rspamd 3.4, `lua_dkim_tools.lua`, `sign_using_redis`)
//! With `use_redis = true; key_prefix = "DKIM_KEYS"; selector_prefix =
//! "DKIM_SELECTORS";` in `local.d/dkim_signing.conf`
//! (<https://rspamd.com/doc/modules/dkim_signing.html>), for each message:
//! - `HGET DKIM_SELECTORS <domain>` gives the selector (the domain lowercased;
//!   reduced to its eSLD unless `use_esld = false`, which maildns needs so
//!   that `mail.example.com` signs as itself);
//! - `HGET DKIM_KEYS <selector>.<domain>` gives the private key: RSA as PEM,
//!   Ed25519 as the base64 of libsodium's 64-byte secret key (seed, then public
//!   key; what `rspamadm dkim_keygen -t ed25519` prints). rspamd 3.4 cannot
//!   load an Ed25519 PKCS#8 PEM ("cannot extract rsa key from evp key") and
//!   then leaves the message unsigned, so maildns never writes one.
//!
//! # What follows from it (observed with Debian 12's rspamd 3.4)
//! - Both hashes are read for every message: writing the selector switches
//!   every rspamd at once, before any "reload". So a new key goes into
//!   `DKIM_KEYS` when it is generated ([`RspamdSigner::store_key`], from the
//!   runner's generate step; nothing uses it until the selector names it),
//!   where every maildns replica finds it ([`RspamdSigner::stored_key`]) and
//!   can switch to it without the generating replica's key file; but the
//!   selector is written only by [`RspamdSigner::switch`], which writes key
//!   and selector in one `MULTI`/`EXEC` transaction under `WATCH`: the
//!   selector never names a missing key, and a concurrent writer makes the
//!   transaction fail and be retried instead of being overwritten.
//! - A selector whose key is missing or unreadable leaves every message
//!   unsigned, with one log line. Only a probe shows what rspamd really signs
//!   with: [`RspamdSigner::probe`] scans a message through rspamd's HTTP
//!   controller (`POST /checkv2`) as from an authenticated user at 127.0.0.1
//!   (headers `User`, `IP`, `From`, `Rcpt`), reads the DKIM-Signature rspamd
//!   would add (its reply's `dkim-signature`, or `milter.add_headers` with
//!   `use_milter_headers = true`) and verifies it against every authoritative
//!   server like the OpenDKIM probe ([`super::probe`]).
//! - A retired key is removed ([`RspamdSigner::remove_key`]) only while the
//!   selector hash names another selector, checked in the same transaction.
//!
//! Redis is spoken with the `redis` crate (async, on tokio: the runner's
//! steps are async, and the crate is the maintained Rust client with
//! `MULTI`/`EXEC` pipelines). The controller is spoken with reqwest. The Redis
//! password and the controller password come from the credential lookup; they
//! are never in a URL maildns prints, a log line or an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::AsyncCommands;
use zeroize::Zeroizing;

use super::probe::{self, ProbeError, ProbeReport};
use super::{EndpointProbe, KeyRef, SignerEntry, SignerError};
use crate::keys::{self, KeyError, PrivateKey, WriteOptions};
use crate::rotation::Selector;

/// rspamd's default hash of private keys is `dkim_keys`; maildns's (and
/// mailcow-style setups') explicit name.
pub const DEFAULT_KEY_HASH: &str = "DKIM_KEYS";
/// The hash of selectors (`selector_prefix`; rspamd has no default: without
/// it rspamd uses the static `selector` setting).
pub const DEFAULT_SELECTOR_HASH: &str = "DKIM_SELECTORS";

/// How many times a transaction is retried when another writer changed a
/// watched hash in between.
const ATTEMPTS: usize = 5;

/// Why an rspamd signer operation failed. Never carries a password or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RspamdError {
    /// A domain that cannot be a Redis field name as rspamd looks it up.
    #[error("invalid domain {}: use letters, digits, '-', '_' and '.'", crate::quote::quoted(.0))]
    InvalidDomain(String),
    /// The Redis URL does not parse, or carries a password.
    #[error("redis URL {}: {reason}", crate::quote::quoted(url))]
    RedisUrl {
        /// The URL (with any password removed).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The controller URL does not parse or carries credentials.
    #[error("rspamd controller URL {}: {reason}", crate::quote::quoted(url))]
    ControllerUrl {
        /// The URL (with any credentials removed).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Redis failed (unreachable, authentication, a command error).
    #[error("redis at {url}: {operation}: {reason}")]
    Redis {
        /// The Redis URL (without password).
        url: String,
        /// What maildns was doing.
        operation: String,
        /// What the client or server said.
        reason: String,
    },
    /// Another key is already stored under this selector: never overwritten.
    #[error(
        "redis {hash} already holds another key for {selector}.{domain}; a selector is never reused for a different key"
    )]
    KeyConflict {
        /// The key hash.
        hash: String,
        /// The signing domain.
        domain: String,
        /// The selector.
        selector: String,
    },
    /// The selector to retire is still the one rspamd signs the domain with.
    #[error(
        "redis {hash} still names selector {selector} for {domain}: its key stays while rspamd signs with it"
    )]
    StillCurrent {
        /// The selector hash.
        hash: String,
        /// The signing domain.
        domain: String,
        /// The selector.
        selector: String,
    },
    /// Other writers kept changing the hashes during the transaction.
    #[error(
        "redis at {url}: {operation}: the hashes kept changing under other writers ({ATTEMPTS} attempts); nothing was written"
    )]
    Contended {
        /// The Redis URL (without password).
        url: String,
        /// What maildns was doing.
        operation: String,
    },
    /// The key cannot be encoded for rspamd.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What [`RspamdSigner::new`] needs; built from `[signer]` and the credential
/// lookup.
#[derive(Clone)]
pub struct RspamdSettings {
    /// Redis URL without password (`redis://127.0.0.1:6379/0`; a username
    /// for Redis ACLs may be given as `redis://user@host/`).
    pub redis_url: String,
    /// Redis password (`requirepass` or the ACL user's), from the credential
    /// lookup.
    pub redis_password: Option<Zeroizing<String>>,
    /// rspamd's `key_prefix` (default [`DEFAULT_KEY_HASH`]).
    pub key_hash: String,
    /// rspamd's `selector_prefix` (default [`DEFAULT_SELECTOR_HASH`]).
    pub selector_hash: String,
    /// Every rspamd's controller (`http://127.0.0.1:11334`), one per MTA: a
    /// switch counts only when every one signs with the new key.
    pub controller_urls: Vec<String>,
    /// Where maildns keeps its own copy of each private key
    /// (`<key_dir>/<domain>/<selector>.private`, 0600): the state's key files,
    /// from which keys are written into Redis.
    pub key_dir: PathBuf,
    /// The controllers' `password`, from the credential lookup (none when
    /// maildns's address is in its `secure_ip`).
    pub controller_password: Option<Zeroizing<String>>,
    /// Bound of each Redis connection and reply and each controller request.
    pub timeout: Duration,
}

impl std::fmt::Debug for RspamdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RspamdSettings")
            .field("redis_url", &self.redis_url)
            .field(
                "redis_password",
                &self.redis_password.as_ref().map(|_| "***"),
            )
            .field("key_hash", &self.key_hash)
            .field("selector_hash", &self.selector_hash)
            .field("controller_urls", &self.controller_urls)
            .field("key_dir", &self.key_dir)
            .field(
                "controller_password",
                &self.controller_password.as_ref().map(|_| "***"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RspamdSettings {
    /// Settings with one controller, the default hash names, no passwords
    /// and a 10 s timeout.
    pub fn new(
        redis_url: impl Into<String>,
        controller_url: impl Into<String>,
        key_dir: impl Into<PathBuf>,
    ) -> Self {
        RspamdSettings {
            redis_url: redis_url.into(),
            redis_password: None,
            key_hash: DEFAULT_KEY_HASH.into(),
            selector_hash: DEFAULT_SELECTOR_HASH.into(),
            controller_urls: vec![controller_url.into()],
            key_dir: key_dir.into(),
            controller_password: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What rspamd signs a domain with, as Redis says.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisEntry {
    /// The signing domain (the selector hash's field).
    pub domain: String,
    /// The selector the selector hash names.
    pub selector: String,
    /// The key stored under `<selector>.<domain>`, if any (PEM, base64
    /// Ed25519, or whatever else someone wrote there).
    pub key: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for RedisEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEntry")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("key", &self.key.as_ref().map(|_| "(private key)"))
            .finish()
    }
}

impl RedisEntry {
    /// The stored key, parsed ([`parse_key_value`]).
    ///
    /// # Errors
    /// [`KeyError::InvalidPem`] when no key is stored or it does not parse.
    pub fn private_key(&self) -> Result<PrivateKey, KeyError> {
        match &self.key {
            Some(v) => parse_key_value(v),
            None => Err(KeyError::InvalidPem {
                reason: format!("no key is stored under {}.{}", self.selector, self.domain),
            }),
        }
    }

    /// Whether the stored key is `key` (same public key).
    pub fn holds(&self, key: &PrivateKey) -> bool {
        same_key(self.private_key().ok().as_ref(), key)
    }
}

/// The result of a [`RspamdSigner::switch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RspamdSwitched {
    /// The selector the domain had before (`None`: rspamd did not sign it
    /// from Redis).
    pub previous: Option<String>,
}

/// rspamd (on one or more MTAs) reading DKIM keys and selectors from one
/// Redis.
#[derive(Clone)]
pub struct RspamdSigner {
    client: redis::Client,
    redis_url: String,
    key_hash: String,
    selector_hash: String,
    controllers: Vec<reqwest::Url>,
    controller_password: Option<Zeroizing<String>>,
    http: reqwest::Client,
    timeout: Duration,
    /// Where maildns keeps its copies of the private keys.
    pub key_dir: PathBuf,
    /// Mode and owner of new key files (default 0600, owner unchanged).
    pub key_write: WriteOptions,
}

impl std::fmt::Debug for RspamdSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RspamdSigner")
            .field("redis", &self.redis_url)
            .field("key_hash", &self.key_hash)
            .field("selector_hash", &self.selector_hash)
            .field(
                "controllers",
                &self
                    .controllers
                    .iter()
                    .map(reqwest::Url::as_str)
                    .collect::<Vec<_>>(),
            )
            .field("key_dir", &self.key_dir)
            .finish_non_exhaustive()
    }
}

/// The value stored for `key` in the key hash: RSA as PKCS#1 PEM, Ed25519 as
/// base64 of libsodium's 64-byte secret key (the forms rspamd 3.4 loads).
///
/// # Errors
/// [`KeyError::Encode`] when the key cannot be encoded.
pub fn key_value(key: &PrivateKey) -> Result<Zeroizing<String>, KeyError> {
    use base64::Engine as _;
    match key.ed25519_keypair_bytes() {
        Some(pair) => Ok(Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(pair.as_slice()),
        )),
        None => key.to_pem(),
    }
}

/// Parses a value of the key hash: a PEM private key (PKCS#1 or PKCS#8), or
/// an Ed25519 key as base64 of 64 bytes (seed and public key) or 32 (seed).
///
/// # Errors
/// [`KeyError::InvalidPem`] (or [`KeyError::RsaTooSmall`]) naming what is
/// wrong, never the value.
pub fn parse_key_value(value: &str) -> Result<PrivateKey, KeyError> {
    use base64::Engine as _;
    let v = value.trim();
    if v.contains("-----BEGIN ") {
        return PrivateKey::from_pem(v);
    }
    let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    // Base64 may itself start with '/': the value is a path only when it is
    // not base64 key data (1 Ed25519 key in 64 starts with '/').
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .map(Zeroizing::new)
        .filter(|b| matches!(b.len(), 32 | 64));
    match decoded {
        Some(bytes) => PrivateKey::from_ed25519_bytes(&bytes),
        None if v.starts_with('/') || v.starts_with('.') => Err(KeyError::InvalidPem {
            reason: "the value is a file path, not key data; maildns reads keys stored in Redis"
                .into(),
        }),
        None => Err(KeyError::InvalidPem {
            reason: "neither a PEM key nor base64 Ed25519 key data".into(),
        }),
    }
}

fn same_key(a: Option<&PrivateKey>, b: &PrivateKey) -> bool {
    match (a.map(PrivateKey::public_key_der), b.public_key_der()) {
        (Some(Ok(x)), Ok(y)) => x == y,
        _ => false,
    }
}

/// Removes any password from a URL for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

impl RspamdSigner {
    /// Checks the settings and builds the clients (no connection is made).
    ///
    /// # Errors
    /// [`RspamdError::RedisUrl`] for a URL that does not parse or carries a
    /// password (passwords come from the credential lookup);
    /// [`RspamdError::ControllerUrl`] likewise.
    pub fn new(s: RspamdSettings) -> Result<Self, RspamdError> {
        use redis::IntoConnectionInfo as _;
        let shown = redact(&s.redis_url);
        let url_err = |reason: String| RspamdError::RedisUrl {
            url: shown.clone(),
            reason,
        };
        let parsed = reqwest::Url::parse(&s.redis_url).map_err(|e| url_err(e.to_string()))?;
        if parsed.password().is_some() {
            return Err(url_err(
                "it contains a password: give the password as a credential instead".into(),
            ));
        }
        let info = s
            .redis_url
            .as_str()
            .into_connection_info()
            .map_err(|e| url_err(e.to_string()))?;
        let info = match &s.redis_password {
            Some(pw) => {
                let settings = info.redis_settings().clone().set_password(pw.as_str());
                info.set_redis_settings(settings)
            }
            None => info,
        };
        let client = redis::Client::open(info).map_err(|e| url_err(e.to_string()))?;

        let controllers = s
            .controller_urls
            .iter()
            .map(|u| controller_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .build()
            .map_err(|e| RspamdError::ControllerUrl {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(RspamdSigner {
            client,
            redis_url: redact(&s.redis_url),
            key_hash: s.key_hash,
            selector_hash: s.selector_hash,
            controllers,
            controller_password: s.controller_password,
            http,
            timeout: s.timeout,
            key_dir: s.key_dir,
            key_write: WriteOptions::default(),
        })
    }

    /// The controllers' URLs (the probe endpoints).
    pub fn controller_urls(&self) -> Vec<String> {
        self.controllers.iter().map(ToString::to_string).collect()
    }

    /// Where maildns keeps the private key of `domain`/`selector`
    /// (`<key_dir>/<domain>/<selector>.private`).
    ///
    /// # Errors
    /// [`SignerError::InvalidName`] for a domain that cannot be a path.
    pub fn key_path(&self, domain: &str, selector: &Selector) -> Result<PathBuf, SignerError> {
        super::key_file(&self.key_dir, domain, selector)
    }

    /// Writes maildns's copy of `key` to a NEW file at
    /// [`RspamdSigner::key_path`] (directory created 0700) and returns its
    /// path: maildns's own copy. The key goes into the key hash right after,
    /// in the runner's generate step ([`RspamdSigner::store_key`]); the
    /// selector hash is written at the switch.
    ///
    /// # Errors
    /// [`SignerError::InvalidName`], [`SignerError::CreateDir`], or
    /// [`SignerError::Key`] when the file exists or cannot be written.
    pub fn install_key_file(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<PathBuf, SignerError> {
        super::write_key_file(&self.key_dir, domain, selector, key, self.key_write)
    }

    /// [`RspamdSigner::switch`] to the key maildns keeps at `key_path`.
    ///
    /// # Errors
    /// The key file cannot be read ([`SignerError::Key`]), or as
    /// [`RspamdSigner::switch`].
    pub async fn switch_to_file(
        &self,
        domain: &str,
        selector: &Selector,
        key_path: &Path,
    ) -> Result<RspamdSwitched, SignerError> {
        let key = keys::load_private_key(key_path)?;
        Ok(self.switch(domain, selector, &key).await?)
    }

    /// The entry Redis names for `domain`, as a [`SignerEntry`] (the key's
    /// public half kept to compare with maildns's key files).
    ///
    /// # Errors
    /// As [`RspamdSigner::current`].
    pub async fn entry(&self, domain: &str) -> Result<Option<SignerEntry>, SignerError> {
        Ok(self.current(domain).await?.map(|e| SignerEntry {
            key: KeyRef::Redis {
                hash: self.key_hash.clone(),
                field: format!("{}.{}", e.selector, e.domain),
                public_key: e.private_key().ok().and_then(|k| k.public_key_der().ok()),
            },
            selector: e.selector,
        }))
    }

    /// The key stored under `<selector>.<domain>` in the key hash (`None`:
    /// the field is missing), whatever names the selector hash holds: where
    /// a replica without the generating replica's key file finds the key.
    ///
    /// # Errors
    /// [`RspamdError::Redis`], [`RspamdError::InvalidDomain`], or
    /// [`RspamdError::Key`] when the field holds no usable key.
    pub async fn stored_key(
        &self,
        domain: &str,
        selector: &Selector,
    ) -> Result<Option<PrivateKey>, RspamdError> {
        let domain = domain_field(domain)?;
        let field = format!("{selector}.{domain}");
        let op = format!("read the key {field}");
        let mut con = self.connect(&op).await?;
        let value: Option<String> = con
            .hget(&self.key_hash, &field)
            .await
            .map_err(self.redis_err(&op))?;
        match value.map(Zeroizing::new) {
            None => Ok(None),
            Some(v) => Ok(Some(parse_key_value(&v)?)),
        }
    }

    /// The Redis URL (without password), for messages.
    pub fn redis_url(&self) -> &str {
        &self.redis_url
    }

    /// The key hash's name (`key_prefix`).
    pub fn key_hash(&self) -> &str {
        &self.key_hash
    }

    /// The selector hash's name (`selector_prefix`).
    pub fn selector_hash(&self) -> &str {
        &self.selector_hash
    }

    fn redis_err(&self, operation: &str) -> impl Fn(redis::RedisError) -> RspamdError + '_ {
        let operation = operation.to_string();
        move |e| RspamdError::Redis {
            url: self.redis_url.clone(),
            operation: operation.clone(),
            reason: e.to_string(),
        }
    }

    /// A new connection of its own: `WATCH` state belongs to a connection, so
    /// a transaction never shares one.
    async fn connect(
        &self,
        operation: &str,
    ) -> Result<redis::aio::MultiplexedConnection, RspamdError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(self.redis_err(operation))
    }

    /// Checks that Redis answers and accepts the password (the check made
    /// before a switch; rspamd itself has nothing to reload).
    ///
    /// # Errors
    /// [`RspamdError::Redis`].
    pub async fn check(&self) -> Result<(), RspamdError> {
        let mut con = self.connect("connect").await?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .map_err(self.redis_err("PING"))?;
        Ok(())
    }

    /// Stores `key` under `<selector>.<domain>` in the key hash unless it is
    /// there already (`HSETNX`). Harmless for signing: rspamd uses a key only
    /// once the selector hash names its selector.
    ///
    /// # Errors
    /// [`RspamdError::KeyConflict`] when another key is stored there (never
    /// overwritten), [`RspamdError::Redis`], [`RspamdError::InvalidDomain`].
    pub async fn store_key(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<(), RspamdError> {
        let domain = domain_field(domain)?;
        let field = format!("{selector}.{domain}");
        let value = key_value(key)?;
        let op = format!("store the key {field}");
        let mut con = self.connect(&op).await?;
        let stored: bool = con
            .hset_nx(&self.key_hash, &field, value.as_str())
            .await
            .map_err(self.redis_err(&op))?;
        if stored {
            return Ok(());
        }
        let existing: Option<String> = con
            .hget(&self.key_hash, &field)
            .await
            .map_err(self.redis_err(&op))?;
        let existing = existing.map(Zeroizing::new);
        match existing {
            Some(v) if same_key(parse_key_value(&v).ok().as_ref(), key) => Ok(()),
            _ => Err(RspamdError::KeyConflict {
                hash: self.key_hash.clone(),
                domain,
                selector: selector.to_string(),
            }),
        }
    }

    /// Makes rspamd sign `domain` with `key` under `selector`: in one
    /// `MULTI`/`EXEC` under `WATCH` of both hashes, stores the key (unless the
    /// same key is there) and sets the selector. rspamd uses it from the next
    /// message on; the caller proves it with [`RspamdSigner::probe`].
    ///
    /// # Errors
    /// [`RspamdError::KeyConflict`] when another key is stored under the
    /// selector (nothing written), [`RspamdError::Contended`],
    /// [`RspamdError::Redis`], [`RspamdError::InvalidDomain`].
    pub async fn switch(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<RspamdSwitched, RspamdError> {
        let domain = domain_field(domain)?;
        let field = format!("{selector}.{domain}");
        let value = key_value(key)?;
        let op = format!("switch {domain} to {selector}");
        for _ in 0..ATTEMPTS {
            let mut con = self.connect(&op).await?;
            redis::cmd("WATCH")
                .arg(&self.key_hash)
                .arg(&self.selector_hash)
                .query_async::<()>(&mut con)
                .await
                .map_err(self.redis_err(&op))?;
            let (existing, previous): (Option<String>, Option<String>) = redis::pipe()
                .hget(&self.key_hash, &field)
                .hget(&self.selector_hash, &domain)
                .query_async(&mut con)
                .await
                .map_err(self.redis_err(&op))?;
            let existing = existing.map(Zeroizing::new);
            let write_key = match &existing {
                None => true,
                Some(v) if same_key(parse_key_value(v).ok().as_ref(), key) => false,
                Some(_) => {
                    let _ = redis::cmd("UNWATCH").query_async::<()>(&mut con).await;
                    return Err(RspamdError::KeyConflict {
                        hash: self.key_hash.clone(),
                        domain,
                        selector: selector.to_string(),
                    });
                }
            };
            let mut tx = redis::pipe();
            tx.atomic();
            if write_key {
                tx.hset(&self.key_hash, &field, value.as_str());
            }
            tx.hset(&self.selector_hash, &domain, selector.as_str());
            let done: Option<Vec<redis::Value>> = tx
                .query_async(&mut con)
                .await
                .map_err(self.redis_err(&op))?;
            if done.is_some() {
                return Ok(RspamdSwitched { previous });
            }
        }
        Err(RspamdError::Contended {
            url: self.redis_url.clone(),
            operation: op,
        })
    }

    /// What rspamd signs `domain` with now: the selector hash's selector and
    /// the key stored for it (`None`: no selector for the domain).
    ///
    /// # Errors
    /// [`RspamdError::Redis`], [`RspamdError::InvalidDomain`].
    pub async fn current(&self, domain: &str) -> Result<Option<RedisEntry>, RspamdError> {
        let domain = domain_field(domain)?;
        let op = format!("read the selector of {domain}");
        let mut con = self.connect(&op).await?;
        let selector: Option<String> = con
            .hget(&self.selector_hash, &domain)
            .await
            .map_err(self.redis_err(&op))?;
        let Some(selector) = selector else {
            return Ok(None);
        };
        let key: Option<String> = con
            .hget(&self.key_hash, format!("{selector}.{domain}"))
            .await
            .map_err(self.redis_err(&op))?;
        Ok(Some(RedisEntry {
            domain,
            selector,
            key: key.map(Zeroizing::new),
        }))
    }

    /// Every domain the selector hash names, with its selector and stored key
    /// (what `maildns import rspamd` adopts), sorted by domain.
    ///
    /// # Errors
    /// [`RspamdError::Redis`].
    pub async fn entries(&self) -> Result<Vec<RedisEntry>, RspamdError> {
        let op = "read the selector hash";
        let mut con = self.connect(op).await?;
        let selectors: Vec<(String, String)> = con
            .hgetall(&self.selector_hash)
            .await
            .map_err(self.redis_err(op))?;
        let mut out = Vec::with_capacity(selectors.len());
        for (domain, selector) in selectors {
            let key: Option<String> = con
                .hget(&self.key_hash, format!("{selector}.{domain}"))
                .await
                .map_err(self.redis_err(op))?;
            out.push(RedisEntry {
                domain: domain.to_ascii_lowercase(),
                selector,
                key: key.map(Zeroizing::new),
            });
        }
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(out)
    }

    /// Removes the key of a retired `selector` of `domain` from the key hash,
    /// only while the selector hash names another selector (checked in the
    /// same transaction). Returns how many fields were removed (0 or 1).
    ///
    /// # Errors
    /// [`RspamdError::StillCurrent`] when rspamd still signs with it (nothing
    /// removed), [`RspamdError::Contended`], [`RspamdError::Redis`].
    pub async fn remove_key(
        &self,
        domain: &str,
        selector: &Selector,
    ) -> Result<usize, RspamdError> {
        let domain = domain_field(domain)?;
        let field = format!("{selector}.{domain}");
        let op = format!("remove the key {field}");
        for _ in 0..ATTEMPTS {
            let mut con = self.connect(&op).await?;
            redis::cmd("WATCH")
                .arg(&self.key_hash)
                .arg(&self.selector_hash)
                .query_async::<()>(&mut con)
                .await
                .map_err(self.redis_err(&op))?;
            let (current, exists): (Option<String>, bool) = redis::pipe()
                .hget(&self.selector_hash, &domain)
                .hexists(&self.key_hash, &field)
                .query_async(&mut con)
                .await
                .map_err(self.redis_err(&op))?;
            if current.as_deref() == Some(selector.as_str()) {
                let _ = redis::cmd("UNWATCH").query_async::<()>(&mut con).await;
                return Err(RspamdError::StillCurrent {
                    hash: self.selector_hash.clone(),
                    domain,
                    selector: selector.to_string(),
                });
            }
            if !exists {
                let _ = redis::cmd("UNWATCH").query_async::<()>(&mut con).await;
                return Ok(0);
            }
            let done: Option<Vec<redis::Value>> = redis::pipe()
                .atomic()
                .hdel(&self.key_hash, &field)
                .query_async(&mut con)
                .await
                .map_err(self.redis_err(&op))?;
            if done.is_some() {
                return Ok(1);
            }
        }
        Err(RspamdError::Contended {
            url: self.redis_url.clone(),
            operation: op,
        })
    }

    /// [`RspamdSigner::probe_controller`] on every controller, in the
    /// configured order: one [`EndpointProbe`] each.
    pub async fn probe(
        &self,
        domain: &str,
        servers: &[SocketAddr],
        timeout: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<EndpointProbe> {
        let mut out = Vec::with_capacity(self.controllers.len());
        for c in &self.controllers {
            out.push(EndpointProbe {
                endpoint: c.to_string(),
                result: self
                    .probe_controller(c, domain, servers, timeout, now)
                    .await,
            });
        }
        out
    }

    /// Scans a probe message for `domain` through `controller` as from the
    /// authenticated user `postmaster@domain` at 127.0.0.1, and verifies each
    /// DKIM-Signature rspamd would add against `servers` (the domain's
    /// authoritative servers). `now` dates the message (the runner's clock).
    ///
    /// # Errors
    /// [`ProbeError::NoServers`] when `servers` is empty,
    /// [`ProbeError::Controller`] when the controller cannot be reached,
    /// refuses the password or answers something else than its JSON.
    pub async fn probe_controller(
        &self,
        controller: &reqwest::Url,
        domain: &str,
        servers: &[SocketAddr],
        timeout: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ProbeReport, ProbeError> {
        if servers.is_empty() {
            return Err(ProbeError::NoServers);
        }
        let url = controller
            .join("checkv2")
            .map_err(|e| ProbeError::Controller(format!("{controller}: {e}")))?;
        let (headers, body) = probe::probe_message(domain, now);
        let mut raw = Vec::new();
        for (n, v) in &headers {
            raw.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&body);
        let from = format!("postmaster@{domain}");
        let mut req = self
            .http
            .post(url.clone())
            .timeout(timeout)
            .header("User", &from)
            .header("IP", "127.0.0.1")
            .header("From", &from)
            .header("Rcpt", &from)
            .header("Helo", "localhost")
            .header("Hostname", "localhost")
            .header("Queue-Id", "maildnsprobe")
            .body(raw);
        if let Some(pw) = &self.controller_password {
            let mut value = reqwest::header::HeaderValue::from_str(pw).map_err(|_| {
                ProbeError::Controller(format!(
                    "rspamd controller at {url}: the controller password is not a valid HTTP header value"
                ))
            })?;
            value.set_sensitive(true);
            req = req.header("Password", value);
        }
        let reply = req
            .send()
            .await
            .map_err(|e| ProbeError::Controller(format!("rspamd controller at {url}: {e}")))?;
        let status = reply.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(ProbeError::Controller(format!(
                "rspamd controller at {url} refused the request ({status}): check the controller password credential"
            )));
        }
        let text = reply
            .text()
            .await
            .map_err(|e| ProbeError::Controller(format!("rspamd controller at {url}: {e}")))?;
        if !status.is_success() {
            return Err(ProbeError::Controller(format!(
                "rspamd controller at {url} answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            ProbeError::Controller(format!(
                "rspamd controller at {url}: not rspamd's JSON reply ({e})"
            ))
        })?;
        let added: Vec<(String, String)> = added_signatures(&json)
            .into_iter()
            .map(|v| ("DKIM-Signature".to_string(), v))
            .collect();
        let signatures = probe::verify_added(&added, &headers, &body, servers, timeout).await;
        Ok(ProbeReport {
            engine: "rspamd",
            socket: controller.to_string(),
            verdict: json
                .get("action")
                .and_then(|a| a.as_str())
                .unwrap_or("unknown")
                .to_string(),
            signatures,
        })
    }
}

/// The DKIM-Signature values in a `/checkv2` reply, in the order added: the
/// `dkim-signature` field (a string, or an array with several signatures),
/// then `milter.add_headers["DKIM-Signature"]` (with `use_milter_headers`:
/// a string, an object with `value`, or an array of those, ordered by
/// `order`).
fn added_signatures(json: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    let mut out = Vec::new();
    match json.get("dkim-signature") {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Array(a)) => out.extend(a.iter().filter_map(|v| v.as_str().map(String::from))),
        _ => {}
    }
    let milter = json
        .get("milter")
        .and_then(|m| m.get("add_headers"))
        .and_then(|h| h.as_object())
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("DKIM-Signature"))
                .map(|(_, v)| v)
        });
    let one = |v: &Value| -> Option<(i64, String)> {
        match v {
            Value::String(s) => Some((0, s.clone())),
            Value::Object(o) => Some((
                o.get("order").and_then(Value::as_i64).unwrap_or(0),
                o.get("value")?.as_str()?.to_string(),
            )),
            _ => None,
        }
    };
    let mut from_milter: Vec<(i64, String)> = match milter {
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => vec![],
    };
    from_milter.sort_by_key(|(o, _)| *o);
    for (_, v) in from_milter {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// A controller URL, checked: http(s), no credentials, path ending in `/`.
fn controller_url(url: &str) -> Result<reqwest::Url, RspamdError> {
    let ctl_err = |reason: String| RspamdError::ControllerUrl {
        url: redact(url),
        reason,
    };
    let mut controller = reqwest::Url::parse(url).map_err(|e| ctl_err(e.to_string()))?;
    if !matches!(controller.scheme(), "http" | "https") {
        return Err(ctl_err("use http:// or https://".into()));
    }
    if controller.password().is_some() || !controller.username().is_empty() {
        return Err(ctl_err(
            "it contains credentials: give the controller password as a credential instead".into(),
        ));
    }
    if !controller.path().ends_with('/') {
        let path = format!("{}/", controller.path());
        controller.set_path(&path);
    }
    Ok(controller)
}

/// The domain as rspamd looks it up (lowercased).
fn domain_field(domain: &str) -> Result<String, RspamdError> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    super::check_name("domain", &d).map_err(|_| RspamdError::InvalidDomain(domain.to_string()))?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeySpec;

    #[test]
    fn key_values_round_trip_in_rspamds_forms() {
        let ed = PrivateKey::generate(KeySpec::ed25519()).unwrap();
        let v = key_value(&ed).unwrap();
        assert!(!v.contains("BEGIN"), "rspamd 3.4 cannot load Ed25519 PEM");
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(raw[32..], ed.public_key_der().unwrap()[..]);
        assert_eq!(
            parse_key_value(&v).unwrap().p_value().unwrap(),
            ed.p_value().unwrap()
        );
        // The 32-byte seed alone is read too.
        let seed = base64::engine::general_purpose::STANDARD.encode(&raw[..32]);
        assert_eq!(
            parse_key_value(&seed).unwrap().p_value().unwrap(),
            ed.p_value().unwrap()
        );
        let rsa = PrivateKey::generate(KeySpec::rsa(1024)).unwrap();
        let v = key_value(&rsa).unwrap();
        assert!(v.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert_eq!(
            parse_key_value(&v).unwrap().p_value().unwrap(),
            rsa.p_value().unwrap()
        );
        // Base64 key data starting with '/' is key data, not a path.
        let found = (0..4096u32).find_map(|_| {
            let k = PrivateKey::generate(KeySpec::ed25519()).unwrap();
            let v = key_value(&k).unwrap();
            v.starts_with('/').then_some((k, v))
        });
        let (k, v) = found.expect("one key in 64 starts with '/'");
        assert_eq!(
            parse_key_value(&v).unwrap().p_value().unwrap(),
            k.p_value().unwrap()
        );
        let e = parse_key_value("/var/lib/rspamd/dkim/example.key").unwrap_err();
        assert!(e.to_string().contains("file path"), "{e}");
        let e = parse_key_value("not a key!").unwrap_err();
        assert!(!e.to_string().contains("not a key!"), "{e}");
        // A 64-byte value whose public half does not match is refused.
        let mut bad = raw.clone();
        bad[40] ^= 1;
        let bad = base64::engine::general_purpose::STANDARD.encode(&bad);
        assert!(parse_key_value(&bad).is_err());
    }

    #[test]
    fn signatures_from_both_reply_shapes() {
        let j: serde_json::Value = serde_json::json!({
            "action": "no action",
            "dkim-signature": "v=1; s=a",
        });
        assert_eq!(added_signatures(&j), vec!["v=1; s=a".to_string()]);
        let j: serde_json::Value = serde_json::json!({
            "milter": {"add_headers": {"DKIM-Signature": [
                {"value": "v=1; s=second", "order": 2},
                {"value": "v=1; s=first", "order": 1}
            ]}},
        });
        assert_eq!(
            added_signatures(&j),
            vec!["v=1; s=first".to_string(), "v=1; s=second".to_string()]
        );
        let j: serde_json::Value = serde_json::json!({"milter": {"remove_headers": {"X-Spam": 0}}});
        assert!(added_signatures(&j).is_empty());
    }

    #[test]
    fn urls_with_passwords_are_refused_without_echoing_them() {
        let mut s = RspamdSettings::new(
            "redis://:hunter2@127.0.0.1:6379/",
            "http://127.0.0.1:11334",
            "/var/lib/maildns/keys",
        );
        let e = RspamdSigner::new(s.clone()).unwrap_err().to_string();
        assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
        s.redis_url = "redis://127.0.0.1:6379/".into();
        s.controller_urls = vec!["http://admin:hunter2@127.0.0.1:11334".into()];
        let e = RspamdSigner::new(s.clone()).unwrap_err().to_string();
        assert!(e.contains("credentials") && !e.contains("hunter2"), "{e}");
        s.controller_urls = vec!["ftp://127.0.0.1".into()];
        assert!(RspamdSigner::new(s.clone()).is_err());
        s.controller_urls = vec!["http://127.0.0.1:11334".into()];
        s.redis_password = Some(Zeroizing::new("hunter2".into()));
        s.controller_password = Some(Zeroizing::new("hunter3".into()));
        let signer = RspamdSigner::new(s.clone()).unwrap();
        assert_eq!(signer.controller_urls(), ["http://127.0.0.1:11334/"]);
        let shown = format!("{signer:?} {s:?}");
        assert!(!shown.contains("hunter"), "{shown}");
    }
}
