-- name: server_state()^
-- The scraped server's own figures in one round trip: its database's size, its data directory
-- (NULL unless the role may read it: superuser or pg_read_all_settings), whether it is a replica,
-- and, on a replica, how far its replay is behind (0 when it has replayed all it received; NULL
-- while behind if it has replayed no transaction since it started).
-- The address we reached it on ('unix-socket' for a socket) and its start time (as in its
-- postmaster.pid) say whether a local data directory of that path is this server's.
SELECT
    pg_database_size(current_database()) AS "database_size_bytes!",
    (
        SELECT s.setting FROM pg_settings AS s
        WHERE s.name = 'data_directory'
    ) AS data_directory,
    pg_is_in_recovery() AS "in_recovery!",
    CASE
        WHEN NOT pg_is_in_recovery() THEN NULL
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
        ELSE extract(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
    END AS replay_delay_seconds,
    coalesce(host(inet_server_addr()), 'unix-socket') AS "server_address!",
    extract(EPOCH FROM pg_postmaster_start_time())::bigint AS "started_at_epoch!";

-- name: replication_lag()
-- Each replica streaming from this primary and its replay lag, named by application_name, else
-- the client address. A NULL replay_lag means nothing to replay lately (caught up: 0). Without
-- pg_monitor the role sees the row but not its state or lag: then lag_seconds is NULL (unknown).
SELECT
    coalesce(nullif(r.application_name, ''), host(r.client_addr), 'local') AS "replica!",
    CASE
        WHEN r.state IS NULL THEN NULL
        ELSE coalesce(extract(EPOCH FROM r.replay_lag)::float8, 0.0)
    END AS lag_seconds
FROM pg_stat_replication AS r
ORDER BY 1;
