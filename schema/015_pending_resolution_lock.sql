-- The lock that makes resolutions of pending edges take turns (002's trigger), as a function that
-- writers can also take up front. A bulk upsert that updates existing projects and inserts new ones
-- with pending edges took it only in the insert triggers, after its updates had locked rows that
-- another resolver, holding it, needed: a deadlock (docs/decisions.md "Pending resolution lock").
-- PostgresGraphStore.upsert_projects now takes it before writing when its keys have pending edges.
CREATE FUNCTION lock_pending_resolution()
RETURNS VOID AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('coherence_sql.pending_dependencies', 7));
$$ LANGUAGE sql;

CREATE OR REPLACE FUNCTION project_resolve_pending_dependencies()
RETURNS TRIGGER AS $$
BEGIN
    PERFORM lock_project_key(NEW.ecosystem, NEW.name);
    IF NOT EXISTS (
        SELECT 1 FROM pending_dependencies AS q
        WHERE (q.from_ecosystem = NEW.ecosystem AND q.from_name = NEW.name)
        OR (q.to_ecosystem = NEW.ecosystem AND q.to_name = NEW.name)
    ) THEN
        RETURN NULL;
    END IF;
    -- Both endpoints of a pending edge may be inserted at once, each unable to see the other's
    -- uncommitted row: resolutions take turns, so the second sees the first committed. (An edge
    -- touching this key cannot appear meanwhile: record_dependency waits on this key's lock.)
    PERFORM lock_pending_resolution();
    WITH moved AS (
        DELETE FROM pending_dependencies AS q
        WHERE (
            q.from_ecosystem = NEW.ecosystem AND q.from_name = NEW.name
            AND EXISTS (SELECT 1 FROM projects AS t WHERE t.ecosystem = q.to_ecosystem AND t.name = q.to_name)
        ) OR (
            q.to_ecosystem = NEW.ecosystem AND q.to_name = NEW.name
            AND EXISTS (SELECT 1 FROM projects AS f WHERE f.ecosystem = q.from_ecosystem AND f.name = q.from_name)
        )
        RETURNING q.id, q.from_ecosystem, q.from_name, q.to_ecosystem, q.to_name, q.created_at
    )
    INSERT INTO project_dependencies (from_project_id, to_project_id, created_at)
    SELECT f.id, t.id, m.created_at
    FROM moved AS m
    INNER JOIN projects AS f ON m.from_ecosystem = f.ecosystem AND m.from_name = f.name
    INNER JOIN projects AS t ON m.to_ecosystem = t.ecosystem AND m.to_name = t.name
    ORDER BY m.id
    ON CONFLICT (from_project_id, to_project_id) DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
