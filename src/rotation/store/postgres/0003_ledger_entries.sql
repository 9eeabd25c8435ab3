-- Schema version 3: the publish ledger one row per entry, keyed by (domain,
-- kind), instead of one JSON document saved whole. Each `publish` run upserts
-- or deletes exactly the entries it changed (PgStore::update_ledger), so runs
-- on several machines at once never lose each other's entries. The rows of
-- the version 2 document are carried over (its save time kept), then the
-- document's table goes.
CREATE TABLE ledger_entries (
    domain   TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (length(kind) > 0),
    name     TEXT NOT NULL,
    value    TEXT NOT NULL,
    -- who wrote the entry last, and when (the database's clock)
    replica  TEXT,
    saved_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (domain, kind)
);
INSERT INTO ledger_entries (domain, kind, name, value, saved_at)
SELECT DISTINCT ON (r->>'domain', r->>'kind')
       r->>'domain', r->>'kind', r->>'name', r->>'value', l.saved_at
  FROM ledger l, jsonb_array_elements(l.body->'records') AS r
 ORDER BY r->>'domain', r->>'kind';
DROP TABLE ledger;
