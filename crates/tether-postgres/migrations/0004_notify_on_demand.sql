-- Writes announce themselves only where a near cache listens: `pg_notify` takes a
-- lock that serialises committing transactions, which every write paid for even with
-- no instance listening. The first near cache to start installs the triggers again
-- (`PostgresStore::install_notify_trigger`); the function stays.
DROP TRIGGER IF EXISTS tether_sessions_notify ON tether_sessions;
DROP TRIGGER IF EXISTS tether_sessions_truncate ON tether_sessions;
