//! Adopting an existing OpenDKIM setup (`maildns import opendkim`), or the
//! keys rspamd reads from Redis (`maildns import rspamd`, [`import_rspamd`]).
//!
//! Why this module exists: the seed's users already sign with a key they made by
//! hand (`opendkim-genkey`, a key.table line, a TXT record in the host's web UI).
//! Switching to maildns must not mean re-keying: the key OpenDKIM uses now is
//! recorded as the domain's [`KeyStatus::Active`](super::KeyStatus::Active) key,
//! and rotation starts from it. Nothing is written to OpenDKIM's files.
//!
//! opendkim.conf names the tables (`KeyTable`, `SigningTable`, `file:`/`refile:`
//! or a bare path) or, in single-key mode, `KeyFile`, `Selector` and `Domain`.
//! For each domain the key.table entries of that domain are tried, the one the
//! signing table uses for the domain's addresses first; the first key of each
//! algorithm is adopted with [`machine::adopt`], which is idempotent.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use serde::Serialize;

use super::machine::{self, AdoptError, Algorithm, Event, Selector, check_invariants};
use super::store::{Store, StoreError};
use crate::config::{self, Domain};
use crate::keys;
use crate::signer::opendkim::{KeyTable, OpenDkimConf, ParseError, SigningTable};
use crate::signer::opendkim_sql::{KeyRow, OpenDkimSql};
use crate::signer::reader::{self, ReadError, TablesError};
use crate::signer::rspamd::{RedisEntry, RspamdSigner};
use crate::signer::unix::same_file;

/// Why the OpenDKIM setup could not be read at all (per-domain problems are
/// [`ImportResult`]s instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// opendkim.conf or a table does not parse.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: ParseError,
    },
    /// A table of a dataset type maildns cannot read (`db:`, `ldap:`, ...).
    #[error(
        "{}: {setting} is {}: maildns reads only file: and refile: tables; convert it to a flat file first",
        conf.display(),
        crate::quote::quoted(value)
    )]
    UnsupportedTable {
        /// opendkim.conf.
        conf: PathBuf,
        /// `KeyTable` or `SigningTable`.
        setting: &'static str,
        /// The value as written.
        value: String,
    },
    /// Neither a KeyTable nor a KeyFile is configured.
    #[error(
        "{}: neither KeyTable nor KeyFile is set, so OpenDKIM signs with no key maildns could adopt",
        conf.display()
    )]
    NoKeys {
        /// opendkim.conf.
        conf: PathBuf,
    },
}

/// A key OpenDKIM is configured to sign with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The key.table name (`None` in single-key mode).
    pub name: Option<String>,
    /// Signing domain as written (`%` = the domain of the message).
    pub domain: String,
    /// Selector as written.
    pub selector: String,
    /// Key file path (or inline key data, which maildns does not adopt).
    pub key: String,
}

/// A KeyTable entry no SigningTable line names ([`OpenDkimSetup::unused_entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedEntry {
    /// The KeyTable file.
    pub file: PathBuf,
    /// Its 1-based line there.
    pub line: Option<usize>,
    /// The entry's name (the first field).
    pub name: String,
    /// Its selector as written.
    pub selector: String,
    /// Its key file (or inline key data).
    pub key: String,
}

/// OpenDKIM's configuration as read from opendkim.conf and its tables.
#[derive(Debug, Clone)]
pub struct OpenDkimSetup {
    /// opendkim.conf.
    pub conf_path: PathBuf,
    /// The parsed opendkim.conf.
    pub conf: OpenDkimConf,
    /// The KeyTable file and its contents.
    pub key_table: Option<(PathBuf, KeyTable)>,
    /// The SigningTable file and its contents.
    pub signing_table: Option<(PathBuf, SigningTable)>,
    /// Single-key mode: `KeyFile`/`Selector` and the domains of `Domain`.
    pub single: Option<(Vec<String>, Candidate)>,
}

impl From<ReadError> for ImportError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Read { path, source } => ImportError::Read { path, source },
            ReadError::Parse { path, source } => ImportError::Parse { path, source },
        }
    }
}

impl From<TablesError> for ImportError {
    fn from(e: TablesError) -> Self {
        match e {
            TablesError::File(e) => e.into(),
            TablesError::Unsupported {
                conf,
                setting,
                value,
            } => ImportError::UnsupportedTable {
                conf,
                setting,
                value,
            },
        }
    }
}

impl OpenDkimSetup {
    /// Reads opendkim.conf at `conf_path` and the tables it names (through
    /// [`crate::signer::reader`], the reader the signer uses).
    ///
    /// # Errors
    /// [`ImportError`] naming the file that cannot be read or parsed, a table
    /// that is not a flat file, or a conf naming no key.
    pub fn read(conf_path: &Path) -> Result<OpenDkimSetup, ImportError> {
        let conf = reader::read_conf(conf_path)?;
        let reader::NamedTables {
            key_table,
            signing_table,
        } = reader::read_named_tables(conf_path, &conf)?;
        let single = match (&conf.key_file, &conf.selector) {
            (Some(file), Some(selector)) if key_table.is_none() => {
                let domains = single_domains(conf.domain.as_deref().unwrap_or_default())?;
                Some((
                    domains,
                    Candidate {
                        name: None,
                        domain: String::new(),
                        selector: selector.clone(),
                        key: file.display().to_string(),
                    },
                ))
            }
            _ => None,
        };
        if key_table.is_none() && single.is_none() {
            return Err(ImportError::NoKeys {
                conf: conf_path.to_path_buf(),
            });
        }
        Ok(OpenDkimSetup {
            conf_path: conf_path.to_path_buf(),
            conf,
            key_table,
            signing_table,
            single,
        })
    }

    /// The keys OpenDKIM may sign `domain`'s mail with, the one the signing
    /// table picks for the domain's addresses first.
    pub fn candidates(&self, domain: &Fqdn) -> Vec<Candidate> {
        let name = domain.as_str();
        if let Some((_, kt)) = &self.key_table {
            let unused = self.unused_entries(domain);
            let chosen = self
                .signing_table
                .as_ref()
                .and_then(|(_, st)| st.lookup(&format!("postmaster@{name}")))
                .and_then(|n| kt.get(n))
                .filter(|e| e.domain == "%" || same_domain(&e.domain, name));
            let mut seen = std::collections::HashSet::new();
            return chosen
                .into_iter()
                .chain(kt.entries().filter(|e| same_domain(&e.domain, name)))
                .filter(|e| !unused.iter().any(|u| u.name == e.name))
                .filter(|e| seen.insert(e.name.clone()))
                .map(|e| Candidate {
                    name: Some(e.name.clone()),
                    domain: e.domain.clone(),
                    selector: e.selector.clone(),
                    key: e.key.clone(),
                })
                .collect();
        }
        match &self.single {
            Some((domains, c)) if domains.iter().any(|d| same_domain(d, name)) => {
                vec![Candidate {
                    domain: name.to_string(),
                    ..c.clone()
                }]
            }
            _ => Vec::new(),
        }
    }

    /// The KeyTable entries of `domain` that no SigningTable line names,
    /// with their lines: OpenDKIM never signs with them (an old key kept
    /// after a rotation by hand is the usual case), so they are not
    /// candidates for adoption. Empty without a SigningTable (then every
    /// entry is a candidate, as before).
    pub fn unused_entries(&self, domain: &Fqdn) -> Vec<UnusedEntry> {
        let (Some((path, kt)), Some((_, st))) = (&self.key_table, &self.signing_table) else {
            return Vec::new();
        };
        kt.entries_with_lines()
            .filter(|(_, e)| same_domain(&e.domain, domain.as_str()))
            .filter(|(_, e)| !st.entries().any(|s| s.name == e.name))
            .map(|(line, e)| UnusedEntry {
                file: path.clone(),
                line,
                name: e.name.clone(),
                selector: e.selector.clone(),
                key: e.key.clone(),
            })
            .collect()
    }

    /// Differences between the tables opendkim.conf names and the ones the
    /// `[signer]` section of maildns.toml edits (rotation would refuse to switch).
    pub fn signer_mismatches(&self, signer: &config::Signer) -> Vec<String> {
        let mut out = Vec::new();
        if signer.rspamd.is_some() {
            out.push(format!(
                "maildns.toml's [signer] is kind = \"rspamd\": keys imported from {}'s tables are recorded, but rotation writes the next key to rspamd's Redis",
                self.conf_path.display()
            ));
            return out;
        }
        if signer.sql.is_some() {
            out.push(format!(
                "maildns.toml's [signer] is kind = \"opendkim-sql\": keys imported from {}'s file tables are recorded, but rotation writes the next key to the SQL tables",
                self.conf_path.display()
            ));
            return out;
        }
        let pairs = [
            (
                "KeyTable",
                "key_table",
                self.key_table.as_ref().map(|(p, _)| p),
                &signer.key_table,
            ),
            (
                "SigningTable",
                "signing_table",
                self.signing_table.as_ref().map(|(p, _)| p),
                &signer.signing_table,
            ),
        ];
        for (setting, key, found, expected) in pairs {
            if found.is_some_and(|p| same_file(p, expected)) {
                continue;
            }
            out.push(format!(
                "{} sets {setting} to {}, but maildns.toml's signer.{key} is {}: rotation will refuse to switch keys until they agree",
                self.conf_path.display(),
                found
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "nothing".into()),
                expected.display()
            ));
        }
        out
    }
}

/// What the `Domain` setting of single-key mode lists: a comma- or
/// space-separated list, or a file (`file:`/`refile:`/bare path) with one domain
/// per line.
fn single_domains(value: &str) -> Result<Vec<String>, ImportError> {
    let value = value.trim();
    let path = value
        .strip_prefix("file:")
        .or_else(|| value.strip_prefix("refile:"))
        .or_else(|| value.starts_with('/').then_some(value));
    let text;
    let list = match path {
        Some(p) => {
            text = reader::read_text(Path::new(p))?;
            text.lines()
                .filter_map(|l| l.split('#').next())
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect()
        }
        None => value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    Ok(list)
}

fn same_domain(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// What happened to one key (or one domain, when it has no key to adopt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Recorded as the active key.
    Adopted,
    /// Already recorded, identically: nothing changed.
    AlreadyAdopted,
    /// OpenDKIM has no key for the domain.
    NotFound,
    /// The key file could not be read or parsed.
    Unreadable,
    /// The state already holds another key (or the selector) for the domain.
    Refused,
    /// Not adopted on purpose (no DKIM settings, or another key of the same
    /// algorithm comes first).
    Skipped,
    /// A KeyTable entry no SigningTable line names (OpenDKIM does not sign
    /// with it: typically an old key kept): not imported, a warning only.
    Unused,
}

impl Outcome {
    /// True for the outcomes that need the operator.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Outcome::NotFound | Outcome::Unreadable | Outcome::Refused
        )
    }
}

/// One line of the import report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportResult {
    /// The domain.
    pub domain: String,
    /// What happened.
    pub outcome: Outcome,
    /// The key.table name, when there is one.
    pub name: Option<String>,
    /// The selector.
    pub selector: Option<String>,
    /// The algorithm, once the key was read.
    pub algorithm: Option<Algorithm>,
    /// The key size, once the key was read.
    pub bits: Option<u32>,
    /// The key file.
    pub key_path: Option<String>,
    /// What happened, in words.
    pub message: String,
    /// What to fix, for problems.
    pub hint: Option<String>,
}

impl ImportResult {
    fn new(domain: &Fqdn, outcome: Outcome, message: String) -> Self {
        ImportResult {
            domain: domain.to_string(),
            outcome,
            name: None,
            selector: None,
            algorithm: None,
            bits: None,
            key_path: None,
            message,
            hint: None,
        }
    }

    fn of(domain: &Fqdn, c: &Candidate, outcome: Outcome, message: String) -> Self {
        ImportResult {
            name: c.name.clone(),
            selector: Some(c.selector.clone()),
            key_path: shown_key_path(&c.key),
            ..ImportResult::new(domain, outcome, message)
        }
    }

    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

/// A KeyTable key field as a report shows it: an absolute path as it is;
/// anything else (inline key data: a private key) never.
fn shown_key_path(key: &str) -> Option<String> {
    Path::new(key).is_absolute().then(|| key.to_string())
}

/// Adopts, for each of `domains`, the keys OpenDKIM signs it with as its active
/// keys, saving each domain's state with its events in one transaction. The
/// store must hold the lock. Idempotent: a second run reports
/// [`Outcome::AlreadyAdopted`] and writes nothing.
pub fn import_opendkim(
    store: &dyn Store,
    setup: &OpenDkimSetup,
    domains: &[&Domain],
    now: DateTime<Utc>,
) -> Result<Vec<ImportResult>, StoreError> {
    each_under_lease(store, domains.iter().map(|d| (*d, ())), |d, ()| {
        import_domain(store, setup, d, now)
    })
}

/// Runs `import` on each domain of `work` (with its own input) under the
/// domain's lease (on a shared store a replica may work it), releasing the
/// lease after each (a failed release only warns: the lease expires by
/// itself), and joins the results in order. Stops at the first store error.
fn each_under_lease<'d, T>(
    store: &dyn Store,
    work: impl IntoIterator<Item = (&'d Domain, T)>,
    mut import: impl FnMut(&Domain, T) -> Result<Vec<ImportResult>, StoreError>,
) -> Result<Vec<ImportResult>, StoreError> {
    let mut out = Vec::new();
    for (d, input) in work {
        store.lease(&d.name)?;
        let r = import(d, input);
        if let Err(e) = store.release(&d.name) {
            tracing::warn!(domain = %d.name, "cannot release the lease (it expires by itself): {e}");
        }
        out.extend(r?);
    }
    Ok(out)
}

fn import_domain(
    store: &dyn Store,
    setup: &OpenDkimSetup,
    d: &Domain,
    now: DateTime<Utc>,
) -> Result<Vec<ImportResult>, StoreError> {
    let domain = &d.name;
    let Some(dkim) = &d.dkim else {
        return Ok(vec![
            ImportResult::new(
                domain,
                Outcome::Skipped,
                "no DKIM settings in maildns.toml: maildns does not manage this domain's keys"
                    .into(),
            )
            .hint(format!(
                "add a [domains.\"{domain}\".dkim] section to have its keys rotated"
            )),
        ]);
    };
    // Entries OpenDKIM never signs with: a warning each, nothing read.
    let unused: Vec<ImportResult> = setup
        .unused_entries(domain)
        .into_iter()
        .map(|u| {
            let at = match u.line {
                Some(l) => format!("{}:{l}", u.file.display()),
                None => u.file.display().to_string(),
            };
            ImportResult {
                name: Some(u.name.clone()),
                selector: Some(u.selector),
                key_path: shown_key_path(&u.key),
                ..ImportResult::new(
                    domain,
                    Outcome::Unused,
                    format!(
                        "warning: {at}: KeyTable entry {} is named by no SigningTable line (OpenDKIM does not sign with it): not imported",
                        crate::quote::quoted(&u.name)
                    ),
                )
            }
        })
        .collect();
    let candidates = setup.candidates(domain);
    if candidates.is_empty() {
        let r = ImportResult::new(
            domain,
            Outcome::NotFound,
            match &setup.key_table {
                Some((p, _)) if !unused.is_empty() => format!(
                    "no entry for {domain} in {} that a SigningTable line names",
                    p.display()
                ),
                Some((p, _)) => format!("no entry for {domain} in {}", p.display()),
                None => format!(
                    "{}: single-key mode (KeyFile) does not list {domain} in Domain",
                    setup.conf_path.display()
                ),
            },
        )
        .hint(format!(
            "if OpenDKIM signs {domain} with a key, add `NAME {domain}:SELECTOR:/path/to/key.private` to the key table; otherwise `maildns publish` or `maildns rotate` creates a first key"
        ));
        let mut results = unused;
        results.push(r);
        return Ok(results);
    }
    let mut state = store.load(domain)?;
    let mut events: Vec<Event> = Vec::new();
    let mut done: Vec<Algorithm> = Vec::new();
    let mut results = unused;
    for c in &candidates {
        let r = adopt_one(&mut state, &mut events, &mut done, domain, dkim, c, now);
        results.push(r);
    }
    if !events.is_empty() {
        if let Err(e) = check_invariants(&state) {
            // Cannot happen through `adopt`; never save a broken state.
            return Ok(vec![
                ImportResult::new(domain, Outcome::Refused, e.to_string())
                    .hint("run `maildns status` and report this as a bug"),
            ]);
        }
        store.save(&state, &events)?;
    }
    Ok(results)
}

fn adopt_one(
    state: &mut machine::DomainState,
    events: &mut Vec<Event>,
    done: &mut Vec<Algorithm>,
    domain: &Fqdn,
    dkim: &config::DkimPolicy,
    c: &Candidate,
    now: DateTime<Utc>,
) -> ImportResult {
    let selector = match Selector::parse(&c.selector) {
        Ok(s) => s,
        Err(e) => {
            return ImportResult::of(domain, c, Outcome::Refused, e.to_string()).hint(
                "maildns only manages selectors that are one DNS label (letters, digits, '-', '_')",
            );
        }
    };
    let path = Path::new(&c.key);
    if !path.is_absolute() {
        return ImportResult::of(
            domain,
            c,
            Outcome::Unreadable,
            "the key is not given as an absolute file path (inline key data or a relative path)"
                .into(),
        )
        .hint("move the key into a file and name its absolute path in the key table");
    }
    let key = match keys::load_private_key(path) {
        Ok(k) => k,
        Err(e @ keys::KeyError::WeakKeyFile { bits, .. }) => {
            let mut r = ImportResult::of(domain, c, Outcome::Refused, e.to_string()).hint(format!(
                "generate a 2048-bit key (`maildns rotate` does, or `maildns keygen --domain {domain} --bits 2048`) and switch OpenDKIM to it; maildns never adopts or publishes an RSA key under 1024 bits"
            ));
            r.algorithm = Some(Algorithm::Rsa);
            r.bits = Some(bits);
            return r;
        }
        Err(e) => {
            return ImportResult::of(domain, c, Outcome::Unreadable, e.to_string()).hint(
                "the file must exist, be readable by the user running maildns (root or the opendkim user) and hold a PEM private key (PKCS#1 or PKCS#8)",
            );
        }
    };
    let (algorithm, bits) = (key.algorithm(), key.bits());
    let mut r = ImportResult::of(domain, c, Outcome::Adopted, String::new());
    r.algorithm = Some(algorithm);
    r.bits = Some(bits);
    if done.contains(&algorithm) {
        r.outcome = Outcome::Skipped;
        r.message = format!(
            "another {algorithm} key of {domain} comes first in the signing table; only one per algorithm is adopted"
        );
        return r;
    }
    if !dkim
        .policy
        .settings()
        .keys
        .iter()
        .any(|k| k.algorithm == algorithm)
    {
        r.outcome = Outcome::Refused;
        r.message =
            format!("an {algorithm} key, but maildns.toml does not list {algorithm} for {domain}");
        return r.hint(format!(
            "add \"{algorithm}\" to domains.\"{domain}\".dkim.algorithms to have it rotated"
        ));
    }
    done.push(algorithm);
    let weak = keys::strength_warning(algorithm, bits)
        .map(|w| format!("; warning: {w}"))
        .unwrap_or_default();
    match machine::adopt(state, selector, algorithm, bits, &c.key, now) {
        Ok(Some(ev)) => {
            r.message = format!(
                "adopted as the active {algorithm} key ({bits} bits); the next rotation is due {}{weak}",
                (now + dkim.policy.settings().rotation_interval).format("%Y-%m-%d")
            );
            events.push(ev);
        }
        Ok(None) => {
            r.outcome = Outcome::AlreadyAdopted;
            r.message = format!("already recorded as the active key: nothing changed{weak}");
        }
        Err(e) => {
            r.outcome = Outcome::Refused;
            r.message = e.to_string();
            r.hint = Some(match e {
                AdoptError::AlreadyActive { .. } => {
                    "maildns already manages this domain's keys: see `maildns status`".into()
                }
                AdoptError::TooSmall { .. } => {
                    "generate a 2048-bit key and switch OpenDKIM to it".into()
                }
                _ => "a selector is never reused: see `maildns status` for the recorded key".into(),
            });
        }
    }
    r
}

/// Adopts, for each of `domains`, the key rspamd signs it with today (`maildns
/// import rspamd`): the selector `entries` (read from Redis with
/// [`RspamdSigner::entries`]) names for the domain and the key stored for
/// it. maildns's own copy of the key is written to the signer's key directory
/// (a new 0600 file; an existing file with the same key is reused, one with
/// another key refuses the import), then recorded as the active key with
/// [`machine::adopt`], idempotent like [`import_opendkim`]. Nothing is
/// written to Redis.
pub fn import_rspamd(
    store: &dyn Store,
    signer: &RspamdSigner,
    entries: &[RedisEntry],
    domains: &[&Domain],
    now: DateTime<Utc>,
) -> Result<Vec<ImportResult>, StoreError> {
    each_under_lease(store, domains.iter().map(|d| (*d, ())), |d, ()| {
        import_rspamd_domain(store, signer, entries, d, now)
    })
}

fn import_rspamd_domain(
    store: &dyn Store,
    signer: &RspamdSigner,
    entries: &[RedisEntry],
    d: &Domain,
    now: DateTime<Utc>,
) -> Result<Vec<ImportResult>, StoreError> {
    let domain = &d.name;
    let Some(dkim) = &d.dkim else {
        return Ok(vec![not_managed(domain)]);
    };
    let Some(entry) = entries
        .iter()
        .find(|e| e.domain.eq_ignore_ascii_case(domain.as_str()))
    else {
        return Ok(vec![
            ImportResult::new(
                domain,
                Outcome::NotFound,
                format!(
                    "redis hash {} names no selector for {domain}",
                    signer.selector_hash()
                ),
            )
            .hint(format!(
                "if rspamd signs {domain} with a key from Redis, its selector is in {} (HSET {} {domain} SELECTOR); otherwise `maildns rotate` creates a first key",
                signer.selector_hash(),
                signer.selector_hash()
            )),
        ]);
    };
    let field = format!("{}.{}", entry.selector, entry.domain);
    let candidate = Candidate {
        name: None,
        domain: entry.domain.clone(),
        selector: entry.selector.clone(),
        key: format!("redis {} {field}", signer.key_hash()),
    };
    let key = match entry.private_key() {
        Ok(k) => k,
        Err(e) => {
            let outcome = match e {
                keys::KeyError::RsaTooSmall { .. } => Outcome::Refused,
                _ => Outcome::Unreadable,
            };
            return Ok(vec![
                ImportResult::of(
                    domain,
                    &candidate,
                    outcome,
                    format!("redis {} field {field}: {e}", signer.key_hash()),
                )
                .hint("rspamd signs nothing with a missing or unreadable key: store an RSA key (>= 1024 bits) as PEM or an Ed25519 key as base64 there, or let `maildns rotate` make one"),
            ]);
        }
    };
    adopt_copy(
        store,
        d,
        dkim,
        candidate,
        &key,
        (&signer.key_dir, signer.key_write),
        now,
    )
}

/// Adopts, for each of `domains`, the key the OpenDKIMs reading `[signer]
/// kind = "opendkim-sql"`'s tables sign it with today (`maildns import
/// opendkim` with that signer): the KeyTable row the SigningTable names for
/// mail From `postmaster@domain` (`rows`, one per domain in `domains`'
/// order, read with [`OpenDkimSql::signing_row`]), its key inline or in the
/// file the row names. maildns's copy of the key is written to the signer's
/// key directory and recorded as the active key, as [`import_rspamd`] does;
/// idempotent. Nothing is written to the tables.
pub fn import_opendkim_sql(
    store: &dyn Store,
    signer: &OpenDkimSql,
    rows: &[Option<KeyRow>],
    domains: &[&Domain],
    now: DateTime<Utc>,
) -> Result<Vec<ImportResult>, StoreError> {
    each_under_lease(store, domains.iter().copied().zip(rows), |d, row| {
        import_sql_domain(store, signer, row.as_ref(), d, now)
    })
}

fn import_sql_domain(
    store: &dyn Store,
    signer: &OpenDkimSql,
    row: Option<&KeyRow>,
    d: &Domain,
    now: DateTime<Utc>,
) -> Result<Vec<ImportResult>, StoreError> {
    let domain = &d.name;
    let Some(dkim) = &d.dkim else {
        return Ok(vec![not_managed(domain)]);
    };
    let t = &signer.tables;
    let Some(row) = row else {
        return Ok(vec![
            ImportResult::new(
                domain,
                Outcome::NotFound,
                format!(
                    "SigningTable {} names no KeyTable row of {} for mail from postmaster@{domain}",
                    t.signing_table, t.key_table
                ),
            )
            .hint(format!(
                "if OpenDKIM signs {domain} from these tables, its SigningTable row (pattern {domain}) names its KeyTable row; otherwise `maildns rotate` creates a first key"
            )),
        ]);
    };
    let candidate = Candidate {
        name: Some(row.id.clone()),
        domain: row.domain.clone(),
        selector: row.selector.clone(),
        key: match row.key_file() {
            Some(p) => p.display().to_string(),
            None => format!("row {} of {} (inline)", row.id, t.key_table),
        },
    };
    let place = format!("KeyTable {} row {}", t.key_table, row.id);
    if !row.domain.eq_ignore_ascii_case(domain.as_str()) {
        return Ok(vec![
            ImportResult::of(
                domain,
                &candidate,
                Outcome::Refused,
                format!(
                    "{place} (SigningTable pattern {}) signs as d={}, not {domain}",
                    row.pattern, row.domain
                ),
            )
            .hint("maildns adopts a key only for the signing domain it is published under"),
        ]);
    }
    let key = match row.private_key() {
        Ok(k) => k,
        Err(e) => {
            let outcome = match e {
                keys::KeyError::RsaTooSmall { .. } | keys::KeyError::WeakKeyFile { .. } => {
                    Outcome::Refused
                }
                _ => Outcome::Unreadable,
            };
            return Ok(vec![
                ImportResult::of(domain, &candidate, outcome, format!("{place}: {e}")).hint(
                    "OpenDKIM signs nothing with a missing or unreadable key: store an RSA key (>= 1024 bits) or an Ed25519 key there (PEM or base64 DER inline, or an absolute file path readable by maildns), or let `maildns rotate` make one",
                ),
            ]);
        }
    };
    adopt_copy(
        store,
        d,
        dkim,
        candidate,
        &key,
        (&signer.key_dir, signer.key_write),
        now,
    )
}

/// The result for a domain without DKIM settings.
fn not_managed(domain: &Fqdn) -> ImportResult {
    ImportResult::new(
        domain,
        Outcome::Skipped,
        "no DKIM settings in maildns.toml: maildns does not manage this domain's keys".into(),
    )
    .hint(format!(
        "add a [domains.\"{domain}\".dkim] section to have its keys rotated"
    ))
}

/// Adopts `key`, read from an engine's shared store as `candidate`, as
/// `d`'s active key: maildns's own copy is written to `key_dir` (a new
/// file with `key_write`'s mode and owner; an existing file with the same
/// key is reused, one with another key refuses the import) and recorded
/// with [`machine::adopt`] (idempotent). Nothing is written to the engine.
fn adopt_copy(
    store: &dyn Store,
    d: &Domain,
    dkim: &config::DkimPolicy,
    mut candidate: Candidate,
    key: &keys::PrivateKey,
    (key_dir, key_write): (&Path, keys::WriteOptions),
    now: DateTime<Utc>,
) -> Result<Vec<ImportResult>, StoreError> {
    let domain = &d.name;
    let selector = match Selector::parse(&candidate.selector) {
        Ok(s) => s,
        Err(e) => {
            return Ok(vec![
                ImportResult::of(domain, &candidate, Outcome::Refused, e.to_string()).hint(
                    "maildns only manages selectors that are one DNS label (letters, digits, '-', '_')",
                ),
            ]);
        }
    };
    let selector = &selector;
    // maildns's copy of the key: the state's key file.
    let copy = match crate::signer::key_file(key_dir, domain.as_str(), selector) {
        Ok(path) if path.exists() => match keys::load_private_key(&path) {
            Ok(k) if k.public_key_der().ok() == key.public_key_der().ok() => Ok(path),
            Ok(_) => Err(format!(
                "{} already holds another key for {selector}",
                path.display()
            )),
            Err(e) => Err(e.to_string()),
        },
        Ok(_) => crate::signer::write_key_file(key_dir, domain.as_str(), selector, key, key_write)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let path = match copy {
        Ok(p) => p,
        Err(why) => {
            return Ok(vec![
                ImportResult::of(domain, &candidate, Outcome::Refused, why).hint(
                    "move the file away (maildns never overwrites a key file) and import again",
                ),
            ]);
        }
    };
    candidate.key = path.display().to_string();
    let mut state = store.load(domain)?;
    let mut events: Vec<Event> = Vec::new();
    let r = adopt_one(
        &mut state,
        &mut events,
        &mut Vec::new(),
        domain,
        dkim,
        &candidate,
        now,
    );
    if !events.is_empty() {
        if let Err(e) = check_invariants(&state) {
            return Ok(vec![
                ImportResult::new(domain, Outcome::Refused, e.to_string())
                    .hint("run `maildns status` and report this as a bug"),
            ]);
        }
        store.save(&state, &events)?;
    }
    Ok(vec![r])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(kt: &str, st: &str) -> OpenDkimSetup {
        OpenDkimSetup {
            conf_path: PathBuf::from("/etc/opendkim.conf"),
            conf: OpenDkimConf::default(),
            key_table: Some((
                PathBuf::from("/k.table"),
                KeyTable::parse(kt).expect("key table"),
            )),
            signing_table: Some((
                PathBuf::from("/s.table"),
                SigningTable::parse(st).expect("signing table"),
            )),
            single: None,
        }
    }

    #[test]
    fn the_signing_tables_choice_comes_first_once() {
        let s = setup(
            "old example.com:2019:/k/old\nother example.org:x:/k/o\nnew Example.COM:2020:/k/new\n",
            "*@example.com new\n",
        );
        let c = s.candidates(&Fqdn::parse("example.com").expect("name"));
        let names: Vec<_> = c.iter().filter_map(|c| c.name.as_deref()).collect();
        // `old` is named by no SigningTable line: not a candidate, but
        // reported with its line.
        assert_eq!(names, ["new"]);
        let unused = s.unused_entries(&Fqdn::parse("example.com").expect("name"));
        let unused: Vec<_> = unused.iter().map(|u| (u.name.as_str(), u.line)).collect();
        assert_eq!(unused, [("old", Some(1))]);
        // `%` (the message's domain) counts when the signing table picks it.
        let s = setup("any %:sel:/k/any\n", "*@example.com any\n");
        let c = s.candidates(&Fqdn::parse("example.com").expect("name"));
        assert_eq!(c.len(), 1);
        assert!(
            s.candidates(&Fqdn::parse("example.net").expect("name"))
                .is_empty()
        );
    }

    #[test]
    fn single_key_domain_lists() {
        assert_eq!(
            single_domains("example.com, example.org example.net").expect("list"),
            ["example.com", "example.org", "example.net"]
        );
        assert!(single_domains("").expect("empty").is_empty());
        assert!(matches!(
            single_domains("file:/nonexistent/domains"),
            Err(ImportError::Read { .. })
        ));
    }
}
