-- The cleanup finds expired sessions by a coarse expiry bucket (65.536 s of
-- deadline) instead of the exact deadline, which nearly every save moves. A save that
-- leaves the bucket as it was changes no indexed column, so InnoDB leaves the
-- secondary index alone. The exact `idle_deadline_ms` stays, unindexed, and every
-- statement still checks it.
ALTER TABLE tether_sessions
    ADD COLUMN expiry_bucket BIGINT GENERATED ALWAYS AS (idle_deadline_ms DIV 65536) STORED,
    ADD KEY tether_sessions_expiry_bucket (expiry_bucket),
    DROP KEY tether_sessions_expiry;
