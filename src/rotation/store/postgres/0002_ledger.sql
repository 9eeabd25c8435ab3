-- Schema version 2: the publish ledger (what `maildns publish` published:
-- src/publish/ledger.rs), shared by every machine instead of each one's
-- <state_dir>/published.json. One row.
CREATE TABLE ledger (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    body     JSONB NOT NULL,
    saved_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
