-- Every change of a session row is announced on the channel `tether_sessions`, with
-- the row's id (its key at rest, base64url as tether writes ids): instances with a
-- near cache drop their copy. The trigger covers every writer (tether's statements,
-- the cleanup, an operator's DELETE); a TRUNCATE announces `*` (forget everything).
CREATE OR REPLACE FUNCTION tether_sessions_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('tether_sessions', '*');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('tether_sessions',
            translate(rtrim(encode(OLD.id, 'base64'), '='), '+/', '-_'));
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id <> OLD.id) THEN
        PERFORM pg_notify('tether_sessions',
            translate(rtrim(encode(NEW.id, 'base64'), '='), '+/', '-_'));
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS tether_sessions_notify ON tether_sessions;
CREATE TRIGGER tether_sessions_notify
    AFTER INSERT OR UPDATE OR DELETE ON tether_sessions
    FOR EACH ROW EXECUTE FUNCTION tether_sessions_notify();

DROP TRIGGER IF EXISTS tether_sessions_truncate ON tether_sessions;
CREATE TRIGGER tether_sessions_truncate
    AFTER TRUNCATE ON tether_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION tether_sessions_notify();
