-- Bulk writes of any size in one transaction (docs/decisions.md "Bulk writes are one transaction").
-- Every project-key lock is now taken under a shared hold of one "all project keys" lock. A bulk
-- write with more keys than fit the lock table per transaction takes that lock exclusively instead
-- of one lock per key (one lock, not thousands) and marks its transaction, so that the key locks
-- its triggers and record_dependency() would take are skipped: it already excludes every other
-- writer of project keys, each of which takes the shared hold before any key lock.
CREATE FUNCTION lock_all_project_keys()
RETURNS VOID AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('coherence_sql.all_project_keys', 7));
    PERFORM set_config('coherence_sql.all_project_keys_locked', 'on', true);
END;
$$ LANGUAGE plpgsql;

-- One statement (SQL, not PL/pgSQL: ~2 us a key instead of ~6); the shared hold is the first target.
CREATE OR REPLACE FUNCTION lock_project_key(p_ecosystem TEXT, p_name TEXT)
RETURNS VOID AS $$
    SELECT
        pg_advisory_xact_lock_shared(hashtextextended('coherence_sql.all_project_keys', 7)),
        pg_advisory_xact_lock(hashtextextended(p_ecosystem || '/' || p_name, 7))
    WHERE current_setting('coherence_sql.all_project_keys_locked', true) IS DISTINCT FROM 'on';
$$ LANGUAGE sql;
