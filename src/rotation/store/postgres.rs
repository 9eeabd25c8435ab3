//! The shared state store: [`PgStore`], rotation state on PostgreSQL for any
//! number of `maildns daemon` replicas.
//!
//! # Why this crate
//!
//! `tokio-postgres` (the Rust PostgreSQL driver most projects build on, kept by
//! the rust-postgres project) with `deadpool-postgres` as the pool: a small,
//! widely used pair with no macros and no compile-time database, and the pool
//! reconnects after PostgreSQL restarts, which a daemon needs. sqlx would bring
//! its macro and migration machinery for what is here a dozen fixed
//! statements.
//!
//! The [`Store`] trait is synchronous (SQLite is). The pool runs on a private
//! one-thread tokio runtime owned by the store; each trait call sends its
//! future there and blocks the calling thread for the answer, exactly as a
//! SQLite call blocks it on disk I/O. (Blocking on the caller's own runtime
//! would panic; the private runtime is shut down in the background on drop.)
//!
//! # Schema and migrations
//!
//! The migrations are the SQL files in `src/rotation/store/postgres/`, applied
//! in order by [`PgStore::connect`] in one transaction under an advisory lock
//! (replicas starting together migrate once); `maildns_schema` holds the
//! version. A database written by a newer maildns is refused.
//!
//! # Replicas and leases
//!
//! Each domain is worked by one replica at a time through a row lease
//! (`leases`): [`Store::lease`] takes the row when it is free, released, or
//! expired (PostgreSQL's clock decides, so replicas' clocks need not agree),
//! raising its epoch; [`Store::save`] checks in its own transaction that this
//! replica still holds that epoch and extends the expiry. A replica killed in
//! the middle of a step leaves its lease to expire; the next replica takes it
//! over (logging a `lease_taken_over` event naming the old holder) and the
//! runner resumes from the saved step, every action being idempotent. There is
//! no leader.
//!
//! A `rotate --now` request is taken the same way: [`Store::take_requests`]
//! marks it with the replica and an expiry (`requests.taken_by`,
//! `taken_until`, schema 4) instead of deleting it; the replica removes it
//! once done ([`Store::done_requests`]) or gives it back
//! ([`Store::return_requests`]), and renews its take right before running
//! the domain ([`Store::keep_request`]). A take left by a replica killed
//! before doing it expires, and the next replica takes the request over
//! (event `request_taken_over`).
//!
//! TLS: `sslmode`/`sslrootcert` in the URL, libpq's meaning (see
//! [`super::tls`]).
//!
//! The password never appears in the URL (refused by [`PgStore::connect`]),
//! in a message or in a log line: it is passed to the driver's configuration
//! only.

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use maildns_providers::{Fqdn, Secret};
use tokio_postgres::Row;

use super::super::machine::{Algorithm, DomainState, Event, KeyRecord, KeyStatus, Selector};
use super::{Diagnosis, LedgerChange, LedgerEntry, Request, Store, StoreError, StoredEvent};
use crate::propagation::{Clock, SystemClock};

type Tx<'t> = deadpool_postgres::Transaction<'t>;

/// The future a [`PgStore::call_tx`] body returns.
type TxFuture<'t, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("postgres/0001_init.sql")),
    (2, include_str!("postgres/0002_ledger.sql")),
    (3, include_str!("postgres/0003_ledger_entries.sql")),
    (4, include_str!("postgres/0004_request_takes.sql")),
];

/// The schema version this code writes.
pub const PG_SCHEMA_VERSION: i32 = 4;

/// Key of the advisory lock held while migrating (any constant; "maildns" in ASCII).
const MIGRATION_LOCK: i64 = 0x006d_6169_6c64_6e73;

/// How a [`PgStore`] connects and who it is.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The state URL, `postgres://user@host:port/database` (no password).
    pub url: String,
    /// The password, found like any credential; `None` when the server needs
    /// none (e.g. peer authentication on a unix socket).
    pub password: Option<Secret>,
    /// This replica's name in the event log and the lease table
    /// (`hostname:pid` unless configured); must be unique among replicas.
    pub replica: String,
    /// How long a lease lasts without renewal (each save and action renews it).
    pub lease: Duration,
    /// Most connections this process opens.
    pub max_connections: usize,
}

/// The shared store on PostgreSQL (see the module docs).
pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    url: String,
    replica: String,
    lease_ms: i64,
    writer: std::sync::atomic::AtomicBool,
    /// The lease epoch this process holds per domain.
    held: Mutex<HashMap<String, i64>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn pg_err(operation: &'static str, url: &str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    let url = url.to_string();
    move |e| StoreError::Postgres {
        operation,
        url: url.clone(),
        message: pg_message(&e),
    }
}

/// The server's message (with its detail) or the client's, never a password
/// (neither the driver's errors nor the server's carry one).
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(": ");
                s.push_str(&c.to_string());
                src = c.source();
            }
            s
        }
    }
}

impl PgStore {
    /// Connects to the state URL, applies the migrations, and returns the
    /// store (not yet admitted to write: see [`Store::lock_exclusive`]).
    ///
    /// # Errors
    /// [`StoreError::Postgres`] for a bad URL, a URL with a password, a
    /// failed connection or migration; [`StoreError::SchemaTooNew`] for a
    /// database written by a newer maildns.
    pub fn connect(options: PgOptions) -> Result<PgStore, StoreError> {
        let url = options.url.clone();
        let bad = |message: String| StoreError::Postgres {
            operation: "read the state URL",
            url: redact(&url),
            message,
        };
        let (driver_url, tls) =
            super::tls::PgTls::split_url(&options.url).map_err(|e| bad(e.to_string()))?;
        let mut config = tokio_postgres::Config::from_str(&driver_url)
            .map_err(|e| bad(format!("not a PostgreSQL URL: {}", pg_message(&e))))?;
        config.ssl_mode(tls.driver_mode());
        let connector = tls.connector().map_err(|e| bad(e.to_string()))?;
        if config.get_password().is_some() {
            return Err(bad(
                "the URL holds a password; remove it and give the password as a credential (MAILDNS_STATE_PASSWORD, $CREDENTIALS_DIRECTORY/state-password, the keyring entry state-password, or [state] password_file)".into(),
            ));
        }
        if let Some(p) = &options.password {
            config.password(p.expose());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name(format!("maildns {}", options.replica));
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("maildns-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres {
                operation: "start the store's runtime",
                url: url.clone(),
                message: e.to_string(),
            })?;
        let store = PgStore {
            rt: Some(rt),
            pool,
            url: url.clone(),
            replica: options.replica,
            lease_ms: i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX),
            writer: std::sync::atomic::AtomicBool::new(false),
            held: Mutex::new(HashMap::new()),
            clock: Arc::new(SystemClock),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The same store, stamping saves and lease events with `clock`'s time
    /// (the runner's injected clock). Lease expiry always follows
    /// PostgreSQL's own clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> PgStore {
        self.clock = clock;
        self
    }

    /// The state URL (no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` with a pooled connection on the store's runtime and waits
    /// for its result.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object, String) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let stopped = || StoreError::Postgres {
            operation: "run a query",
            url: self.url.clone(),
            message: "the store's runtime has stopped".into(),
        };
        let rt = self.rt.as_ref().ok_or_else(stopped)?;
        let (pool, url) = (self.pool.clone(), self.url.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let result = match get(&pool, &url).await {
                Ok(client) => f(client, url).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(result);
        });
        rx.recv().map_err(|_| stopped())?
    }

    /// [`PgStore::call`] in one transaction: committed when `f` returns
    /// `Ok` (rolled back when it fails: nothing is changed then); a failed
    /// BEGIN or COMMIT is reported as `operation`.
    fn call_tx<T, F>(&self, operation: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t Tx<'t>, &'t str) -> TxFuture<'t, T> + Send + 'static,
    {
        self.call(move |mut client, url| async move {
            let tx = client
                .transaction()
                .await
                .map_err(pg_err(operation, &url))?;
            let out = f(&tx, &url).await?;
            tx.commit().await.map_err(pg_err(operation, &url))?;
            Ok(out)
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.call_tx("migrate", move |tx, url| {
            Box::pin(async move {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                    .await
                    .map_err(pg_err("take the migration lock", url))?;
                tx.batch_execute(
                    "CREATE TABLE IF NOT EXISTS maildns_schema (version INTEGER NOT NULL)",
                )
                .await
                .map_err(pg_err("create maildns_schema", url))?;
                let found: Option<i32> = tx
                    .query_opt("SELECT max(version) FROM maildns_schema", &[])
                    .await
                    .map_err(pg_err("read the schema version", url))?
                    .and_then(|r| r.get(0));
                let found = found.unwrap_or(0);
                if found > PG_SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        path: url.into(),
                        found: i64::from(found),
                        supported: i64::from(PG_SCHEMA_VERSION),
                    });
                }
                for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
                    tx.batch_execute(sql)
                        .await
                        .map_err(pg_err("apply a migration", url))?;
                    tx.execute(
                        "INSERT INTO maildns_schema (version) VALUES ($1)",
                        &[version],
                    )
                    .await
                    .map_err(pg_err("record the schema version", url))?;
                }
                Ok(())
            })
        })
    }

    fn held_epoch(&self, domain: &str) -> Option<i64> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(domain)
            .copied()
    }

    fn set_held(&self, domain: &str, epoch: Option<i64>) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match epoch {
            Some(e) => held.insert(domain.to_string(), e),
            None => held.remove(domain),
        };
    }

    fn lost(&self, domain: &str) -> StoreError {
        StoreError::LeaseLost {
            domain: domain.to_string(),
            replica: self.replica.clone(),
        }
    }
}

/// The URL without anything after `:` in its user part (a password), for
/// messages about a URL that was refused.
pub(crate) fn redact(url: &str) -> String {
    let masked = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &user[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    // A `password=` query parameter (libpq and redis-rs read one) too.
    match masked.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => masked,
    }
}

async fn get(pool: &Pool, url: &str) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get().await.map_err(|e| StoreError::Postgres {
        operation: "connect",
        url: url.to_string(),
        message: match &e {
            deadpool_postgres::PoolError::Backend(b) => pg_message(b),
            other => other.to_string(),
        },
    })
}

fn corrupt(url: &str, table: &'static str, what: String) -> StoreError {
    StoreError::Corrupt {
        path: url.into(),
        table,
        what,
    }
}

fn row_to_key(url: &str, r: &Row) -> Result<KeyRecord, StoreError> {
    let c = |what: String| corrupt(url, "keys", what);
    let alg: String = r.get("algorithm");
    let sel: String = r.get("selector");
    let status: String = r.get("status");
    let bits: i32 = r.get("bits");
    let attempts: i64 = r.get("attempts");
    Ok(KeyRecord {
        algorithm: Algorithm::parse(&alg).ok_or_else(|| c(format!("algorithm '{alg}'")))?,
        selector: Selector::parse(&sel).map_err(|e| c(e.to_string()))?,
        status: KeyStatus::parse(&status).ok_or_else(|| c(format!("status '{status}'")))?,
        bits: u32::try_from(bits).map_err(|_| c(format!("bits {bits}")))?,
        created_at: r.get("created_at"),
        key_path: r.get("key_path"),
        published_at: r.get("published_at"),
        propagated_at: r.get("propagated_at"),
        safe_after: r.get("safe_after"),
        active_at: r.get("active_at"),
        retired_at: r.get("retired_at"),
        withdrawn_at: r.get("withdrawn_at"),
        destroyed_at: r.get("destroyed_at"),
        not_before: r.get("not_before"),
        failure: r.get("failure"),
        held: r.get("held"),
        attempts: u32::try_from(attempts).map_err(|_| c(format!("attempts {attempts}")))?,
        withdrawal_safe_after: r.get("withdrawal_safe_after"),
    })
}

fn row_to_event(url: &str, r: &Row) -> Result<StoredEvent, StoreError> {
    let c = |what: String| corrupt(url, "events", what);
    let domain: String = r.get("domain");
    let selector: Option<String> = r.get("selector");
    Ok(StoredEvent {
        id: r.get("id"),
        event: Event {
            at: r.get("at"),
            domain: Fqdn::parse(&domain).map_err(|e| c(e.to_string()))?,
            selector: selector
                .map(|s| Selector::parse(&s))
                .transpose()
                .map_err(|e| c(e.to_string()))?,
            what: r.get("what"),
            outcome: r.get("outcome"),
            detail: r.get("detail"),
        },
        replica: r.get("replica"),
        lease: r.get("lease"),
        recorded_at: Some(r.get("recorded_at")),
    })
}

/// Fencing: whether `replica` still holds `domain`'s lease at `epoch`
/// (not released, not expired by PostgreSQL's clock); when it does, the
/// expiry is extended by `lease_ms` in the same statement.
async fn fence(
    tx: &Tx<'_>,
    url: &str,
    domain: &str,
    replica: &str,
    epoch: i64,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE leases SET expires_at = now() + $4 * interval '1 millisecond'
             WHERE domain = $1 AND holder = $2 AND epoch = $3 AND NOT released
               AND expires_at > now()",
            &[&domain, &replica, &epoch, &(lease_ms as f64)],
        )
        .await
        .map_err(pg_err("check lease", url))?;
    Ok(n == 1)
}

const INSERT_EVENT: &str =
    "INSERT INTO events (at, domain, selector, what, outcome, detail, replica, lease)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

async fn insert_events(
    tx: &deadpool_postgres::Transaction<'_>,
    url: &str,
    events: &[Event],
    replica: &str,
    lease: Option<i64>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(INSERT_EVENT)
        .await
        .map_err(pg_err("prepare append events", url))?;
    for e in events {
        tx.execute(
            &stmt,
            &[
                &e.at,
                &e.domain.as_str(),
                &e.selector.as_ref().map(Selector::as_str),
                &e.what,
                &e.outcome,
                &e.detail,
                &replica,
                &lease,
            ],
        )
        .await
        .map_err(pg_err("append events", url))?;
    }
    Ok(())
}

impl Store for PgStore {
    fn lock_exclusive(&self) -> Result<(), StoreError> {
        self.writer.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn lease(&self, domain: &Fqdn) -> Result<(), StoreError> {
        let replica = self.replica.clone();
        let d = domain.as_str().to_string();
        let ms = self.lease_ms;
        let now = self.clock.now();
        let (epoch, taken_from) = self.call_tx("take the lease", move |tx, url| Box::pin(async move {
            tx.execute(
                "INSERT INTO leases (domain, holder, epoch, expires_at, released)
                 VALUES ($1, $2, 0, now(), true) ON CONFLICT (domain) DO NOTHING",
                &[&d, &replica],
            )
            .await
            .map_err(pg_err("create lease", url))?;
            let row = tx
                .query_one(
                    "SELECT holder, epoch, expires_at, released, expires_at <= now() AS expired
                     FROM leases WHERE domain = $1 FOR UPDATE",
                    &[&d],
                )
                .await
                .map_err(pg_err("read lease", url))?;
            let holder: String = row.get("holder");
            let until: DateTime<Utc> = row.get("expires_at");
            let released: bool = row.get("released");
            let expired: bool = row.get("expired");
            if !released && !expired && holder != replica {
                return Err(StoreError::Leased {
                    domain: d,
                    holder,
                    until,
                });
            }
            let epoch: i64 = tx
                .query_one(
                    "UPDATE leases SET holder = $2, epoch = epoch + 1, released = false,
                        expires_at = now() + $3 * interval '1 millisecond'
                     WHERE domain = $1 RETURNING epoch",
                    &[&d, &replica, &(ms as f64)],
                )
                .await
                .map_err(pg_err("take lease", url))?
                .get(0);
            // A lease left by a replica that stopped in the middle of a step.
            let taken_from = (!released && holder != replica).then_some((holder, until));
            if let Some((from, until)) = &taken_from {
                let event = Event {
                    at: now,
                    domain: Fqdn::parse(&d).map_err(|e| corrupt(url, "leases", e.to_string()))?,
                    selector: None,
                    what: "lease_taken_over".into(),
                    outcome: "warning".into(),
                    detail: format!(
                        "taken over from replica {from}, whose lease expired at {until} without being released (stopped in the middle of a step?); resuming from the saved step"
                    ),
                };
                insert_events(tx, url, &[event], &replica, Some(epoch)).await?;
            }
            Ok((epoch, taken_from))
        }))?;
        if let Some((from, until)) = taken_from {
            tracing::warn!(domain = %domain, "lease taken over from replica {from} (expired at {until}); resuming from the saved step");
        }
        self.set_held(domain.as_str(), Some(epoch));
        Ok(())
    }

    fn renew(&self, domain: &Fqdn) -> Result<(), StoreError> {
        let Some(epoch) = self.held_epoch(domain.as_str()) else {
            return Err(self.lost(domain.as_str()));
        };
        let replica = self.replica.clone();
        let d = domain.as_str().to_string();
        let ms = self.lease_ms;
        let renewed = self.call_tx("renew lease", move |tx, url| {
            Box::pin(async move { fence(tx, url, &d, &replica, epoch, ms).await })
        })?;
        if renewed {
            Ok(())
        } else {
            self.set_held(domain.as_str(), None);
            Err(self.lost(domain.as_str()))
        }
    }

    fn release(&self, domain: &Fqdn) -> Result<(), StoreError> {
        let Some(epoch) = self.held_epoch(domain.as_str()) else {
            return Ok(());
        };
        self.set_held(domain.as_str(), None);
        let replica = self.replica.clone();
        let d = domain.as_str().to_string();
        self.call(move |client, url| async move {
            client
                .execute(
                    "UPDATE leases SET released = true, expires_at = now()
                     WHERE domain = $1 AND holder = $2 AND epoch = $3",
                    &[&d, &replica, &epoch],
                )
                .await
                .map_err(pg_err("release lease", &url))?;
            Ok(())
        })
    }

    fn replica(&self) -> Option<String> {
        Some(self.replica.clone())
    }

    fn keeps_ledger(&self) -> bool {
        true
    }

    fn load_ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        self.call(|client, url| async move {
            let rows = client
                .query(
                    "SELECT domain, kind, name, value FROM ledger_entries ORDER BY domain, kind",
                    &[],
                )
                .await
                .map_err(pg_err("read the publish ledger", &url))?;
            rows.iter()
                .map(|r| {
                    let fqdn = |col: &str| {
                        let v: String = r.get(col);
                        Fqdn::parse(&v).map_err(|e| corrupt(&url, "ledger_entries", e.to_string()))
                    };
                    Ok(LedgerEntry {
                        domain: fqdn("domain")?,
                        kind: r.get("kind"),
                        name: fqdn("name")?,
                        value: r.get("value"),
                    })
                })
                .collect()
        })
    }

    fn update_ledger(&self, changes: &[LedgerChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        // The leases this process holds on the changed domains: each is
        // checked (and extended) in the transaction, as by `save`.
        let mut fences: Vec<(String, i64)> = Vec::new();
        for c in changes {
            let d = c.domain().as_str();
            if let Some(epoch) = self.held_epoch(d)
                && !fences.iter().any(|(f, _)| f == d)
            {
                fences.push((d.to_string(), epoch));
            }
        }
        let changes = changes.to_vec();
        let replica = self.replica.clone();
        let ms = self.lease_ms;
        let lost = self.call_tx("update the publish ledger", move |tx, url| {
            Box::pin(async move {
                for (domain, epoch) in &fences {
                    if !fence(tx, url, domain, &replica, *epoch, ms).await? {
                        return Ok(Some(domain.clone()));
                    }
                }
                let put = tx
                    .prepare_cached(
                        "INSERT INTO ledger_entries (domain, kind, name, value, replica)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (domain, kind) DO UPDATE SET name = excluded.name,
                         value = excluded.value, replica = excluded.replica,
                         saved_at = clock_timestamp()",
                    )
                    .await
                    .map_err(pg_err("prepare the publish ledger update", url))?;
                let remove = tx
                    .prepare_cached(
                        "DELETE FROM ledger_entries
                     WHERE domain = $1 AND kind = $2 AND name = $3 AND value = $4",
                    )
                    .await
                    .map_err(pg_err("prepare the publish ledger update", url))?;
                for c in &changes {
                    let (stmt, e) = match c {
                        LedgerChange::Put(e) => (&put, e),
                        LedgerChange::Remove(e) => (&remove, e),
                    };
                    let (domain, name) = (e.domain.as_str(), e.name.as_str());
                    match c {
                        LedgerChange::Put(_) => {
                            tx.execute(stmt, &[&domain, &e.kind, &name, &e.value, &replica])
                                .await
                        }
                        LedgerChange::Remove(_) => {
                            tx.execute(stmt, &[&domain, &e.kind, &name, &e.value]).await
                        }
                    }
                    .map_err(pg_err("update the publish ledger", url))?;
                }
                Ok(None)
            })
        })?;
        match lost {
            None => Ok(()),
            Some(domain) => {
                self.set_held(&domain, None);
                Err(self.lost(&domain))
            }
        }
    }

    fn load(&self, domain: &Fqdn) -> Result<DomainState, StoreError> {
        let d = domain.clone();
        self.call(move |client, url| async move {
            let rows = client
                .query(
                    "SELECT * FROM keys WHERE domain = $1 ORDER BY seq",
                    &[&d.as_str()],
                )
                .await
                .map_err(pg_err("load keys", &url))?;
            let mut state = DomainState::new(d.clone());
            for r in &rows {
                state.keys.push(row_to_key(&url, r)?);
            }
            Ok(state)
        })
    }

    fn load_all(&self) -> Result<Vec<DomainState>, StoreError> {
        self.call(|client, url| async move {
            let domains = client
                .query("SELECT domain FROM domains ORDER BY domain", &[])
                .await
                .map_err(pg_err("list domains", &url))?;
            let rows = client
                .query("SELECT * FROM keys ORDER BY domain, seq", &[])
                .await
                .map_err(pg_err("load keys", &url))?;
            let mut states: Vec<DomainState> = Vec::with_capacity(domains.len());
            for r in &domains {
                let d: String = r.get(0);
                let d = Fqdn::parse(&d).map_err(|e| corrupt(&url, "domains", e.to_string()))?;
                states.push(DomainState::new(d));
            }
            let mut at = 0;
            for r in &rows {
                let d: String = r.get("domain");
                while states
                    .get(at)
                    .is_some_and(|s| s.domain.as_str() < d.as_str())
                {
                    at += 1;
                }
                match states.get_mut(at) {
                    Some(s) if s.domain.as_str() == d => s.keys.push(row_to_key(&url, r)?),
                    _ => return Err(corrupt(&url, "keys", format!("keys of unknown domain {d}"))),
                }
            }
            Ok(states)
        })
    }

    fn save(&self, state: &DomainState, events: &[Event]) -> Result<(), StoreError> {
        if !self.writer.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::NotLocked {
                path: self.url.clone().into(),
            });
        }
        let domain = state.domain.as_str().to_string();
        let name = domain.clone();
        let Some(epoch) = self.held_epoch(&domain) else {
            return Err(self.lost(&domain));
        };
        let blocked = state.blocked();
        let state = state.clone();
        let events = events.to_vec();
        let replica = self.replica.clone();
        let ms = self.lease_ms;
        let saved_at = self.clock.now();
        let blocked = if blocked.is_empty() {
            None
        } else {
            serde_json::to_string(&blocked).ok()
        };
        let result = self.call_tx("save", move |tx, url| Box::pin(async move {
            // Fencing: the change counts only under this replica's lease.
            if !fence(tx, url, &domain, &replica, epoch, ms).await? {
                return Ok(false);
            }
            // The key floor (RFC 8301 §3.2), as in the SQLite store.
            for k in &state.keys {
                if k.algorithm == Algorithm::Rsa && k.bits < crate::keys::RSA_MIN_BITS {
                    let bits = i32::try_from(k.bits).unwrap_or(i32::MAX);
                    let known = tx
                        .query_opt(
                            "SELECT 1 FROM keys WHERE domain = $1 AND selector = $2 AND bits = $3",
                            &[&domain, &k.selector.as_str(), &bits],
                        )
                        .await
                        .map_err(pg_err("check key size", url))?
                        .is_some();
                    if !known {
                        return Err(StoreError::WeakKey {
                            domain: domain.clone(),
                            selector: k.selector.to_string(),
                            bits: k.bits,
                        });
                    }
                }
            }
            tx.execute(
                "INSERT INTO domains (domain, saved_at, blocked) VALUES ($1, $2, $3)
                 ON CONFLICT (domain) DO UPDATE SET saved_at = excluded.saved_at, blocked = excluded.blocked",
                &[&domain, &saved_at, &blocked],
            )
            .await
            .map_err(pg_err("save domain", url))?;
            tx.execute("DELETE FROM keys WHERE domain = $1", &[&domain])
                .await
                .map_err(pg_err("replace keys", url))?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO keys (domain, algorithm, selector, seq, status, bits, created_at,
                        key_path, published_at, propagated_at, safe_after, active_at, retired_at,
                        withdrawn_at, destroyed_at, not_before, attempts, failure,
                        withdrawal_safe_after, held)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                )
                .await
                .map_err(pg_err("prepare save keys", url))?;
            for (seq, k) in state.keys.iter().enumerate() {
                let seq = i32::try_from(seq).unwrap_or(i32::MAX);
                let bits = i32::try_from(k.bits).unwrap_or(i32::MAX);
                let attempts = i64::from(k.attempts);
                tx.execute(
                    &stmt,
                    &[
                        &domain,
                        &k.algorithm.as_str(),
                        &k.selector.as_str(),
                        &seq,
                        &k.status.as_str(),
                        &bits,
                        &k.created_at,
                        &k.key_path,
                        &k.published_at,
                        &k.propagated_at,
                        &k.safe_after,
                        &k.active_at,
                        &k.retired_at,
                        &k.withdrawn_at,
                        &k.destroyed_at,
                        &k.not_before,
                        &attempts,
                        &k.failure,
                        &k.withdrawal_safe_after,
                        &k.held,
                    ],
                )
                .await
                .map_err(pg_err("save keys", url))?;
            }
            insert_events(tx, url, &events, &replica, Some(epoch)).await?;
            Ok(true)
        }))?;
        if result {
            Ok(())
        } else {
            self.set_held(&name, None);
            Err(self.lost(&name))
        }
    }

    fn domains(&self) -> Result<Vec<Fqdn>, StoreError> {
        self.call(|client, url| async move {
            let rows = client
                .query("SELECT domain FROM domains ORDER BY domain", &[])
                .await
                .map_err(pg_err("list domains", &url))?;
            rows.iter()
                .map(|r| {
                    let d: String = r.get(0);
                    Fqdn::parse(&d).map_err(|e| corrupt(&url, "domains", e.to_string()))
                })
                .collect()
        })
    }

    fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let events = events.to_vec();
        let replica = self.replica.clone();
        self.call_tx("append events", move |tx, url| {
            Box::pin(async move {
                insert_events(tx, url, &events, &replica, None).await?;
                Ok(())
            })
        })
    }

    fn events(
        &self,
        domain: Option<&Fqdn>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let domain = domain.map(|d| d.as_str().to_string());
        let limit = i64::from(limit);
        self.call(move |client, url| async move {
            let rows = client
                .query(
                    "SELECT * FROM events WHERE id > $1 AND ($2::TEXT IS NULL OR domain = $2)
                     ORDER BY id LIMIT $3",
                    &[&after_id, &domain, &limit],
                )
                .await
                .map_err(pg_err("read events", &url))?;
            rows.iter().map(|r| row_to_event(&url, r)).collect()
        })
    }

    fn save_diagnosis(&self, d: &Diagnosis) -> Result<i64, StoreError> {
        let d = d.clone();
        self.call(move |client, url| async move {
            let bits = d
                .recommended_max_bits
                .map(|b| i32::try_from(b).unwrap_or(i32::MAX));
            let row = client
                .query_one(
                    "INSERT INTO diagnoses (account, zone, at, result, recommended_max_bits)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[&d.account, &d.zone, &d.at, &d.result, &bits],
                )
                .await
                .map_err(pg_err("save diagnosis", &url))?;
            Ok(row.get(0))
        })
    }

    fn latest_diagnosis(&self, account: &str) -> Result<Option<Diagnosis>, StoreError> {
        let account = account.to_string();
        self.call(move |client, url| async move {
            let row = client
                .query_opt(
                    "SELECT * FROM diagnoses WHERE account = $1 ORDER BY at DESC, id DESC LIMIT 1",
                    &[&account],
                )
                .await
                .map_err(pg_err("read diagnosis", &url))?;
            row.map(|r| row_to_diagnosis(&url, &r)).transpose()
        })
    }

    fn diagnoses(&self) -> Result<Vec<Diagnosis>, StoreError> {
        self.call(|client, url| async move {
            let rows = client
                .query("SELECT * FROM diagnoses ORDER BY id", &[])
                .await
                .map_err(pg_err("read diagnoses", &url))?;
            rows.iter().map(|r| row_to_diagnosis(&url, r)).collect()
        })
    }

    fn import_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let events = events.to_vec();
        self.call_tx("import events", move |tx, url| Box::pin(async move {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO events (at, domain, selector, what, outcome, detail, replica, lease, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, clock_timestamp()))",
                )
                .await
                .map_err(pg_err("prepare import events", url))?;
            for s in &events {
                let e = &s.event;
                tx.execute(
                    &stmt,
                    &[
                        &e.at,
                        &e.domain.as_str(),
                        &e.selector.as_ref().map(Selector::as_str),
                        &e.what,
                        &e.outcome,
                        &e.detail,
                        &s.replica,
                        &s.lease,
                        &s.recorded_at,
                    ],
                )
                .await
                .map_err(pg_err("import events", url))?;
            }
            Ok(())
        }))
    }

    fn add_request(&self, domain: &Fqdn, what: &str, at: DateTime<Utc>) -> Result<i64, StoreError> {
        let d = domain.as_str().to_string();
        let what = what.to_string();
        self.call(move |client, url| async move {
            let row = client
                .query_one(
                    "INSERT INTO requests (domain, what, at) VALUES ($1, $2, $3) RETURNING id",
                    &[&d, &what, &at],
                )
                .await
                .map_err(pg_err("add request", &url))?;
            Ok(row.get(0))
        })
    }

    fn requests(&self) -> Result<Vec<Request>, StoreError> {
        self.call(|client, url| async move {
            let rows = client
                .query(
                    "SELECT id, domain, what, at FROM requests
                     WHERE taken_until IS NULL OR taken_until <= now() ORDER BY id",
                    &[],
                )
                .await
                .map_err(pg_err("read requests", &url))?;
            rows.iter().map(|r| row_to_request(&url, r)).collect()
        })
    }

    fn take_requests(&self) -> Result<Vec<Request>, StoreError> {
        if !self.writer.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::NotLocked {
                path: self.url.clone().into(),
            });
        }
        // Each request is taken by one replica at a time, for `lease`: the
        // requests nobody holds, and those whose take expired (the replica
        // that took them stopped before doing them).
        let replica = self.replica.clone();
        let ms = self.lease_ms;
        let now = self.clock.now();
        let (mut out, over) = self.call_tx("take requests", move |tx, url| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "WITH t AS (SELECT id, taken_by AS was, taken_until AS until FROM requests
                                     WHERE taken_until IS NULL OR taken_until <= now()
                                     FOR UPDATE SKIP LOCKED)
                         UPDATE requests r SET taken_by = $1,
                             taken_until = now() + $2 * interval '1 millisecond'
                         FROM t WHERE r.id = t.id
                         RETURNING r.id, r.domain, r.what, r.at, t.was, t.until",
                        &[&replica, &(ms as f64)],
                    )
                    .await
                    .map_err(pg_err("take requests", url))?;
                let mut out = Vec::with_capacity(rows.len());
                let mut events = Vec::new();
                let mut over = Vec::new();
                for r in &rows {
                    let request = row_to_request(url, r)?;
                    let was: Option<String> = r.get("was");
                    let until: Option<DateTime<Utc>> = r.get("until");
                    if let (Some(was), Some(until)) = (was, until) {
                        let detail = format!(
                            "request {} ({} asked at {}) taken over from replica {was}, whose take expired at {until} without the request being done (stopped before doing it?)",
                            request.id, request.what, request.at
                        );
                        events.push(Event {
                            at: now,
                            domain: request.domain.clone(),
                            selector: None,
                            what: "request_taken_over".into(),
                            outcome: "warning".into(),
                            detail: detail.clone(),
                        });
                        over.push((request.domain.clone(), detail));
                    }
                    out.push(request);
                }
                insert_events(tx, url, &events, &replica, None).await?;
                Ok((out, over))
            })
        })?;
        for (domain, detail) in over {
            tracing::warn!(domain = %domain, "{detail}");
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    fn keep_request(&self, request: &Request) -> Result<bool, StoreError> {
        let (id, replica, ms) = (request.id, self.replica.clone(), self.lease_ms);
        self.call(move |client, url| async move {
            let n = client
                .execute(
                    "UPDATE requests SET taken_until = now() + $3 * interval '1 millisecond'
                     WHERE id = $1 AND taken_by = $2",
                    &[&id, &replica, &(ms as f64)],
                )
                .await
                .map_err(pg_err("keep a request", &url))?;
            Ok(n == 1)
        })
    }

    fn done_requests(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.call(move |client, url| async move {
            client
                .execute("DELETE FROM requests WHERE id = ANY($1)", &[&ids])
                .await
                .map_err(pg_err("remove done requests", &url))?;
            Ok(())
        })
    }

    fn return_requests(&self, requests: &[Request]) -> Result<(), StoreError> {
        if requests.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = requests.iter().map(|r| r.id).collect();
        let replica = self.replica.clone();
        self.call(move |client, url| async move {
            client
                .execute(
                    "UPDATE requests SET taken_by = NULL, taken_until = NULL
                     WHERE id = ANY($1) AND taken_by = $2",
                    &[&ids, &replica],
                )
                .await
                .map_err(pg_err("queue requests again", &url))?;
            Ok(())
        })
    }
}

fn row_to_request(url: &str, r: &Row) -> Result<Request, StoreError> {
    let d: String = r.get("domain");
    Ok(Request {
        id: r.get("id"),
        domain: Fqdn::parse(&d).map_err(|e| corrupt(url, "requests", e.to_string()))?,
        what: r.get("what"),
        at: r.get("at"),
    })
}

fn row_to_diagnosis(url: &str, r: &Row) -> Result<Diagnosis, StoreError> {
    let bits: Option<i32> = r.get("recommended_max_bits");
    Ok(Diagnosis {
        account: r.get("account"),
        zone: r.get("zone"),
        at: r.get("at"),
        result: r.get("result"),
        recommended_max_bits: bits
            .map(u32::try_from)
            .transpose()
            .map_err(|_| corrupt(url, "diagnoses", format!("recommended_max_bits {bits:?}")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_refused_url_is_shown_without_its_password() {
        assert_eq!(
            redact("postgres://maildns:s3cret@db:5432/state"),
            "postgres://maildns:***@db:5432/state"
        );
        assert_eq!(
            redact("postgres://maildns@db/state"),
            "postgres://maildns@db/state"
        );
    }
}
