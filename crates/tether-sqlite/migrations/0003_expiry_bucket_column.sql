-- The expiry bucket becomes a plain column that the statements set, and only when it
-- changes. SQLite rewrites an index entry whenever a statement assigns one of the
-- index's columns, or a column a generated one is computed from, even to the value it
-- had: with the bucket generated from `idle_deadline_ms`, every save rewrote it.
DROP INDEX IF EXISTS tether_sessions_expiry_bucket;
ALTER TABLE tether_sessions DROP COLUMN expiry_bucket;
ALTER TABLE tether_sessions ADD COLUMN expiry_bucket INTEGER NOT NULL DEFAULT 0;
UPDATE tether_sessions SET expiry_bucket = idle_deadline_ms / 65536;
CREATE INDEX IF NOT EXISTS tether_sessions_expiry_bucket ON tether_sessions (expiry_bucket);
