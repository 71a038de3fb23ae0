-- name: ping()$
-- Whether the server answers at all.
SELECT 1 AS "ok!";

-- name: server_version()$
-- The server's version string, for status pages.
SELECT current_setting('server_version') AS "version!";

-- name: server_state(tables, privileges)^
-- The server as a health check and the start-up check see it, in one round trip: its version,
-- whether it is a hot standby or its sessions are read-only, the role, whether the schema history
-- exists, and which of the given privileges ("table PRIVILEGE", pairwise) the role lacks; for a
-- table it must INSERT into, also USAGE on the sequence of each SERIAL column (nextval runs with
-- the caller's rights; identity columns need none), named "schema.sequence USAGE".
SELECT
    current_setting('server_version') AS "version!",
    pg_is_in_recovery() AS "in_recovery!",
    current_setting('transaction_read_only') = 'on' AS "read_only!",
    current_user AS "role!",
    to_regclass('schema_migrations') IS NOT NULL AS "has_history!",
    array(
        SELECT m.item
        FROM (
            SELECT
                w.ord * 10000 AS position,
                w.table_name || ' ' || w.privilege AS item
            FROM unnest(:tables::text[], :privileges::text[]) WITH ORDINALITY AS w (table_name, privilege, ord)
            WHERE
                to_regclass(w.table_name) IS NULL
                OR NOT has_table_privilege(to_regclass(w.table_name), w.privilege)
            UNION ALL
            SELECT
                w.ord * 10000 + s.attnum AS position,
                s.sequence_name || ' USAGE' AS item
            FROM unnest(:tables::text[], :privileges::text[]) WITH ORDINALITY AS w (table_name, privilege, ord)
            CROSS JOIN
                LATERAL (
                    SELECT
                        a.attnum,
                        pg_get_serial_sequence(w.table_name, a.attname) AS sequence_name
                    FROM pg_attribute AS a
                    WHERE
                        a.attrelid = to_regclass(w.table_name)
                        AND a.attnum > 0
                        AND NOT a.attisdropped
                        AND a.attidentity = ''
                ) AS s
            WHERE
                w.privilege = 'INSERT'
                AND s.sequence_name IS NOT NULL
                AND NOT has_sequence_privilege(s.sequence_name, 'USAGE')
        ) AS m
        ORDER BY m.position
    ) AS "missing!";

-- name: schema_history()
-- The applied schema files, for comparing with the files this code ships.
SELECT
    version AS "version!",
    name AS "name!",
    checksum AS "checksum!",
    success AS "success!"
FROM schema_migrations
ORDER BY version;
