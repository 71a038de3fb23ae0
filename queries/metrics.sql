-- name: server_state()^
-- The scraped server's own figures in one round trip: its database's size, its data directory
-- (NULL unless the role may read it: superuser or pg_read_all_settings), whether it is a replica,
-- and, on a replica, how far its replay is behind (0 when it has replayed all it received from a
-- WAL receiver still running; NULL while behind if it has replayed no transaction since it started).
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
        -- Replayed all it received, and still receiving: caught up. Without a WAL receiver (the
        -- primary away, or primary_conninfo lost) "all it received" stops moving while the primary
        -- goes on: then the time since the last replayed commit is all that can be said.
        WHEN
            pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
            AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver)
            THEN 0.0
        ELSE extract(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
    END AS replay_delay_seconds,
    coalesce(host(inet_server_addr()), 'unix-socket') AS "server_address!",
    extract(EPOCH FROM pg_postmaster_start_time())::bigint AS "started_at_epoch!";

-- name: replication_lag()
-- Each replica streaming from this primary and its replay lag, named by application_name, else
-- the client address. Names must be unique or one replica's lag would hide another's: a standby's
-- walreceiver is called "walreceiver" unless cluster_name or primary_conninfo says otherwise, so
-- replicas sharing a name get "@" and their address, else "@pid" and the sender's pid.
-- A NULL replay_lag means nothing to replay lately (caught up: 0). Without pg_monitor the role
-- sees the row but not its state or lag: then lag_seconds is NULL (unknown).
WITH
senders AS (
    SELECT
        r.pid,
        r.state,
        r.replay_lag,
        host(r.client_addr) AS client_host,
        coalesce(nullif(r.application_name, ''), host(r.client_addr), 'local') AS replica_name
    FROM pg_stat_replication AS r
),

counted AS (
    SELECT
        s.pid,
        s.state,
        s.replay_lag,
        s.client_host,
        s.replica_name,
        count(*) OVER (PARTITION BY s.replica_name) AS same_name,
        count(*) OVER (PARTITION BY s.replica_name, s.client_host) AS same_name_and_host
    FROM senders AS s
)

SELECT
    CASE
        WHEN c.same_name = 1 THEN c.replica_name
        WHEN c.client_host IS NOT NULL AND c.same_name_and_host = 1 THEN c.replica_name || '@' || c.client_host
        ELSE c.replica_name || '@pid' || c.pid
    END AS "replica!",
    CASE
        WHEN c.state IS NULL THEN NULL
        ELSE coalesce(extract(EPOCH FROM c.replay_lag)::float8, 0.0)
    END AS lag_seconds
FROM counted AS c
ORDER BY 1;
