-- name: primary_wal_position()$
-- The primary's WAL insert position, as a byte offset: every transaction that committed before
-- this call began ends at or below it (the insert position, not the write position, so that a
-- commit not yet flushed under synchronous_commit=off is covered too).
SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS "position!";

-- name: replica_replay_position()^
-- How far a replica has replayed, as a byte offset (NULL when the server is not in recovery, i.e.
-- a primary, perhaps a promoted replica), in one round trip with whether it is in recovery.
SELECT
    (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed,
    pg_is_in_recovery() AS "in_recovery!";
