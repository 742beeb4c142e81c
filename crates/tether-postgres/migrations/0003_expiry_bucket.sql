-- The cleanup finds expired sessions by a coarse expiry bucket (65.536 s of
-- deadline) instead of the exact deadline, which nearly every save moves. A save that
-- leaves the bucket as it was changes no indexed column, so PostgreSQL can update the
-- row in place (a HOT update) without writing new index entries. The exact
-- `idle_deadline_ms` stays, unindexed, and every statement still checks it.
ALTER TABLE tether_sessions ADD COLUMN IF NOT EXISTS expiry_bucket BIGINT
    GENERATED ALWAYS AS (idle_deadline_ms / 65536) STORED;
CREATE INDEX IF NOT EXISTS tether_sessions_expiry_bucket ON tether_sessions (expiry_bucket);
DROP INDEX IF EXISTS tether_sessions_expiry;
