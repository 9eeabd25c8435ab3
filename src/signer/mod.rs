//! The signer: the engine that adds DKIM-Signature headers to outgoing mail,
//! driven through one shape whatever the engine.
//!
//! # The shape
//!
//! The runner holds one [`Signer`], an enum that dispatches over the backends
//! (one variant per engine, `#[non_exhaustive]`: backends are added as
//! variants, not behind a trait object, so the set stays closed and each
//! backend keeps its own typed configuration). Every backend offers the same
//! operations:
//!
//! | operation | what it does |
//! |---|---|
//! | [`Signer::key_path`] / [`Signer::install_key`] | where maildns keeps the private key of (signing domain, selector), and writing it there (a NEW file, never overwritten) |
//! | [`Signer::share_key`] / [`Signer::stored_key`] | put a new key into the engine's shared store (where every MTA and every maildns replica reads it; unused until the switch) and read it back; nothing for file-based OpenDKIM |
//! | [`Signer::load_key`] | the private key of a selector: maildns's key file, else the engine's shared store |
//! | [`Signer::switch`] | make the engine sign the domain with (selector, key): pre-reload checks, the engine's data, reload |
//! | [`Signer::entry`] | the entry the engine's data names now for mail From `postmaster@domain` (selector + where the key is) |
//! | [`Signer::check_and_reload`] | re-run the pre-reload checks and re-send the reload (a no-op where the engine has none) |
//! | [`Signer::remove_key`] | remove a retired key from the engine's data |
//! | [`Signer::probe`] | one [`EndpointProbe`] per signer endpoint (each OpenDKIM milter socket, an rspamd controller): what a probe message comes back signed with |
//!
//! A switch is proven, and a retirement allowed, only when EVERY endpoint
//! agrees ([`EndpointProbe::all`]): one endpoint still on the old key (or
//! unreachable) holds the step, and the reason names that endpoint.
//!
//! Backends: [`files::OpenDkimFiles`] (OpenDKIM with a file KeyTable and
//! SigningTable and key files on this host; the single-machine default),
//! [`opendkim_sql::OpenDkimSql`] (every MTA's OpenDKIM reading `dsn:` KeyTable
//! and SigningTable from PostgreSQL, key data inline; one milter socket per
//! MTA, all probed) and [`rspamd::RspamdSigner`] (rspamd on one or more MTAs
//! reading keys and selectors from one Redis; every controller probed).
//!
//! Never SIGHUP OpenDKIM: libmilter treats HUP like TERM and OpenDKIM exits.

pub mod files;
pub mod milter;
pub mod opendkim;
pub mod opendkim_sql;
pub mod probe;
pub mod reader;
pub mod rspamd;
pub mod unix;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use files::{OpenDkimFiles, Switched};
pub use milter::{MilterSocket, SocketSpecError};
pub use opendkim_sql::{KeyRow, OpenDkimSql, SqlTables};
pub use rspamd::{RspamdError, RspamdSigner};

use crate::keys::{KeyError, PrivateKey};
use crate::rotation::Selector;
use opendkim::ParseError;
use probe::{ProbeError, ProbeReport};
use reader::ReadError;
use unix::WriteError;

/// The signer maildns drives, one variant per backend (see the module docs for
/// the operations every backend offers).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Signer {
    /// OpenDKIM with file tables and key files on this host.
    OpenDkimFiles(OpenDkimFiles),
    /// OpenDKIM on several MTAs reading `dsn:` tables from PostgreSQL.
    OpenDkimSql(OpenDkimSql),
    /// rspamd reading keys and selectors from Redis.
    Rspamd(RspamdSigner),
}

/// Where the key of a [`SignerEntry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRef {
    /// A key file on this host.
    File(PathBuf),
    /// A field of rspamd's Redis key hash.
    Redis {
        /// The hash (`key_prefix`).
        hash: String,
        /// The field (`<selector>.<domain>`).
        field: String,
        /// The stored key's public key (DER), `None` when the field is
        /// missing or holds no readable key.
        public_key: Option<Vec<u8>>,
    },
    /// Key data inline in a database row.
    Inline {
        /// The table.
        table: String,
        /// The row's key name (`<selector>._domainkey.<domain>`).
        id: String,
    },
}

/// The entry a signer uses now for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerEntry {
    /// The selector it signs with.
    pub selector: String,
    /// Where its key is.
    pub key: KeyRef,
}

impl SignerEntry {
    /// Whether this entry is `selector` with the key maildns keeps at
    /// `key_path` (file-based OpenDKIM) or whose public key (DER) is
    /// `public_key` (rspamd compares the stored key by public key).
    pub fn is(&self, selector: &Selector, key_path: &Path, public_key: &[u8]) -> bool {
        self.selector == selector.as_str()
            && match &self.key {
                KeyRef::File(p) => p == key_path,
                // The row of this selector (selectors are never reused, a row
                // is never overwritten with another key, and the probe checks
                // the key against DNS).
                KeyRef::Inline { id, .. } => id.starts_with(&format!("{selector}._domainkey.")),
                // The same key (compared by public key).
                KeyRef::Redis {
                    public_key: stored, ..
                } => stored.as_deref() == Some(public_key),
            }
    }

    /// Where the key is, in words (never the key itself).
    pub fn location(&self) -> String {
        match &self.key {
            KeyRef::File(p) => p.display().to_string(),
            KeyRef::Inline { table, id } => format!("row {id} of {table}"),
            KeyRef::Redis {
                hash,
                field,
                public_key,
            } => format!(
                "redis hash {hash} field {field}{}",
                if public_key.is_some() {
                    ""
                } else {
                    " (missing or unreadable: rspamd signs nothing)"
                }
            ),
        }
    }
}

/// What [`Signer::switch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchDone {
    /// Why the reload failed, if it did (the data names the new key; the probe
    /// tells what is live).
    pub reload_error: Option<String>,
}

/// One signer endpoint's answer to a probe.
#[derive(Debug)]
pub struct EndpointProbe {
    /// The endpoint (e.g. `local:/run/opendkim/opendkim.sock`).
    pub endpoint: String,
    /// What its probe message came back with, or why there is none.
    pub result: Result<ProbeReport, ProbeError>,
}

impl EndpointProbe {
    /// True when there is at least one endpoint and every endpoint answered
    /// with a report satisfying `ok`.
    pub fn all(round: &[EndpointProbe], ok: impl Fn(&ProbeReport) -> bool) -> bool {
        !round.is_empty() && round.iter().all(|e| e.result.as_ref().is_ok_and(&ok))
    }

    /// The first endpoint that could not be probed, if any.
    pub fn first_error(round: &[EndpointProbe]) -> Option<&EndpointProbe> {
        round.iter().find(|e| e.result.is_err())
    }

    /// The endpoints that do not satisfy `ok` (no answer, or a report that
    /// does not satisfy it), each described naming its endpoint, joined with
    /// `"; "`.
    pub fn describe_failing(round: &[EndpointProbe], ok: impl Fn(&ProbeReport) -> bool) -> String {
        round
            .iter()
            .filter_map(|e| match &e.result {
                Ok(r) if !ok(r) => Some(r.describe()),
                Ok(_) => None,
                Err(err) => Some(format!("{}: {err}", e.endpoint)),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Signer {
    /// The engine's name, for messages (`OpenDKIM`).
    pub fn engine(&self) -> &'static str {
        match self {
            Signer::OpenDkimFiles(_) | Signer::OpenDkimSql(_) => "OpenDKIM",
            Signer::Rspamd(_) => "rspamd",
        }
    }

    /// Where maildns keeps the private key of `domain`/`selector`.
    ///
    /// # Errors
    /// [`SignerError::InvalidName`] for a domain that cannot be a path.
    pub fn key_path(&self, domain: &str, selector: &Selector) -> Result<PathBuf, SignerError> {
        match self {
            Signer::OpenDkimFiles(s) => s.key_path(domain, selector),
            Signer::OpenDkimSql(s) => s.key_path(domain, selector),
            Signer::Rspamd(s) => s.key_path(domain, selector),
        }
    }

    /// Writes `key` to a NEW file at [`Signer::key_path`] and returns its path.
    ///
    /// # Errors
    /// The name is invalid, the file exists or cannot be written.
    pub fn install_key(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<PathBuf, SignerError> {
        match self {
            Signer::OpenDkimFiles(s) => s.install_key(domain, selector, key),
            Signer::OpenDkimSql(s) => s.install_key(domain, selector, key),
            Signer::Rspamd(s) => s.install_key_file(domain, selector, key),
        }
    }

    /// Whether the engine keeps keys in a store shared by every MTA and every
    /// maildns replica (`opendkim-sql`, `rspamd`): then [`Signer::share_key`]
    /// writes the key there at generation and a switch reads it from there
    /// when this machine has no key file.
    pub fn shares_keys(&self) -> bool {
        !matches!(self, Signer::OpenDkimFiles(_))
    }

    /// Puts `key`, just generated for `domain`/`selector`, into the engine's
    /// shared store: the KeyTable row (no SigningTable row) for
    /// `opendkim-sql`, the key hash field (not the selector hash) for
    /// `rspamd`. Harmless for signing (each engine uses a key only once the
    /// domain's entry names its selector) and what lets a replica on another
    /// machine switch to the key without the generating replica's key file.
    /// Nothing for file-based OpenDKIM (its key file is the key). The same
    /// key already stored is no error.
    ///
    /// # Errors
    /// [`SignerError::KeyConflict`] when another key is stored under the
    /// selector (never overwritten); the store cannot be reached or written.
    pub async fn share_key(
        &self,
        domain: &str,
        selector: &Selector,
        key: &PrivateKey,
    ) -> Result<(), SignerError> {
        match self {
            Signer::OpenDkimFiles(_) => Ok(()),
            Signer::OpenDkimSql(s) => s.store_key(domain, selector, key).await,
            Signer::Rspamd(s) => Ok(s.store_key(domain, selector, key).await?),
        }
    }

    /// The key of `domain`/`selector` in the engine's shared store (`None`:
    /// not there; always `None` for file-based OpenDKIM).
    ///
    /// # Errors
    /// The store cannot be reached or read, or holds no usable key there.
    pub async fn stored_key(
        &self,
        domain: &str,
        selector: &Selector,
    ) -> Result<Option<PrivateKey>, SignerError> {
        match self {
            Signer::OpenDkimFiles(_) => Ok(None),
            Signer::OpenDkimSql(s) => s.stored_key(domain, selector).await,
            Signer::Rspamd(s) => Ok(s.stored_key(domain, selector).await?),
        }
    }

    /// The private key of `domain`/`selector`: the key file the state
    /// records (`recorded`) or this replica's own copy
    /// ([`Signer::key_path`]) when either exists, else, for the
    /// database-backed engines, the key in the shared store
    /// ([`Signer::stored_key`]). File-based OpenDKIM reads `recorded` only.
    ///
    /// # Errors
    /// [`SignerError::KeyMissing`] (naming the selector and where maildns
    /// looked) when no copy exists; a file or stored key that cannot be read.
    pub async fn load_key(
        &self,
        domain: &str,
        selector: &Selector,
        recorded: Option<&Path>,
    ) -> Result<PrivateKey, SignerError> {
        if let Signer::OpenDkimFiles(_) = self {
            let Some(path) = recorded else {
                return Err(SignerError::KeyMissing {
                    domain: domain.to_string(),
                    selector: selector.to_string(),
                    looked: "no key file is recorded".into(),
                });
            };
            return Ok(crate::keys::load_private_key(path)?);
        }
        let own = self.key_path(domain, selector)?;
        let mut looked = Vec::new();
        for path in recorded.into_iter().chain(std::iter::once(own.as_path())) {
            if path.exists() {
                return Ok(crate::keys::load_private_key(path)?);
            }
            looked.push(path.display().to_string());
        }
        if let Some(key) = self.stored_key(domain, selector).await? {
            return Ok(key);
        }
        looked.push(self.store_name());
        Err(SignerError::KeyMissing {
            domain: domain.to_string(),
            selector: selector.to_string(),
            looked: looked.join(", "),
        })
    }

    /// The engine's key store, in words (for messages; never a password).
    pub fn store_name(&self) -> String {
        match self {
            Signer::OpenDkimFiles(s) => s.key_table.display().to_string(),
            Signer::OpenDkimSql(s) => format!(
                "KeyTable {} at {}",
                s.tables.key_table,
                crate::rotation::store::postgres::redact(&s.url)
            ),
            Signer::Rspamd(s) => format!("redis hash {} at {}", s.key_hash(), s.redis_url()),
        }
    }

    /// Makes the engine sign `*@domain` with the key of `selector` (at
    /// `key_path` for file-based OpenDKIM; for the database-backed engines
    /// the key found by [`Signer::load_key`], maildns's file or the shared
    /// store), with the pre-reload checks, the engine's data and the reload.
    /// The caller proves it afterwards with [`Signer::probe`].
    ///
    /// # Errors
    /// The first pre-reload check that fails (nothing written),
    /// [`SignerError::KeyMissing`] when the key is nowhere (nothing written),
    /// or the data could not be written. A failed reload is
    /// [`SwitchDone::reload_error`].
    pub async fn switch(
        &self,
        domain: &str,
        selector: &Selector,
        key_path: &Path,
    ) -> Result<SwitchDone, SignerError> {
        match self {
            Signer::OpenDkimFiles(s) => s.switch(domain, selector, key_path).map(|sw| SwitchDone {
                reload_error: sw.reload_error,
            }),
            // No reload: rspamd reads Redis at every message.
            Signer::Rspamd(s) => {
                let key = self.load_key(domain, selector, Some(key_path)).await?;
                s.switch(domain, selector, &key)
                    .await
                    .map(|_| SwitchDone { reload_error: None })
                    .map_err(SignerError::from)
            }
            Signer::OpenDkimSql(s) => {
                let key = self.load_key(domain, selector, Some(key_path)).await?;
                s.switch_key(domain, selector, &key)
                    .await
                    .map(|_| SwitchDone { reload_error: None })
            }
        }
    }

    /// The entry the engine's data names for mail From `postmaster@domain`
    /// (`None`: no entry).
    ///
    /// # Errors
    /// The data cannot be read.
    pub async fn entry(&self, domain: &str) -> Result<Option<SignerEntry>, SignerError> {
        match self {
            Signer::OpenDkimFiles(s) => {
                let (kt, st) = s.read_tables()?;
                let from = format!("postmaster@{domain}");
                Ok(st
                    .lookup(&from)
                    .and_then(|n| kt.get(n))
                    .map(|e| SignerEntry {
                        selector: e.selector.clone(),
                        key: KeyRef::File(PathBuf::from(&e.key)),
                    }))
            }
            Signer::OpenDkimSql(s) => s.entry(domain).await,
            Signer::Rspamd(s) => s.entry(domain).await,
        }
    }

    /// Re-runs the pre-reload checks and re-sends the reload (after a probe
    /// showed the old key: the reload may have been refused or never sent).
    ///
    /// # Errors
    /// The first check that fails, or the reload command fails.
    pub async fn check_and_reload(&self) -> Result<(), SignerError> {
        match self {
            Signer::OpenDkimFiles(s) => s.check_reload().and_then(|()| s.reload()),
            Signer::OpenDkimSql(s) => s.check_and_reload().await,
            // Nothing to reload: check that Redis answers.
            Signer::Rspamd(s) => Ok(s.check().await?),
        }
    }

    /// Removes the retired key `selector` of `domain` from the engine's data
    /// (the private key file is left to the caller); returns how many entries
    /// were removed.
    ///
    /// # Errors
    /// The data cannot be read or written, or the reload fails.
    pub async fn remove_key(
        &self,
        domain: &str,
        selector: &Selector,
    ) -> Result<usize, SignerError> {
        match self {
            Signer::OpenDkimFiles(s) => s.remove_key(domain, selector),
            Signer::OpenDkimSql(s) => s.remove_key(domain, selector).await,
            Signer::Rspamd(s) => Ok(s.remove_key(domain, selector).await?),
        }
    }

    /// The endpoints [`Signer::probe`] asks (empty: the signer cannot be
    /// probed).
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Signer::OpenDkimFiles(s) => s.socket.iter().map(ToString::to_string).collect(),
            Signer::OpenDkimSql(s) => s.sockets.iter().map(ToString::to_string).collect(),
            Signer::Rspamd(s) => s.controller_urls(),
        }
    }

    /// Sends one probe message for `domain` through every endpoint (dated
    /// `now`, I/O bounded by `timeout`) and verifies the signatures against
    /// every server of `servers`; one [`EndpointProbe`] per endpoint, in the
    /// configured order (empty when the signer cannot be probed).
    pub async fn probe(
        &self,
        domain: &str,
        servers: &[SocketAddr],
        timeout: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<EndpointProbe> {
        let sockets: Vec<MilterSocket> = match self {
            Signer::OpenDkimFiles(s) => s.socket.iter().cloned().collect(),
            Signer::OpenDkimSql(s) => s.sockets.clone(),
            Signer::Rspamd(s) => return s.probe(domain, servers, timeout, now).await,
        };
        let mut out = Vec::with_capacity(sockets.len());
        for socket in sockets {
            let result = probe::probe_at(&socket, domain, servers, timeout, now).await;
            out.push(EndpointProbe {
                endpoint: socket.to_string(),
                result,
            });
        }
        out
    }
}

/// Why a signer operation failed; each variant says which step and which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// A domain that cannot be used in a path or table (selectors are
    /// validated [`Selector`]s).
    #[error(
        "invalid {what} {}: use letters, digits, '-', '_' and '.'",
        crate::quote::quoted(value)
    )]
    InvalidName {
        /// `domain` or `selector`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Writing or reading a key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// rspamd's Redis refused or failed an operation.
    #[error(transparent)]
    Rspamd(#[from] RspamdError),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A table or opendkim.conf does not parse.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: ParseError,
    },
    /// opendkim.conf names other table files than this signer edits.
    #[error("{}: {setting} is {found}, but maildns edits {}", conf.display(), expected.display())]
    ConfMismatch {
        /// The opendkim.conf.
        conf: PathBuf,
        /// `KeyTable` or `SigningTable`.
        setting: &'static str,
        /// What the conf says, quoted as written (`not set` when absent).
        found: String,
        /// What this signer edits.
        expected: PathBuf,
    },
    /// A file the opendkim user must read is not readable by it.
    #[error("{} is not readable by {user}: OpenDKIM would keep its old configuration", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The opendkim user.
        user: String,
    },
    /// The key fails OpenDKIM's RequireSafeKeys check.
    #[error("{} would be refused by OpenDKIM (RequireSafeKeys): {}", path.display(), problems.join("; "))]
    UnsafeKey {
        /// The key file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// A table could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The private key of a selector is in no key file and not in the
    /// engine's shared store: nothing is published or switched to.
    #[error(
        "the private key of selector {selector} of {domain} is missing (looked in {looked}); nothing was published or switched"
    )]
    KeyMissing {
        /// The signing domain.
        domain: String,
        /// The selector.
        selector: String,
        /// Where maildns looked (paths, the store; never key data).
        looked: String,
    },
    /// The shared store already holds another key under the selector.
    #[error(
        "{store} already holds another key for selector {selector} of {domain}; a selector is never reused for a different key"
    )]
    KeyConflict {
        /// The table row or hash field.
        store: String,
        /// The signing domain.
        domain: String,
        /// The selector.
        selector: String,
    },
    /// A directory could not be created.
    #[error("{}: create directory: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// opendkim.conf's `UserID` is not the user `[signer]` names: the checks
    /// would be made for the wrong user.
    #[error("{}: UserID is {found_q}, but [signer] user is {}: OpenDKIM reads its files as {found_q}", conf.display(), crate::quote::quoted(expected), found_q = crate::quote::quoted(found))]
    UserMismatch {
        /// The opendkim.conf.
        conf: PathBuf,
        /// Its `UserID` user.
        found: String,
        /// The `[signer] user`.
        expected: String,
    },
    /// opendkim.conf's `Socket` cannot be used for probes.
    #[error("{}: Socket: {why}", conf.display())]
    BadSocket {
        /// The opendkim.conf.
        conf: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The signer's database could not be reached, read or written.
    #[error("signer database {url}: {operation}: {message}")]
    Sql {
        /// What was being done.
        operation: &'static str,
        /// The database URL (without a password).
        url: String,
        /// PostgreSQL's message.
        message: String,
    },
    /// The runtime that drives a signer operation from synchronous code
    /// could not start.
    #[error("starting the signer's runtime: {message}")]
    Runtime {
        /// Why.
        message: String,
    },
    /// The reload command could not run or failed.
    #[error("reload command [{}] failed: {reason}", command.iter().map(|a| crate::quote::quoted(a)).collect::<Vec<_>>().join(", "))]
    Reload {
        /// The command.
        command: Vec<String>,
        /// Exit status and stderr, or why it could not start.
        reason: String,
    },
}

impl From<ReadError> for SignerError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Read { path, source } => SignerError::Read { path, source },
            ReadError::Parse { path, source } => SignerError::Parse { path, source },
        }
    }
}

/// Runs a signer operation to completion from synchronous code (`publish`
/// prepares keys on plain threads, and `records` and `import` run inside the
/// caller's runtime, where blocking on it would panic): on a fresh thread
/// with its own one-thread runtime, as the PostgreSQL state store runs its
/// queries.
///
/// # Errors
/// `fut`'s error, or [`SignerError::Runtime`] when the runtime cannot start.
pub fn block_on<T: Send>(
    fut: impl std::future::Future<Output = Result<T, SignerError>> + Send,
) -> Result<T, SignerError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SignerError::Runtime {
                    message: e.to_string(),
                })?
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SignerError::Runtime {
                message: "the signer's thread stopped".into(),
            })
        })
    })
}

/// Whether two keys are the same key (same public key).
pub(crate) fn same_public_key(a: &PrivateKey, b: &PrivateKey) -> bool {
    match (a.public_key_der(), b.public_key_der()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Where maildns keeps the private key of `domain`/`selector` under
/// `key_dir`: `<key_dir>/<domain>/<selector>.private` (the domain in lower
/// case). Every backend keeps its own copy of a key there.
///
/// # Errors
/// [`SignerError::InvalidName`] for a domain that cannot be a path.
pub fn key_file(key_dir: &Path, domain: &str, selector: &Selector) -> Result<PathBuf, SignerError> {
    check_name("domain", domain)?;
    Ok(key_dir
        .join(domain.to_ascii_lowercase())
        .join(format!("{selector}.private")))
}

/// Writes `key` to a NEW file [`key_file`] (mode `opts.mode`, atomically;
/// the domain directory is created 0700 if missing and, when `opts.owner`
/// is set, given that owner like the key file) and returns its path. Never
/// overwrites: an existing file is an error.
///
/// # Errors
/// [`SignerError::InvalidName`], [`SignerError::CreateDir`], or
/// [`SignerError::Key`] when the file exists or cannot be written.
pub fn write_key_file(
    key_dir: &Path,
    domain: &str,
    selector: &Selector,
    key: &PrivateKey,
    opts: crate::keys::WriteOptions,
) -> Result<PathBuf, SignerError> {
    let path = key_file(key_dir, domain, selector)?;
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        let failed = |source| SignerError::CreateDir {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed)?;
        if let Some((uid, gid)) = opts.owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(failed)?;
        }
    }
    crate::keys::write_private_key(&path, key, opts)?;
    Ok(path)
}

pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), SignerError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with('.')
        && !value.contains("..")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SignerError::InvalidName {
            what,
            value: value.to_string(),
        })
    }
}
