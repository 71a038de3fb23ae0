-- Backfill: the references of a batch checked set-based (queries/backfill.sql, docs/decisions.md
-- "Foreign keys checked per batch"). A merge locks the parent rows its batch names FOR KEY SHARE,
-- as the foreign keys' own checks do, counts them, and calls this in the same statement: a batch
-- naming a parent PostgreSQL lacks is refused whole, with the foreign-key SQLSTATE.
CREATE FUNCTION backfill_require_references(p_parents TEXT, p_wanted BIGINT, p_found BIGINT)
RETURNS BIGINT AS $$
BEGIN
    IF p_found < p_wanted THEN
        RAISE EXCEPTION 'the batch names % % that PostgreSQL does not have', p_wanted - p_found, p_parents
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN p_found;
END;
$$ LANGUAGE plpgsql;
