-- Catalog reads and admin statements for `coherence-sql backup` and `restore`
-- (coherence_sql.backup): the snapshot pg_dump shares, what a backup's manifest records,
-- and whether a restore's target database is empty.

-- name: export_snapshot()$
-- The transaction's snapshot, for `pg_dump --snapshot` (call inside a REPEATABLE READ transaction).
SELECT pg_export_snapshot() AS "snapshot_id!";

-- name: server_version_num()$
-- The server's version as a number (180001 is 18.1): its major is the number divided by 10000.
SELECT current_setting('server_version_num')::integer AS "version_num!";

-- name: current_database_name()$
-- The name of the database this connection is on.
SELECT current_database() AS "name!";

-- name: schema_history_exists()$
-- Whether the schema runner's history table exists (a database never migrated has none).
SELECT to_regclass('schema_migrations') IS NOT NULL AS "present!";

-- name: applied_schema_files()
-- The schema files applied successfully, in version order: what a backup's manifest records.
SELECT
    m.version,
    m.name,
    m.checksum
FROM schema_migrations AS m
WHERE m.success
ORDER BY m.version;

-- name: user_object_count()$
-- Objects a restore would collide with: relations, routines and types (other than relations' row
-- and array types) outside the system schemas,
-- and extensions other than plpgsql.
SELECT
    (
        SELECT count(*)
        FROM pg_catalog.pg_class AS c
        INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
        WHERE
            n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\_toast%'
            AND n.nspname NOT LIKE 'pg\_temp\_%'
    )
    + (
        SELECT count(*)
        FROM pg_catalog.pg_proc AS p
        INNER JOIN pg_catalog.pg_namespace AS n ON p.pronamespace = n.oid
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    )
    + (
        SELECT count(*)
        FROM pg_catalog.pg_type AS t
        INNER JOIN pg_catalog.pg_namespace AS n ON t.typnamespace = n.oid
        WHERE
            n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND t.typrelid = 0
            AND t.typcategory <> 'A'
    )
    + (
        SELECT count(*)
        FROM pg_catalog.pg_extension AS e
        WHERE e.extname <> 'plpgsql'
    ) AS "objects!";

-- name: database_exists(name)$
-- Whether a database of this name exists on the server.
SELECT exists(
    SELECT 1 FROM pg_catalog.pg_database AS d
    WHERE d.datname = :name
) AS "found!";

-- name: create_database_statement(name)$
-- The CREATE DATABASE statement for a name, quoted by the server (a name cannot be a parameter).
SELECT format('CREATE DATABASE %I', :name::text) AS "statement!";

-- name: analyze_database()#
-- Fresh planner statistics after a restore (pg_restore brings back data, not statistics).
ANALYZE;

-- name: row_count_statement()$
-- One statement counting every table's rows, as rows (table_name "schema.table", row_count), or
-- NULL when there are no tables: a table name cannot be a parameter, so the server writes the
-- statement with format()'s quoting.
SELECT
    string_agg(
        format(
            'SELECT %L AS table_name, count(*) AS row_count FROM %I.%I',
            t.schemaname || '.' || t.tablename,
            t.schemaname,
            t.tablename
        ),
        ' UNION ALL '
        ORDER BY t.schemaname, t.tablename
    ) AS statement
FROM pg_catalog.pg_tables AS t
WHERE t.schemaname NOT IN ('pg_catalog', 'information_schema');
