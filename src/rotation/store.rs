//! Persistent rotation state: the [`Store`] trait and its embedded
//! implementation, [`SqliteStore`].
//!
//! Every state change is saved together with its events in one transaction,
//! so after a crash the store holds either the old state or the new one, with
//! the matching log. One process drives a store at a time: [`SqliteStore`]
//! takes an OS file lock (`flock`) on `<state_dir>/maildns.lock` for as long
//! as it lives. `flock` is taken through the `nix` crate, already a
//! dependency: the kernel drops the lock when the process dies (no stale lock
//! files to clean up), and a lock is per open file, so two stores in one
//! process exclude each other too.
//!
//! Readers (`maildns status`) open the store without the lock; SQLite's WAL
//! mode lets them read while the daemon writes.
//!
//! A `rotate --now` request is taken as on the shared store (schema 5):
//! [`Store::take_requests`] marks it with this store's taker name
//! (`requests.taken_by`: its pid and when it was opened) and an expiry
//! (`taken_until`, [`REQUEST_LEASE`] later) instead of deleting it; the taker
//! deletes it once done ([`Store::done_requests`]) or gives it back
//! ([`Store::return_requests`]). A process killed after taking a request
//! leaves it in the table: the next lock holder (a restarted daemon, or
//! `maildns rotate`) takes it over at once, since only a dead process can
//! have left a take behind another's lock (event `request_taken_over`); a
//! take the holder itself forgot expires after [`REQUEST_LEASE`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use maildns_providers::Fqdn;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::propagation::{Clock, SystemClock};

use super::machine::{Algorithm, DomainState, Event};

pub mod postgres;
mod schema;
pub mod tls;

pub use postgres::{PgOptions, PgStore};
use schema::{insert_events, ts};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "maildns.sqlite3";
/// File name of the lock inside the state directory.
pub const LOCK_FILE: &str = "maildns.lock";
/// Schema version this code writes (SQLite `user_version`). Version 2 adds
/// `keys.withdrawal_safe_after` and the `requests` table; version 3 adds
/// `keys.held` (a key a signer probe holds); version 4 adds the replica
/// columns of `events` (filled only by a state copied from PostgreSQL with
/// `maildns migrate-state`); version 5 adds `requests.taken_by` and
/// `taken_until` (a request is leased while it is done, not deleted when
/// taken); older stores are migrated when opened.
pub const SCHEMA_VERSION: i64 = 5;

/// How long a request taken by [`Store::take_requests`] stays this store's
/// without [`Store::keep_request`] (the shared store's default lease): after
/// it, the same process takes it again on its next pass. Another process
/// takes it over as soon as it holds the lock (the taker is then dead).
pub const REQUEST_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (or another store in this one) drives this state directory.
    #[error(
        "another maildns ({holder}) holds the state lock {path}; stop it or use another state directory"
    )]
    Locked {
        /// `pid N`, or `unknown pid`.
        holder: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A state change was attempted without holding the lock.
    #[error(
        "the state store {path} is open read-only (not locked); only the process holding the lock may change key states"
    )]
    NotLocked {
        /// The database.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// On which file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("state store {path}: {operation}: {source}")]
    Sqlite {
        /// What was being done.
        operation: &'static str,
        /// The database.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer maildns.
    #[error(
        "state store {path} has schema version {found}; this maildns knows versions up to {supported}"
    )]
    SchemaTooNew {
        /// The database.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest this code knows.
        supported: i64,
    },
    /// A save would record a new RSA key under 1024 bits (RFC 8301 §3.2).
    /// Keys recorded before the floor may stay (so they can be retired).
    #[error(
        "refusing to record {domain} key {selector}: a {bits}-bit RSA key; RSA keys must have at least 1024 bits (RFC 8301, section 3.2)"
    )]
    WeakKey {
        /// The domain.
        domain: String,
        /// The selector.
        selector: String,
        /// The key's size.
        bits: u32,
    },
    /// PostgreSQL failed (connecting, a query, a transaction). The message
    /// never holds the password (it is never part of `url`).
    #[error("state store {url}: {operation}: {message}")]
    Postgres {
        /// What was being done.
        operation: &'static str,
        /// The state URL (never with a password).
        url: String,
        /// PostgreSQL's (or the client's) message.
        message: String,
    },
    /// Another replica holds the lease on the domain's work.
    #[error("{domain} is being worked by replica {holder} (lease until {until}); skipped")]
    Leased {
        /// The domain.
        domain: String,
        /// The replica holding the lease.
        holder: String,
        /// When its lease expires unless renewed.
        until: DateTime<Utc>,
    },
    /// This replica's lease on the domain expired (or another took it over)
    /// before the change could be saved: nothing was saved.
    #[error(
        "{domain}: this replica ({replica}) no longer holds the domain's lease; the change was not saved (another replica takes the work over)"
    )]
    LeaseLost {
        /// The domain.
        domain: String,
        /// This replica.
        replica: String,
    },
    /// A row does not hold what it should.
    #[error("state store {path}: bad value in {table}: {what}")]
    Corrupt {
        /// The database.
        path: PathBuf,
        /// Which table.
        table: &'static str,
        /// What is wrong.
        what: String,
    },
}

/// An event as stored, with its position in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Position in the append-only log (increasing).
    pub id: i64,
    /// The event.
    pub event: Event,
    /// The replica that recorded it (`hostname:pid` or the configured
    /// `[state] replica_id`); only a shared (PostgreSQL) store records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// The epoch of the domain lease it was recorded under (a shared store,
    /// for state changes; increases each time a replica takes the domain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
    /// The database's wall-clock time when it was written (a shared store;
    /// `event.at` is the rotation clock's time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<DateTime<Utc>>,
}

/// A request to the process driving the store (the daemon), left by another
/// process that could not take the lock (`maildns rotate --now`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    /// Position in the queue (increasing).
    pub id: i64,
    /// The domain it is about.
    pub domain: Fqdn,
    /// What is asked: [`Request::ROTATE_NOW`].
    pub what: String,
    /// When it was asked.
    pub at: DateTime<Utc>,
}

impl Request {
    /// Start a rotation now, even if none is due (`maildns rotate --now`).
    pub const ROTATE_NOW: &'static str = "rotate_now";
}

/// One entry of the publish ledger: the SPF, DMARC or ADSP value `maildns
/// publish` holds at a name (see `crate::publish::ledger`). Keyed by
/// (domain, kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The mail domain.
    pub domain: Fqdn,
    /// `spf`, `dmarc` or `adsp`.
    pub kind: String,
    /// The owner name the value is at.
    pub name: Fqdn,
    /// The value (joined character-strings).
    pub value: String,
}

/// One change a `publish` run made to the ledger, saved as such (never the
/// whole ledger): see [`Store::update_ledger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerChange {
    /// Insert the entry, or replace the one with its (domain, kind).
    Put(LedgerEntry),
    /// Delete the (domain, kind) entry the run read (and whose value it
    /// retracted), but only while it still holds that name and value: an
    /// entry another run rewrote since (a value published meanwhile) stays.
    Remove(LedgerEntry),
}

impl LedgerChange {
    /// The mail domain the change is about.
    pub fn domain(&self) -> &Fqdn {
        match self {
            LedgerChange::Put(e) | LedgerChange::Remove(e) => &e.domain,
        }
    }
}

/// Puts taken requests the taker did not do back in the queue (with their
/// first time), so a request is never lost to a process that took it but
/// could not (or was not asked to) act on it: a domain another replica
/// leased, a domain outside a `--domain` selection, a pass stopped early.
///
/// # Errors
/// The store fails (the requests not yet put back are then lost; the
/// caller logs it).
pub fn requeue<'a>(
    store: &dyn Store,
    requests: impl IntoIterator<Item = &'a Request>,
) -> Result<(), StoreError> {
    let requests: Vec<Request> = requests.into_iter().cloned().collect();
    store.return_requests(&requests)
}

/// A provider diagnosis: what `maildns diagnose` found out about an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The configured account (provider instance) it is about.
    pub account: String,
    /// The zone probed.
    pub zone: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The full result, as JSON (never secrets).
    pub result: serde_json::Value,
    /// The largest RSA key size the host holds, if the probes found a limit.
    pub recommended_max_bits: Option<u32>,
}

/// Where rotation state lives: the embedded [`SqliteStore`] (one process at a
/// time) or the shared [`PgStore`] (any number of daemon replicas).
///
/// Contract: [`Store::save`] is atomic (the state and its events are stored
/// together or not at all) and only allowed while [`Store::lock_exclusive`]
/// holds and, on a shared store, while this process holds the domain's
/// [`Store::lease`] (checked in the save's own transaction); reads and
/// appending events or diagnoses need neither.
pub trait Store: Send + Sync {
    /// Makes this store the only one allowed to change key states, until it is
    /// dropped. Idempotent. Fails with [`StoreError::Locked`] when another holds it.
    /// A shared store admits every replica here; domains are then worked one
    /// replica at a time through [`Store::lease`].
    fn lock_exclusive(&self) -> Result<(), StoreError>;

    /// Takes the lease on `domain`'s work for this process, before a run. The
    /// embedded store needs none (its lock excludes every other process).
    ///
    /// # Errors
    /// [`StoreError::Leased`] while another replica holds an unexpired lease.
    fn lease(&self, _domain: &Fqdn) -> Result<(), StoreError> {
        Ok(())
    }

    /// Extends this process's lease on `domain` (before each action).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when it expired or was taken over.
    fn renew(&self, _domain: &Fqdn) -> Result<(), StoreError> {
        Ok(())
    }

    /// Gives the lease on `domain` back (after a run), so another replica can
    /// take the domain at once instead of after the expiry.
    fn release(&self, _domain: &Fqdn) -> Result<(), StoreError> {
        Ok(())
    }

    /// Which replica this process is in the event log (`None`: the embedded
    /// store, one process).
    fn replica(&self) -> Option<String> {
        None
    }

    /// Whether this store keeps the publish ledger (a shared store does, so
    /// every machine sees what `publish` published); the embedded store
    /// leaves it in `<state_dir>/published.json`.
    fn keeps_ledger(&self) -> bool {
        false
    }

    /// The publish ledger's entries, in (domain, kind) order, when
    /// [`Store::keeps_ledger`] (empty otherwise, or when none was saved).
    fn load_ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(Vec::new())
    }

    /// Saves the publish ledger entries one run changed (only when
    /// [`Store::keeps_ledger`]): each [`LedgerChange`] upserts or deletes
    /// exactly its (domain, kind) entry, all in one transaction, and every
    /// other entry stays as it is, so runs on other machines that change
    /// other entries at the same time lose nothing; for one entry, the later
    /// write wins (a removal only of the value it read). A change to a domain whose [`Store::lease`] this process
    /// holds counts only under that lease (checked in the same transaction).
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when such a lease was lost (nothing is
    /// saved); the store's own failures.
    fn update_ledger(&self, _changes: &[LedgerChange]) -> Result<(), StoreError> {
        Ok(())
    }

    /// The state of `domain`; an empty state (no keys) if it was never saved.
    fn load(&self, domain: &Fqdn) -> Result<DomainState, StoreError>;

    /// Replaces the domain's state and appends `events`, in one transaction.
    fn save(&self, state: &DomainState, events: &[Event]) -> Result<(), StoreError>;

    /// Every domain with saved state, sorted.
    fn domains(&self) -> Result<Vec<Fqdn>, StoreError>;

    /// Every saved domain's state (what the daemon reads at the start of each
    /// pass). The default loads them one by one; a shared store reads them in
    /// one query.
    fn load_all(&self) -> Result<Vec<DomainState>, StoreError> {
        self.domains()?.iter().map(|d| self.load(d)).collect()
    }

    /// Appends events that come with no state change (e.g. one-shot publishes).
    fn append_events(&self, events: &[Event]) -> Result<(), StoreError>;

    /// Events with id greater than `after_id` (0 = from the start), oldest
    /// first, for one domain or all, at most `limit`.
    fn events(
        &self,
        domain: Option<&Fqdn>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Records a diagnosis; returns its id.
    fn save_diagnosis(&self, diagnosis: &Diagnosis) -> Result<i64, StoreError>;

    /// The most recent diagnosis of `account`.
    fn latest_diagnosis(&self, account: &str) -> Result<Option<Diagnosis>, StoreError>;

    /// Every diagnosis, oldest first (`maildns migrate-state`).
    fn diagnoses(&self) -> Result<Vec<Diagnosis>, StoreError>;

    /// Appends events copied from another store (`maildns migrate-state`),
    /// keeping their time, replica, lease epoch and recorded time; the new
    /// ids keep their order.
    fn import_events(&self, events: &[StoredEvent]) -> Result<(), StoreError>;

    /// Queues a request for the process holding the lock; needs no lock.
    /// Returns its id.
    fn add_request(&self, domain: &Fqdn, what: &str, at: DateTime<Utc>) -> Result<i64, StoreError>;

    /// The queued requests, oldest first (read-only): those waiting to be
    /// taken (in the shared store also those whose take expired; not those
    /// a replica holds now).
    fn requests(&self) -> Result<Vec<Request>, StoreError>;

    /// Takes and returns the queued requests, oldest first; only while
    /// [`Store::lock_exclusive`] holds. Both stores take them for this
    /// process for a lease (the shared store's `lease`, the embedded
    /// store's [`REQUEST_LEASE`]), also the ones whose take expired (the
    /// embedded store: also every take left by another process, which can
    /// only have died since it no longer holds the lock); the taker then
    /// removes each done with [`Store::done_requests`] or gives it back with
    /// [`Store::return_requests`].
    fn take_requests(&self) -> Result<Vec<Request>, StoreError>;

    /// Whether this process still holds its take of `request` (taken by
    /// [`Store::take_requests`]), extending the take; `false` when another
    /// process took it over since (its take had expired), which then does
    /// it, or when it is gone.
    ///
    /// # Errors
    /// The store fails.
    fn keep_request(&self, request: &Request) -> Result<bool, StoreError>;

    /// Removes taken requests that were done (or cannot be done: unknown,
    /// blocked).
    ///
    /// # Errors
    /// The store fails.
    fn done_requests(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Gives taken requests this process will not do back to the queue,
    /// with their first time and id.
    ///
    /// # Errors
    /// The store fails.
    fn return_requests(&self, requests: &[Request]) -> Result<(), StoreError>;
}

/// Loads `domain`'s state, lets `change` edit it and return the events to
/// record, and saves the result when there are any, all under the domain's
/// lease (on the embedded store, under its lock alone): for one-off changes
/// outside a rotation run (`rotate --unblock`, `import`). Returns whether it
/// saved.
///
/// # Errors
/// The store's: [`StoreError::Leased`] while a replica works the domain.
pub fn change_leased(
    store: &dyn Store,
    domain: &Fqdn,
    change: impl FnOnce(&mut DomainState) -> Vec<Event>,
) -> Result<bool, StoreError> {
    store.lease(domain)?;
    let result = (|| {
        let mut state = store.load(domain)?;
        let events = change(&mut state);
        if events.is_empty() {
            return Ok(false);
        }
        store.save(&state, &events)?;
        Ok(true)
    })();
    if let Err(e) = store.release(domain) {
        tracing::warn!(domain = %domain, "cannot release the lease (it expires by itself): {e}");
    }
    result
}

/// The embedded store: one SQLite file, `<state_dir>/maildns.sqlite3`, in WAL
/// mode, plus the lock file `<state_dir>/maildns.lock`.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    db_path: PathBuf,
    lock_path: Option<PathBuf>,
    lock: Mutex<Option<Flock<File>>>,
    in_memory: bool,
    clock: Arc<dyn Clock>,
    /// This store's name in `requests.taken_by` (see [`taker_name`]).
    taker: String,
    /// How long a take of a request lasts.
    request_lease: chrono::TimeDelta,
}

/// A name for a store's takes of requests that no later store has, even
/// under the same pid (a daemon restarted in a container is often pid 1
/// again): `pid N, opened <time> #k`.
fn taker_name() -> String {
    static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "maildns pid {}, opened {} #{}",
        std::process::id(),
        ts(Utc::now()),
        OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// [`REQUEST_LEASE`] as a time delta.
fn default_request_lease() -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(REQUEST_LEASE).unwrap_or(chrono::TimeDelta::MAX)
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db_path", &self.db_path)
            .field("locked", &self.is_locked())
            .finish()
    }
}

impl SqliteStore {
    /// Opens the store in `state_dir` for reading, without the lock, only if it
    /// exists: readers (`plan`, `status`, `verify`) never create one.
    pub fn open_existing(state_dir: &Path) -> Result<Option<SqliteStore>, StoreError> {
        if state_dir.join(DB_FILE).exists() {
            SqliteStore::open(state_dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Opens (creating if needed) the store in `state_dir` WITHOUT the lock:
    /// for readers such as `status`. [`Store::save`] is refused until
    /// [`Store::lock_exclusive`] succeeds.
    pub fn open(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|source| StoreError::Io {
                operation: "create the state directory",
                path: state_dir.to_path_buf(),
                source,
            })?;
        let db_path = state_dir.join(DB_FILE);
        let conn = Connection::open(&db_path).map_err(|source| StoreError::Sqlite {
            operation: "open",
            path: db_path.clone(),
            source,
        })?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            db_path,
            lock_path: Some(state_dir.join(LOCK_FILE)),
            lock: Mutex::new(None),
            in_memory: false,
            clock: Arc::new(SystemClock),
            taker: taker_name(),
            request_lease: default_request_lease(),
        };
        store.init()?;
        Ok(store)
    }

    /// Opens the store in `state_dir` and takes its lock for the life of the
    /// returned store: what the daemon and `rotate` use.
    pub fn open_locked(state_dir: &Path) -> Result<SqliteStore, StoreError> {
        let store = SqliteStore::open(state_dir)?;
        store.lock_exclusive()?;
        Ok(store)
    }

    /// A private in-memory store (tests, dry runs); it counts as locked.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        let db_path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            operation: "open",
            path: db_path.clone(),
            source,
        })?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            db_path,
            lock_path: None,
            lock: Mutex::new(None),
            in_memory: true,
            clock: Arc::new(SystemClock),
            taker: taker_name(),
            request_lease: default_request_lease(),
        };
        store.init()?;
        Ok(store)
    }

    /// The same store, reading "now" (the `saved_at` stamp of each save) from
    /// `clock` instead of the system clock: the runner's injected clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteStore {
        self.clock = clock;
        self
    }

    /// The same store, its takes of requests lasting `lease` instead of
    /// [`REQUEST_LEASE`] (measured on the system clock, like the shared
    /// store's on the database's).
    #[must_use]
    pub fn with_request_lease(mut self, lease: std::time::Duration) -> SqliteStore {
        self.request_lease = chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::MAX);
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db_path
    }

    /// True while this store holds the lock.
    pub fn is_locked(&self) -> bool {
        self.in_memory || self.lock_guard().is_some()
    }

    fn lock_guard(&self) -> MutexGuard<'_, Option<Flock<File>>> {
        // A poisoned mutex only means a panic elsewhere; the file lock is intact.
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sql(&self, operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            operation,
            path: self.db_path.clone(),
            source,
        }
    }

    fn corrupt(&self, table: &'static str, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.db_path.clone(),
            table,
            what,
        }
    }
}

impl Store for SqliteStore {
    fn lock_exclusive(&self) -> Result<(), StoreError> {
        let Some(path) = &self.lock_path else {
            return Ok(());
        };
        let mut held = self.lock_guard();
        if held.is_some() {
            return Ok(());
        }
        let io = |operation: &'static str| {
            move |source| StoreError::Io {
                operation,
                path: path.clone(),
                source,
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io("open the lock file"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let pid = std::process::id();
                locked.set_len(0).map_err(io("truncate the lock file"))?;
                locked.rewind().map_err(io("rewind the lock file"))?;
                writeln!(&mut *locked, "{pid}").map_err(io("write the lock file"))?;
                *held = Some(locked);
                Ok(())
            }
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut text = String::new();
                let holder = match file.read_to_string(&mut text) {
                    Ok(_) => match text.trim().parse::<u32>() {
                        Ok(pid) => format!("pid {pid}"),
                        Err(_) => "unknown pid".into(),
                    },
                    Err(_) => "unknown pid".into(),
                };
                Err(StoreError::Locked {
                    holder,
                    path: path.clone(),
                })
            }
            Err((_, errno)) => Err(StoreError::Io {
                operation: "lock",
                path: path.clone(),
                source: std::io::Error::from(errno),
            }),
        }
    }

    fn load(&self, domain: &Fqdn) -> Result<DomainState, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT algorithm, selector, status, bits, created_at, key_path, published_at,
                        propagated_at, safe_after, active_at, retired_at, withdrawn_at,
                        destroyed_at, not_before, failure, attempts, withdrawal_safe_after,
                        held
                 FROM keys WHERE domain = ?1 ORDER BY seq",
            )
            .map_err(self.sql("prepare load"))?;
        let mut rows = stmt
            .query(params![domain.as_str()])
            .map_err(self.sql("load keys"))?;
        let mut state = DomainState::new(domain.clone());
        while let Some(row) = rows.next().map_err(self.sql("load keys"))? {
            state.keys.push(self.row_to_key(row)?);
        }
        Ok(state)
    }

    fn save(&self, state: &DomainState, events: &[Event]) -> Result<(), StoreError> {
        if !self.is_locked() {
            return Err(StoreError::NotLocked {
                path: self.db_path.clone(),
            });
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql("begin save"))?;
        let domain = state.domain.as_str();
        // The key floor (RFC 8301 §3.2): no new RSA key under 1024 bits enters
        // the store; one recorded before the floor existed may stay until retired.
        for k in &state.keys {
            if k.algorithm == Algorithm::Rsa && k.bits < crate::keys::RSA_MIN_BITS {
                let known = tx
                    .query_row(
                        "SELECT 1 FROM keys WHERE domain = ?1 AND selector = ?2 AND bits = ?3",
                        params![domain, k.selector.as_str(), k.bits],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(self.sql("check key size"))?
                    .is_some();
                if !known {
                    return Err(StoreError::WeakKey {
                        domain: domain.to_string(),
                        selector: k.selector.to_string(),
                        bits: k.bits,
                    });
                }
            }
        }
        let blocked = state.blocked();
        let blocked = if blocked.is_empty() {
            None
        } else {
            serde_json::to_string(&blocked).ok()
        };
        tx.execute(
            "INSERT INTO domains (domain, saved_at, blocked) VALUES (?1, ?2, ?3)
             ON CONFLICT(domain) DO UPDATE SET saved_at = excluded.saved_at, blocked = excluded.blocked",
            params![domain, ts(self.clock.now()), blocked],
        )
        .map_err(self.sql("save domain"))?;
        tx.execute("DELETE FROM keys WHERE domain = ?1", params![domain])
            .map_err(self.sql("replace keys"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO keys (domain, algorithm, selector, seq, status, bits, created_at,
                        key_path, published_at, propagated_at, safe_after, active_at, retired_at,
                        withdrawn_at, destroyed_at, not_before, attempts, failure,
                        withdrawal_safe_after, held)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                )
                .map_err(self.sql("prepare save keys"))?;
            for (seq, k) in state.keys.iter().enumerate() {
                stmt.execute(params![
                    domain,
                    k.algorithm.as_str(),
                    k.selector.as_str(),
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    k.status.as_str(),
                    k.bits,
                    ts(k.created_at),
                    k.key_path,
                    k.published_at.map(ts),
                    k.propagated_at.map(ts),
                    k.safe_after.map(ts),
                    k.active_at.map(ts),
                    k.retired_at.map(ts),
                    k.withdrawn_at.map(ts),
                    k.destroyed_at.map(ts),
                    k.not_before.map(ts),
                    k.attempts,
                    k.failure,
                    k.withdrawal_safe_after.map(ts),
                    k.held,
                ])
                .map_err(self.sql("save keys"))?;
            }
        }
        insert_events(&tx, events).map_err(self.sql("append events"))?;
        tx.commit().map_err(self.sql("commit save"))
    }

    fn domains(&self) -> Result<Vec<Fqdn>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT domain FROM domains ORDER BY domain")
            .map_err(self.sql("prepare domains"))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.sql("list domains"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql("list domains"))?;
        names
            .into_iter()
            .map(|n| Fqdn::parse(&n).map_err(|e| self.corrupt("domains", e.to_string())))
            .collect()
    }

    fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql("begin append"))?;
        insert_events(&tx, events).map_err(self.sql("append events"))?;
        tx.commit().map_err(self.sql("commit append"))
    }

    fn events(
        &self,
        domain: Option<&Fqdn>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, at, domain, selector, what, outcome, detail, replica, lease, recorded_at FROM events
                 WHERE id > ?1 AND (?2 IS NULL OR domain = ?2) ORDER BY id LIMIT ?3",
            )
            .map_err(self.sql("prepare events"))?;
        let mut rows = stmt
            .query(params![after_id, domain.map(Fqdn::as_str), limit])
            .map_err(self.sql("read events"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(self.sql("read events"))? {
            out.push(self.row_to_event(row)?);
        }
        Ok(out)
    }

    fn save_diagnosis(&self, d: &Diagnosis) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO diagnoses (account, zone, at, result, recommended_max_bits)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                d.account,
                d.zone,
                ts(d.at),
                d.result.to_string(),
                d.recommended_max_bits
            ],
        )
        .map_err(self.sql("save diagnosis"))?;
        Ok(conn.last_insert_rowid())
    }

    fn latest_diagnosis(&self, account: &str) -> Result<Option<Diagnosis>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT zone, at, result, recommended_max_bits FROM diagnoses
                 WHERE account = ?1 ORDER BY at DESC, id DESC LIMIT 1",
                params![account],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<u32>>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(self.sql("read diagnosis"))?;
        let Some((zone, at, result, bits)) = row else {
            return Ok(None);
        };
        Ok(Some(Diagnosis {
            account: account.to_string(),
            zone,
            at: DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.corrupt("diagnoses", format!("timestamp '{at}': {e}")))?,
            result: serde_json::from_str(&result)
                .map_err(|e| self.corrupt("diagnoses", format!("result JSON: {e}")))?,
            recommended_max_bits: bits,
        }))
    }

    fn diagnoses(&self) -> Result<Vec<Diagnosis>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT account, zone, at, result, recommended_max_bits FROM diagnoses ORDER BY id",
            )
            .map_err(self.sql("prepare diagnoses"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<u32>>(4)?,
                ))
            })
            .map_err(self.sql("read diagnoses"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql("read diagnoses"))?;
        rows.into_iter()
            .map(|(account, zone, at, result, bits)| {
                Ok(Diagnosis {
                    account,
                    zone,
                    at: DateTime::parse_from_rfc3339(&at)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| self.corrupt("diagnoses", format!("timestamp '{at}': {e}")))?,
                    result: serde_json::from_str(&result)
                        .map_err(|e| self.corrupt("diagnoses", format!("result JSON: {e}")))?,
                    recommended_max_bits: bits,
                })
            })
            .collect()
    }

    fn import_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql("begin import"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO events (at, domain, selector, what, outcome, detail, replica, lease, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(self.sql("prepare import events"))?;
            for s in events {
                let e = &s.event;
                stmt.execute(params![
                    ts(e.at),
                    e.domain.as_str(),
                    e.selector.as_ref().map(super::Selector::as_str),
                    e.what,
                    e.outcome,
                    e.detail,
                    s.replica,
                    s.lease,
                    s.recorded_at.map(ts),
                ])
                .map_err(self.sql("import events"))?;
            }
        }
        tx.commit().map_err(self.sql("commit import"))
    }

    fn add_request(&self, domain: &Fqdn, what: &str, at: DateTime<Utc>) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO requests (domain, what, at) VALUES (?1, ?2, ?3)",
            params![domain.as_str(), what, ts(at)],
        )
        .map_err(self.sql("add request"))?;
        Ok(conn.last_insert_rowid())
    }

    fn requests(&self) -> Result<Vec<Request>, StoreError> {
        let conn = self.conn();
        self.read_requests(&conn)
    }

    fn take_requests(&self) -> Result<Vec<Request>, StoreError> {
        self.need_lock()?;
        let now = Utc::now();
        let until = ts(now.checked_add_signed(self.request_lease).unwrap_or(now));
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql("begin take requests"))?;
        // Waiting, expired, or left by another process: that one no longer
        // holds the lock (this one does), so it died before doing them.
        let rows = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, domain, what, at, taken_by, taken_until FROM requests
                     WHERE taken_by IS NULL OR taken_by <> ?1 OR taken_until <= ?2 ORDER BY id",
                )
                .map_err(self.sql("prepare take requests"))?;
            stmt.query_map(params![self.taker, ts(now)], |r| {
                Ok((
                    (
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ),
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(self.sql("take requests"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql("take requests"))?
        };
        let mut taken = Vec::with_capacity(rows.len());
        let mut events = Vec::new();
        for (row, was, was_until) in rows {
            let request = self.to_request(row)?;
            tx.execute(
                "UPDATE requests SET taken_by = ?2, taken_until = ?3 WHERE id = ?1",
                params![request.id, self.taker, until],
            )
            .map_err(self.sql("take requests"))?;
            if let Some(was) = was.filter(|w| w != &self.taker) {
                events.push(Event {
                    at: self.clock.now(),
                    domain: request.domain.clone(),
                    selector: None,
                    what: "request_taken_over".into(),
                    outcome: "warning".into(),
                    detail: format!(
                        "request {} ({} asked at {}) taken over from {was} (take until {}), which stopped before doing it",
                        request.id,
                        request.what,
                        request.at,
                        was_until.as_deref().unwrap_or("?")
                    ),
                });
            }
            taken.push(request);
        }
        insert_events(&tx, &events).map_err(self.sql("append events"))?;
        tx.commit().map_err(self.sql("commit take requests"))?;
        for e in &events {
            tracing::warn!(domain = %e.domain, "{}", e.detail);
        }
        Ok(taken)
    }

    fn keep_request(&self, request: &Request) -> Result<bool, StoreError> {
        self.need_lock()?;
        let now = Utc::now();
        let until = ts(now.checked_add_signed(self.request_lease).unwrap_or(now));
        let n = self
            .conn()
            .execute(
                "UPDATE requests SET taken_until = ?3 WHERE id = ?1 AND taken_by = ?2",
                params![request.id, self.taker, until],
            )
            .map_err(self.sql("keep a request"))?;
        Ok(n == 1)
    }

    fn done_requests(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.need_lock()?;
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(self.sql("begin remove done requests"))?;
        for id in ids {
            tx.execute("DELETE FROM requests WHERE id = ?1", params![id])
                .map_err(self.sql("remove done requests"))?;
        }
        tx.commit().map_err(self.sql("commit remove done requests"))
    }

    fn return_requests(&self, requests: &[Request]) -> Result<(), StoreError> {
        if requests.is_empty() {
            return Ok(());
        }
        self.need_lock()?;
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(self.sql("begin queue requests again"))?;
        for r in requests {
            tx.execute(
                "UPDATE requests SET taken_by = NULL, taken_until = NULL
                 WHERE id = ?1 AND taken_by = ?2",
                params![r.id, self.taker],
            )
            .map_err(self.sql("queue requests again"))?;
        }
        tx.commit().map_err(self.sql("commit queue requests again"))
    }
}

impl SqliteStore {
    fn need_lock(&self) -> Result<(), StoreError> {
        if self.is_locked() {
            Ok(())
        } else {
            Err(StoreError::NotLocked {
                path: self.db_path.clone(),
            })
        }
    }

    /// The requests waiting to be taken: never taken, given back, or whose
    /// take expired; for the lock holder also those another process took
    /// (it died: `migrate-state` copies them, `status` lists them).
    fn read_requests(&self, conn: &Connection) -> Result<Vec<Request>, StoreError> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, domain, what, at FROM requests
                 WHERE taken_by IS NULL OR taken_until <= ?1 OR (?2 AND taken_by <> ?3)
                 ORDER BY id",
            )
            .map_err(self.sql("prepare requests"))?;
        let rows = stmt
            .query_map(params![ts(Utc::now()), self.is_locked(), self.taker], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.sql("read requests"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql("read requests"))?;
        rows.into_iter().map(|row| self.to_request(row)).collect()
    }

    /// A `requests` row (id, domain, what, at) as a [`Request`].
    fn to_request(
        &self,
        (id, domain, what, at): (i64, String, String, String),
    ) -> Result<Request, StoreError> {
        Ok(Request {
            id,
            domain: Fqdn::parse(&domain).map_err(|e| self.corrupt("requests", e.to_string()))?,
            what,
            at: DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.corrupt("requests", format!("timestamp '{at}': {e}")))?,
        })
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
