-- The plan's least-privilege roles (issue 11): an owner that migrates, the application, a
-- read-only role for verify and reporting, the backfill. PostgreSQL itself renders every
-- statement (format %I quotes each name), so `coherence-sql roles` prints exactly what it runs.

-- name: role_setup_statements(owner, app, readonly, backfill)
-- The statements, in order, that create the four roles where missing and grant them exactly the
-- access map below on the current database and schema. Safe to run again after every migrate:
-- each table's grants are revoked and granted anew, so they end as the map says.
-- row: RoleStatementRow
WITH
names AS (
    SELECT
        :owner::TEXT AS owner_role,
        :app::TEXT AS app_role,
        :readonly::TEXT AS readonly_role,
        :backfill::TEXT AS backfill_role,
        current_database() AS db,
        current_schema() AS sch,
        current_setting('server_version_num')::INT AS version
),

-- Who may do what on each table. The application: DML on exactly the tables the stores use, and
-- read the schema history (its start-up check). Read-only: SELECT on all. The backfill: DML on the
-- data it loads and its bookkeeping. A table not listed here gets nothing from this statement list;
-- tests/operations/test_roles.py fails when a migration adds one without a line here.
access (table_name, ord, app_privileges, readonly_privileges, backfill_privileges) AS (
    VALUES
    ('projects', 1, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('project_dependencies', 2, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pending_dependencies', 3, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('contributors', 4, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('assets', 5, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('contributions', 6, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('github_contributors', 7, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('github_organizations', 8, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('github_contributes_to', 9, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('agent_tasks', 10, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('shadow_mismatches', 11, 'SELECT, INSERT, UPDATE, DELETE', 'SELECT', NULL),
    ('schema_migrations', 12, 'SELECT', 'SELECT', 'SELECT'),
    ('backfill_checkpoints', 13, NULL, 'SELECT', 'SELECT, INSERT, UPDATE, DELETE'),
    ('backfill_reserved_seqs', 14, NULL, 'SELECT', 'SELECT, INSERT, UPDATE, DELETE')
),

roles (ord, role_name) AS (
    SELECT
        r.ord,
        r.role_name
    FROM names AS n
    CROSS JOIN
        LATERAL (
            VALUES (1, n.owner_role), (2, n.app_role), (3, n.readonly_role), (4, n.backfill_role)
        ) AS r (ord, role_name)
),

statements (step, sub, statement) AS (
    -- 1. The roles, where missing: log in (passwords are set by the operator, never here), and
    -- nothing more (no superuser, CREATEDB, CREATEROLE, replication or RLS bypass).
    SELECT
        1,
        r.ord,
        format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r.role_name)
    FROM roles AS r
    WHERE
        NOT EXISTS (
            SELECT 1 FROM pg_roles AS p
            WHERE p.rolname = r.role_name
        )
    UNION ALL
    -- 2. The database and the schema: everyone connects; the owner creates (pg_trgm is a trusted
    -- extension: CREATE on the database suffices); the backfill stages in temporary tables.
    SELECT
        2,
        1,
        format(
            'GRANT CONNECT ON DATABASE %I TO %I, %I, %I, %I',
            n.db,
            n.owner_role,
            n.app_role,
            n.readonly_role,
            n.backfill_role
        )
    FROM names AS n
    UNION ALL
    SELECT
        2,
        2,
        format('GRANT CREATE ON DATABASE %I TO %I', n.db, n.owner_role)
    FROM names AS n
    UNION ALL
    SELECT
        2,
        3,
        format('GRANT TEMPORARY ON DATABASE %I TO %I, %I', n.db, n.owner_role, n.backfill_role)
    FROM names AS n
    UNION ALL
    SELECT
        2,
        4,
        format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', n.sch)
    FROM names AS n
    UNION ALL
    SELECT
        2,
        5,
        format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', n.sch, n.owner_role)
    FROM names AS n
    UNION ALL
    SELECT
        2,
        6,
        format('GRANT USAGE ON SCHEMA %I TO %I, %I, %I', n.sch, n.app_role, n.readonly_role, n.backfill_role)
    FROM names AS n
    UNION ALL
    -- Every role gets TEMPORARY on a database through PUBLIC by default: the application and the
    -- read-only role would create (temporary) tables. The backfill stages in them, and the owner
    -- keeps what it had (a backfill run as the owner), both granted by name (above).
    SELECT
        2,
        7,
        format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', n.db)
    FROM names AS n
    UNION ALL
    -- 3. Session settings: the read-only role's transactions are read-only by default; the
    -- backfill may skip the foreign keys' per-row triggers (docs/decisions.md, PostgreSQL 15+).
    SELECT
        3,
        1,
        format('ALTER ROLE %I SET default_transaction_read_only = on', n.readonly_role)
    FROM names AS n
    UNION ALL
    SELECT
        3,
        2,
        format('GRANT SET ON PARAMETER session_replication_role TO %I', n.backfill_role)
    FROM names AS n
    WHERE n.version >= 150000
    UNION ALL
    -- 4. Tables and sequences later migrations create (as the owner) get the same grants.
    SELECT
        4,
        1,
        format(
            'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
            'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I, %I',
            n.owner_role,
            n.sch,
            n.app_role,
            n.backfill_role
        )
    FROM names AS n
    UNION ALL
    SELECT
        4,
        2,
        format(
            'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
            n.owner_role,
            n.sch,
            n.readonly_role
        )
    FROM names AS n
    UNION ALL
    SELECT
        4,
        3,
        format(
            'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO %I',
            n.owner_role,
            n.sch,
            n.app_role
        )
    FROM names AS n
    UNION ALL
    SELECT
        4,
        4,
        format(
            'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I',
            n.owner_role,
            n.sch,
            n.backfill_role
        )
    FROM names AS n
    UNION ALL
    SELECT
        4,
        5,
        format(
            'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON SEQUENCES TO %I',
            n.owner_role,
            n.sch,
            n.readonly_role
        )
    FROM names AS n
    UNION ALL
    -- VACUUM and ANALYZE by a role that does not own the table: MAINTAIN, PostgreSQL 17+.
    SELECT
        4,
        6,
        format(
            'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT MAINTAIN ON TABLES TO %I',
            n.owner_role,
            n.sch,
            n.backfill_role
        )
    FROM names AS n
    WHERE n.version >= 170000
    UNION ALL
    -- 5. The tables that exist now: exactly the map.
    SELECT
        5,
        a.ord * 10 + 1,
        format(
            'REVOKE ALL ON TABLE %I.%I FROM PUBLIC, %I, %I, %I',
            n.sch,
            a.table_name,
            n.app_role,
            n.readonly_role,
            n.backfill_role
        )
    FROM names AS n
    INNER JOIN access AS a ON to_regclass(format('%I.%I', n.sch, a.table_name)) IS NOT NULL
    UNION ALL
    SELECT
        5,
        a.ord * 10 + 2,
        format('GRANT %s ON TABLE %I.%I TO %I', a.app_privileges, n.sch, a.table_name, n.app_role)
    FROM names AS n
    INNER JOIN access AS a ON to_regclass(format('%I.%I', n.sch, a.table_name)) IS NOT NULL
    WHERE a.app_privileges IS NOT NULL
    UNION ALL
    SELECT
        5,
        a.ord * 10 + 3,
        format('GRANT %s ON TABLE %I.%I TO %I', a.readonly_privileges, n.sch, a.table_name, n.readonly_role)
    FROM names AS n
    INNER JOIN access AS a ON to_regclass(format('%I.%I', n.sch, a.table_name)) IS NOT NULL
    WHERE a.readonly_privileges IS NOT NULL
    UNION ALL
    SELECT
        5,
        a.ord * 10 + 4,
        format(
            'GRANT %s%s ON TABLE %I.%I TO %I',
            a.backfill_privileges,
            CASE WHEN n.version >= 170000 THEN ', MAINTAIN' ELSE '' END,
            n.sch,
            a.table_name,
            n.backfill_role
        )
    FROM names AS n
    INNER JOIN access AS a ON to_regclass(format('%I.%I', n.sch, a.table_name)) IS NOT NULL
    WHERE a.backfill_privileges IS NOT NULL
    UNION ALL
    -- 6. The sequences that exist now (identity columns need none; setval by the backfill does).
    SELECT
        6,
        1,
        format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', n.sch, n.app_role)
    FROM names AS n
    UNION ALL
    SELECT
        6,
        2,
        format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', n.sch, n.backfill_role)
    FROM names AS n
    UNION ALL
    SELECT
        6,
        3,
        format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', n.sch, n.readonly_role)
    FROM names AS n
)

SELECT
    s.step AS "step!",
    s.sub AS "sub!",
    s.statement AS "statement!"
FROM statements AS s
ORDER BY s.step, s.sub;

-- name: privileged_roles(names)
-- Which of these roles exist with an attribute a least-privilege role must not have.
SELECT
    r.rolname AS "role_name!",
    r.rolsuper AS "superuser!",
    r.rolcreaterole AS "create_role!",
    r.rolcreatedb AS "create_db!",
    r.rolreplication AS "replication!",
    r.rolbypassrls AS "bypass_rls!"
FROM pg_roles AS r
WHERE
    r.rolname = any(:names::TEXT[])
    AND (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls)
ORDER BY r.rolname;

-- name: role_access(names)
-- What these roles (and PUBLIC) hold in this database and cluster, one privilege a row: on the current
-- schema's tables and sequences, by default privileges, on the database, the schema and server
-- parameters; their per-role settings; that they exist. `roles --check` compares it before and
-- after running role_setup_statements (rolled back): equal means the roles match the access map.
WITH
wanted AS (
    SELECT unnest(:names::TEXT[]) AS role_name
),

access (kind, object_name, grantee, privilege) AS (
    SELECT
        'table',
        c.relname::TEXT,
        a.grantee,
        a.privilege_type
    FROM pg_class AS c
    CROSS JOIN
        LATERAL aclexplode(
            coalesce(
                c.relacl,
                CASE WHEN c.relkind = 'S' THEN acldefault('s', c.relowner) ELSE acldefault('r', c.relowner) END
            )
        ) AS a
    WHERE c.relnamespace = current_schema()::REGNAMESPACE AND c.relkind IN ('r', 'p', 'S')
    UNION ALL
    SELECT
        'default',
        'new '
        || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' ELSE d.defaclobjtype::TEXT END
        || ' of '
        || pg_get_userbyid(d.defaclrole)::TEXT,
        a.grantee,
        a.privilege_type
    FROM pg_default_acl AS d
    CROSS JOIN LATERAL aclexplode(d.defaclacl) AS a
    UNION ALL
    SELECT
        'database',
        d.datname::TEXT,
        a.grantee,
        a.privilege_type
    FROM pg_database AS d
    CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) AS a
    WHERE d.datname = current_database()
    UNION ALL
    SELECT
        'schema',
        n.nspname::TEXT,
        a.grantee,
        a.privilege_type
    FROM pg_namespace AS n
    CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS a
    WHERE n.nspname = current_schema()
    UNION ALL
    SELECT
        'parameter',
        p.parname,
        a.grantee,
        a.privilege_type
    FROM pg_parameter_acl AS p
    CROSS JOIN LATERAL aclexplode(p.paracl) AS a
    UNION ALL
    SELECT
        'setting',
        s.setting,
        r.oid,
        'SET'
    FROM pg_db_role_setting AS d
    INNER JOIN pg_roles AS r ON d.setrole = r.oid
    CROSS JOIN LATERAL unnest(d.setconfig) AS s (setting)
    UNION ALL
    SELECT
        'role',
        r.rolname::TEXT,
        r.oid,
        'EXISTS'
    FROM pg_roles AS r
),

held (kind, object_name, role_name, privilege) AS (
    SELECT
        a.kind,
        a.object_name,
        coalesce(r.rolname::TEXT, 'PUBLIC'),
        a.privilege
    FROM access AS a
    LEFT JOIN pg_roles AS r ON a.grantee = r.oid
    WHERE
        -- PUBLIC (grantee 0) holds for every role: CREATE on the schema or TEMPORARY on the
        -- database granted to it again is drift as much as a grant to the roles themselves.
        a.grantee = 0
        OR r.rolname IN (SELECT w.role_name FROM wanted AS w)
)

SELECT
    h.kind AS "kind!",
    h.object_name AS "object_name!",
    h.role_name AS "role_name!",
    h.privilege AS "privilege!"
FROM held AS h
ORDER BY h.kind, h.object_name, h.role_name, h.privilege;
