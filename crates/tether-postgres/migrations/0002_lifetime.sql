-- A session's own lifetime (`Session::set_expiry`): its idle timeout in milliseconds,
-- negative when its cookie is a browser-session one; NULL for the layer's lifetime.
-- Saves and refreshes extend such a session by it.
ALTER TABLE tether_sessions ADD COLUMN lifetime_ms BIGINT NULL;
