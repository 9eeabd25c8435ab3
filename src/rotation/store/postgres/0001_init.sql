-- maildns state store on PostgreSQL, schema version 1: the concepts of the
-- SQLite store (domains, keys, events, diagnoses, requests) plus the leases
-- that let several daemon replicas share the store. Applied by
-- PgStore::connect (src/rotation/store/postgres.rs) inside one transaction.
CREATE TABLE domains (
    domain   TEXT PRIMARY KEY,
    saved_at TIMESTAMPTZ NOT NULL,
    blocked  TEXT
);
CREATE TABLE keys (
    domain                TEXT NOT NULL REFERENCES domains(domain),
    algorithm             TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
    selector              TEXT NOT NULL,
    seq                   INTEGER NOT NULL,
    status                TEXT NOT NULL,
    bits                  INTEGER NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    key_path              TEXT,
    published_at          TIMESTAMPTZ,
    propagated_at         TIMESTAMPTZ,
    safe_after            TIMESTAMPTZ,
    active_at             TIMESTAMPTZ,
    retired_at            TIMESTAMPTZ,
    withdrawn_at          TIMESTAMPTZ,
    destroyed_at          TIMESTAMPTZ,
    not_before            TIMESTAMPTZ,
    attempts              BIGINT NOT NULL,
    failure               TEXT,
    withdrawal_safe_after TIMESTAMPTZ,
    held                  TEXT,
    PRIMARY KEY (domain, algorithm, selector),
    UNIQUE (domain, selector)
);
-- `at` is the rotation clock's time; `recorded_at` the database's wall clock
-- when the row was written; `replica` who wrote it; `lease` the epoch of the
-- domain lease it was written under (NULL for events needing no lease).
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    domain      TEXT NOT NULL,
    selector    TEXT,
    what        TEXT NOT NULL CHECK (length(what) > 0),
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    replica     TEXT,
    lease       BIGINT,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_domain ON events(domain, id);
CREATE TABLE diagnoses (
    id                   BIGSERIAL PRIMARY KEY,
    account              TEXT NOT NULL,
    zone                 TEXT NOT NULL,
    at                   TIMESTAMPTZ NOT NULL,
    result               JSONB NOT NULL,
    recommended_max_bits INTEGER
);
CREATE INDEX diagnoses_account ON diagnoses(account, at);
CREATE TABLE requests (
    id     BIGSERIAL PRIMARY KEY,
    domain TEXT NOT NULL,
    what   TEXT NOT NULL,
    at     TIMESTAMPTZ NOT NULL
);
-- One row per domain ever leased. A replica works a domain only while it
-- holds an unexpired, unreleased lease; each taking raises `epoch` (a fencing
-- token: a save checks holder and epoch in its own transaction).
CREATE TABLE leases (
    domain     TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    released   BOOLEAN NOT NULL
);
