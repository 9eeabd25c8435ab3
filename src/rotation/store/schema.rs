//! The SQLite schema of [`SqliteStore`], its migrations, and the conversion
//! between table rows and the state machine's types.
//!
//! Kept apart from `store.rs` so that file holds the store's behaviour (locking,
//! opening, the [`Store`](super::Store) operations in their transactions) while
//! this one holds what the database file looks like: the tables of each schema
//! version, how an older file is brought up to [`SCHEMA_VERSION`], how
//! timestamps are written, and how `keys` and `events` rows are read back
//! (a row that does not convert is reported as a corrupt store).

use chrono::{DateTime, SecondsFormat, Utc};
use maildns_providers::Fqdn;
use rusqlite::{Row, TransactionBehavior, params};

use super::super::machine::{Algorithm, Event, KeyRecord, KeyStatus, Selector};
use super::{SCHEMA_VERSION, SqliteStore, StoreError, StoredEvent};

pub(super) const SCHEMA: &str = "
CREATE TABLE domains (
    domain   TEXT PRIMARY KEY,
    saved_at TEXT NOT NULL,
    blocked  TEXT
);
CREATE TABLE keys (
    domain        TEXT NOT NULL REFERENCES domains(domain),
    algorithm     TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    selector      TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    status        TEXT NOT NULL,
    bits          INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    key_path      TEXT,
    published_at  TEXT,
    propagated_at TEXT,
    safe_after    TEXT,
    active_at     TEXT,
    retired_at    TEXT,
    withdrawn_at  TEXT,
    destroyed_at  TEXT,
    not_before    TEXT,
    attempts      INTEGER NOT NULL,
    failure       TEXT,
    PRIMARY KEY (domain, algorithm, selector),
    UNIQUE (domain, selector)
);
CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    domain   TEXT NOT NULL,
    selector TEXT,
    what     TEXT NOT NULL CHECK (length(what) > 0),
    outcome  TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX events_domain ON events(domain, id);
CREATE TABLE diagnoses (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    account              TEXT NOT NULL,
    zone                 TEXT NOT NULL,
    at                   TEXT NOT NULL,
    result               TEXT NOT NULL,
    recommended_max_bits INTEGER
);
CREATE INDEX diagnoses_account ON diagnoses(account, at);
";

/// From version 1 to 2: the safe-after time of a withdrawal, and requests.
pub(super) const MIGRATE_2: &str = "
ALTER TABLE keys ADD COLUMN withdrawal_safe_after TEXT;
CREATE TABLE requests (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    what   TEXT NOT NULL,
    at     TEXT NOT NULL
);
";

/// From version 2 to 3: why a signer probe holds a key.
const MIGRATE_3: &str = "
ALTER TABLE keys ADD COLUMN held TEXT;
";

/// From version 3 to 4: who recorded an event (filled only for events copied
/// from a shared PostgreSQL store by `maildns migrate-state`).
const MIGRATE_4: &str = "
ALTER TABLE events ADD COLUMN replica TEXT;
ALTER TABLE events ADD COLUMN lease INTEGER;
ALTER TABLE events ADD COLUMN recorded_at TEXT;
";

/// From version 4 to 5: a `rotate --now` request is taken for a time (a lease
/// of its own) instead of being deleted when taken: `taken_by` names the
/// store that took it (its process and when it took the lock), `taken_until`
/// when the take expires (RFC 3339, fixed width, as every time here). The
/// taker deletes it once done; a take left by a process that died is taken
/// over by the next lock holder.
const MIGRATE_5: &str = "
ALTER TABLE requests ADD COLUMN taken_by TEXT;
ALTER TABLE requests ADD COLUMN taken_until TEXT;
";

pub(super) fn ts(t: DateTime<Utc>) -> String {
    // Fixed width, so text order is time order.
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

impl SqliteStore {
    pub(super) fn init(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(self.sql("set busy timeout"))?;
        if !self.in_memory {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(self.sql("enable WAL"))?;
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(self.sql("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(self.sql("enable foreign keys"))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql("begin schema transaction"))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.sql("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: self.db_path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            tx.execute_batch(SCHEMA)
                .map_err(self.sql("create schema"))?;
        }
        if version < 2 {
            tx.execute_batch(MIGRATE_2)
                .map_err(self.sql("migrate schema to version 2"))?;
        }
        if version < 3 {
            tx.execute_batch(MIGRATE_3)
                .map_err(self.sql("migrate schema to version 3"))?;
        }
        if version < 4 {
            tx.execute_batch(MIGRATE_4)
                .map_err(self.sql("migrate schema to version 4"))?;
        }
        if version < 5 {
            tx.execute_batch(MIGRATE_5)
                .map_err(self.sql("migrate schema to version 5"))?;
        }
        if version < SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(self.sql("write schema version"))?;
        }
        tx.commit().map_err(self.sql("commit schema"))
    }

    pub(super) fn row_to_key(&self, row: &Row<'_>) -> Result<KeyRecord, StoreError> {
        let text = |i: usize| -> Result<String, StoreError> {
            row.get::<_, String>(i).map_err(self.sql("read keys row"))
        };
        let opt_text = |i: usize| -> Result<Option<String>, StoreError> {
            row.get::<_, Option<String>>(i)
                .map_err(self.sql("read keys row"))
        };
        let time = |i: usize| -> Result<Option<DateTime<Utc>>, StoreError> {
            opt_text(i)?
                .map(|s| {
                    DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| self.corrupt("keys", format!("timestamp '{s}': {e}")))
                })
                .transpose()
        };
        let alg = text(0)?;
        let sel = text(1)?;
        let status = text(2)?;
        let bits: i64 = row.get(3).map_err(self.sql("read keys row"))?;
        let attempts: i64 = row.get(15).map_err(self.sql("read keys row"))?;
        let withdrawal_safe_after = time(16)?;
        Ok(KeyRecord {
            algorithm: Algorithm::parse(&alg)
                .ok_or_else(|| self.corrupt("keys", format!("algorithm '{alg}'")))?,
            selector: Selector::parse(&sel).map_err(|e| self.corrupt("keys", e.to_string()))?,
            status: KeyStatus::parse(&status)
                .ok_or_else(|| self.corrupt("keys", format!("status '{status}'")))?,
            bits: u32::try_from(bits).map_err(|_| self.corrupt("keys", format!("bits {bits}")))?,
            created_at: time(4)?
                .ok_or_else(|| self.corrupt("keys", "created_at is empty".into()))?,
            key_path: opt_text(5)?,
            published_at: time(6)?,
            propagated_at: time(7)?,
            safe_after: time(8)?,
            active_at: time(9)?,
            retired_at: time(10)?,
            withdrawn_at: time(11)?,
            destroyed_at: time(12)?,
            not_before: time(13)?,
            failure: opt_text(14)?,
            held: opt_text(17)?,
            attempts: u32::try_from(attempts)
                .map_err(|_| self.corrupt("keys", format!("attempts {attempts}")))?,
            withdrawal_safe_after,
        })
    }

    pub(super) fn row_to_event(&self, row: &Row<'_>) -> Result<StoredEvent, StoreError> {
        let get = |i: usize| -> Result<Option<String>, StoreError> {
            row.get::<_, Option<String>>(i)
                .map_err(self.sql("read events row"))
        };
        let need = |i: usize| -> Result<String, StoreError> {
            get(i)?.ok_or_else(|| self.corrupt("events", format!("column {i} is empty")))
        };
        let id: i64 = row.get(0).map_err(self.sql("read events row"))?;
        let at = need(1)?;
        let domain = need(2)?;
        let lease: Option<i64> = row.get(8).map_err(self.sql("read events row"))?;
        let recorded_at = get(9)?
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| self.corrupt("events", format!("timestamp '{t}': {e}")))
            })
            .transpose()?;
        Ok(StoredEvent {
            id,
            replica: get(7)?,
            lease,
            recorded_at,
            event: Event {
                at: DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| self.corrupt("events", format!("timestamp '{at}': {e}")))?,
                domain: Fqdn::parse(&domain).map_err(|e| self.corrupt("events", e.to_string()))?,
                selector: get(3)?
                    .map(|s| Selector::parse(&s))
                    .transpose()
                    .map_err(|e| self.corrupt("events", e.to_string()))?,
                what: need(4)?,
                outcome: need(5)?,
                detail: need(6)?,
            },
        })
    }
}

pub(super) fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    events: &[Event],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (at, domain, selector, what, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in events {
        stmt.execute(params![
            ts(e.at),
            e.domain.as_str(),
            e.selector.as_ref().map(Selector::as_str),
            e.what,
            e.outcome,
            e.detail
        ])?;
    }
    Ok(())
}
