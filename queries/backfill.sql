-- Backfill of a JSON snapshot (coherence_sql.transfer.backfill): the session's temporary staging
-- tables, filled one batch at a time by COPY (asyncpg's copy_records_to_table), and one merge
-- script per section that moves the staged batch into the real tables with ON CONFLICT DO NOTHING
-- and records the batch's checkpoint in the same transaction (schema/011_backfill_checkpoints.sql).
-- The merge scripts read only staging tables and the session's settings (start_session,
-- start_unit), so they take no parameters ('#'): the generator never sees temporary tables.
-- Staged rows vanish at commit (ON COMMIT DELETE ROWS): a batch is COPY + merge in one transaction.

-- name: create_staging#
-- The staging tables of this session, one per section, in the column order the COPY sends.
CREATE TEMP TABLE IF NOT EXISTS backfill_stage_contributors (
    ord BIGINT NOT NULL,
    id UUID NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    wallet_address TEXT,
    hourly_rate NUMERIC,
    created_at TIMESTAMPTZ NOT NULL,
    github_username TEXT,
    metadata TEXT NOT NULL
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_assets (
    ord BIGINT NOT NULL,
    id UUID NOT NULL,
    asset_type TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    metadata TEXT NOT NULL
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_contributions (
    ord BIGINT NOT NULL,
    id UUID NOT NULL,
    contributor_id UUID NOT NULL,
    asset_id UUID NOT NULL,
    cost_amount TEXT NOT NULL,
    coherence_score TEXT NOT NULL,
    metadata TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_projects (
    ord BIGINT NOT NULL,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    display_ecosystem TEXT NOT NULL,
    display_name TEXT NOT NULL,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    homepage_url TEXT,
    repository_url TEXT
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_edges (
    ord BIGINT NOT NULL,
    from_ecosystem TEXT NOT NULL,
    from_name TEXT NOT NULL,
    to_ecosystem TEXT NOT NULL,
    to_name TEXT NOT NULL
) ON COMMIT DELETE ROWS;

-- The edges whose two projects are both in the snapshot, by project id (merge_edges_by_id).
CREATE TEMP TABLE IF NOT EXISTS backfill_stage_edge_ids (
    ord BIGINT NOT NULL,
    from_id INTEGER NOT NULL,
    to_id INTEGER NOT NULL
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_github_contributors (
    ord BIGINT NOT NULL,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    login TEXT NOT NULL,
    name TEXT,
    avatar_url TEXT,
    contributions_count INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_github_organizations (
    ord BIGINT NOT NULL,
    id TEXT NOT NULL,
    login TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    avatar_url TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_contributes_to (
    ord BIGINT NOT NULL,
    contributor_id TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL
) ON COMMIT DELETE ROWS;

CREATE TEMP TABLE IF NOT EXISTS backfill_stage_agent_tasks (
    ord BIGINT NOT NULL,
    id TEXT NOT NULL,
    direction TEXT NOT NULL,
    task_type TEXT NOT NULL,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    command TEXT NOT NULL,
    tier TEXT,
    context TEXT,
    output TEXT,
    progress_pct INTEGER,
    current_step TEXT,
    decision_prompt TEXT,
    decision TEXT,
    started_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ,
    claimed_by TEXT,
    claimed_at TIMESTAMPTZ
) ON COMMIT DELETE ROWS;

-- Rows a merge script added in its earlier statements, summed into the checkpoint by its last.
CREATE TEMP TABLE IF NOT EXISTS backfill_stage_added (
    added BIGINT NOT NULL
) ON COMMIT DELETE ROWS;

-- name: drop_staging#
-- Remove this session's staging tables (a pooled connection goes back clean).
DROP TABLE IF EXISTS
pg_temp.backfill_stage_contributors,
pg_temp.backfill_stage_assets,
pg_temp.backfill_stage_contributions,
pg_temp.backfill_stage_projects,
pg_temp.backfill_stage_edges,
pg_temp.backfill_stage_edge_ids,
pg_temp.backfill_stage_github_contributors,
pg_temp.backfill_stage_github_organizations,
pg_temp.backfill_stage_contributes_to,
pg_temp.backfill_stage_agent_tasks,
pg_temp.backfill_stage_added;

-- name: start_session(snapshot_sha256)$
-- Name the snapshot this session loads; every merge script records its checkpoint under it.
SELECT set_config('coherence_sql.backfill_snapshot', :snapshot_sha256, false) AS "snapshot_sha256!";

-- name: may_skip_foreign_key_triggers()$
-- Whether the merges may run their inserts with session_replication_role = replica, which skips
-- every ordinary trigger and rule of the tables those statements write: only when this session may
-- set it (a superuser, or GRANT SET ON PARAMETER) and those tables have no triggers but the foreign
-- keys' (checked per batch instead) and the ones the merges already account for (the aggregate
-- triggers, skipped by coherence_sql.set_based_aggregates; projects' INSERT triggers, which an
-- UPDATE does not fire). Anything else, a trigger or rule added later, keeps the per-row path.
SELECT
    has_parameter_privilege('session_replication_role', 'SET')
    AND NOT EXISTS (
        SELECT 1
        FROM pg_trigger AS t
        WHERE
            t.tgrelid = any(written.tables)
            AND NOT t.tgisinternal
            AND t.tgname NOT IN (
                'contribution_update_asset_cost',
                'project_dependencies_count',
                'project_set_dependency_count',
                'project_resolve_dependencies'
            )
    )
    AND NOT EXISTS (
        SELECT 1
        FROM pg_rewrite AS r
        WHERE r.ev_class = any(written.tables) AND r.rulename <> '_RETURN'
    ) AS "allowed!"
FROM (
    SELECT
        ARRAY[
            'contributions'::REGCLASS,
            'assets'::REGCLASS,
            'project_dependencies'::REGCLASS,
            'projects'::REGCLASS,
            'backfill_checkpoints'::REGCLASS
        ]::OID[] AS tables
) AS written;

-- name: set_reference_checks(per_batch)$
-- 'on': the merges below skip the foreign keys' per-row triggers (see merge_contributions).
SELECT set_config('coherence_sql.backfill_references_per_batch', :per_batch, false) AS "per_batch!";

-- name: start_unit(unit)$
-- Name the checkpoint the next batches record under: a section, or a partition of one.
SELECT set_config('coherence_sql.backfill_unit', :unit, false) AS "unit!";

-- name: session_statement_timeout(duration)$
-- The backfill's own statement timeout (VACUUM of a large table outlives the pool's 60 s).
SELECT set_config('statement_timeout', :duration, false) AS "statement_timeout!";

-- name: get_checkpoints(snapshot_sha256)
-- How far earlier runs got with this snapshot, per section.
SELECT
    k.section,
    k.done_through,
    k.staged,
    k.inserted,
    k.batches,
    k.started_at,
    k.updated_at
FROM backfill_checkpoints AS k
WHERE k.snapshot_sha256 = :snapshot_sha256
ORDER BY k.started_at, k.section;

-- name: clear_checkpoints(snapshot_sha256)!
-- Forget the progress and the seq values recorded for this snapshot (a run from the start; the
-- merge stays idempotent).
WITH reserved AS (
    DELETE FROM backfill_reserved_seqs AS r
    WHERE r.snapshot_sha256 = :snapshot_sha256
)

DELETE FROM backfill_checkpoints AS k
WHERE k.snapshot_sha256 = :snapshot_sha256;

-- name: get_reserved_seqs(snapshot_sha256)
-- The seq ranges reserved for this snapshot's contributions, in snapshot order.
SELECT
    r.first_seq,
    r.last_seq
FROM backfill_reserved_seqs AS r
WHERE r.snapshot_sha256 = :snapshot_sha256
ORDER BY r.first_seq;

-- name: record_reserved_seqs(snapshot_sha256, first_seqs, last_seqs)!
-- Keep the ranges reserve_contribution_seqs handed out, in the same transaction.
INSERT INTO backfill_reserved_seqs (snapshot_sha256, first_seq, last_seq)
SELECT
    :snapshot_sha256,
    u.first_seq,
    u.last_seq
FROM unnest(:first_seqs::BIGINT[], :last_seqs::BIGINT[]) AS u (first_seq, last_seq);

-- name: lock_contributions_seq#
-- Hold off inserts into contributions (not reads) until commit, so that no one takes a seq value
-- between the two steps of reserve_contribution_seq_block; run in the same short transaction.
LOCK TABLE contributions IN SHARE ROW EXCLUSIVE MODE;

-- name: reserve_contribution_seq_block(n)$
-- Take n consecutive contributions.seq values at once; returns the first. Run after
-- lock_contributions_seq in one transaction (nextval, then setval past the block).
SELECT
    setval(
        pg_get_serial_sequence('contributions', 'seq'),
        nextval(pg_get_serial_sequence('contributions', 'seq')) + :n::BIGINT - 1
    ) - :n::BIGINT + 1 AS "first_seq!";

-- name: existing_contributor_ids(ids)
-- Which of these contributor ids PostgreSQL already has.
-- row: ExistingIdRow
SELECT c.id
FROM contributors AS c
WHERE c.id = any(:ids::UUID[]);

-- name: existing_asset_ids(ids)
-- Which of these asset ids PostgreSQL already has.
SELECT a.id
FROM assets AS a
WHERE a.id = any(:ids::UUID[]);

-- name: merge_contributors#
-- The staged contributors whose id and email key are both free; a row already
-- present is left as it is: dual-write put it there, and it is at least as new as the snapshot.
WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_contributors AS s
),

inserted AS (
    INSERT INTO contributors (
        id, type, name, email, email_key, wallet_address, hourly_rate, created_at, github_username, metadata
    )
    SELECT
        s.id,
        s.type,
        s.name,
        s.email,
        s.email_key,
        s.wallet_address,
        s.hourly_rate,
        s.created_at,
        s.github_username,
        s.metadata::JSONB
    FROM backfill_stage_contributors AS s
    ORDER BY s.ord
    ON CONFLICT DO NOTHING
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

-- name: merge_assets#
-- The staged assets whose id is free; total_cost starts at 0.00 and grows only with contributions.
WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_assets AS s
),

inserted AS (
    INSERT INTO assets (id, asset_type, name, description, created_at, metadata)
    SELECT
        s.id,
        s.asset_type,
        s.name,
        s.description,
        s.created_at,
        s.metadata::JSONB
    FROM backfill_stage_assets AS s
    ORDER BY s.ord
    ON CONFLICT DO NOTHING
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

-- name: merge_contributions#
-- The staged contributions whose id is free; the k-th contribution of the snapshot gets the k-th
-- seq value reserved for it (backfill_reserved_seqs: first_seq + ord - 1). First the batch's
-- contributors and assets are locked FOR KEY SHARE, as the foreign keys' own checks lock them, and
-- counted: a batch naming one PostgreSQL lacks is refused whole (backfill_require_references). The
-- insert then runs with the per-row total_cost trigger skipped (schema/011) and, when the session
-- may (set_reference_checks), with session_replication_role = replica: what that skips are the
-- foreign keys' per-row checks, which the locks above have done for the whole batch. The statement
-- adds the sum of exactly the rows it inserted to each asset, one atomic
-- `total_cost = total_cost + sum` per asset.
SELECT set_config('coherence_sql.set_based_aggregates', 'on', true);

WITH wanted AS (
    SELECT DISTINCT s.contributor_id AS id
    FROM backfill_stage_contributions AS s
),

locked AS (
    SELECT c.id
    FROM contributors AS c
    WHERE c.id IN (SELECT w.id FROM wanted AS w)
    FOR KEY SHARE OF c
)

SELECT backfill_require_references('contributors', (SELECT count(*) FROM wanted), (SELECT count(*) FROM locked));

WITH wanted AS (
    SELECT DISTINCT s.asset_id AS id
    FROM backfill_stage_contributions AS s
),

locked AS (
    SELECT a.id
    FROM assets AS a
    WHERE a.id IN (SELECT w.id FROM wanted AS w)
    FOR KEY SHARE OF a
)

SELECT backfill_require_references('assets', (SELECT count(*) FROM wanted), (SELECT count(*) FROM locked));

SELECT set_config('session_replication_role', 'replica', true)
WHERE current_setting('coherence_sql.backfill_references_per_batch', true) = 'on';

WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_contributions AS s
),

reserved AS (
    SELECT r.first_seq
    FROM backfill_reserved_seqs AS r
    WHERE r.snapshot_sha256 = current_setting('coherence_sql.backfill_snapshot')
),

inserted AS (
    INSERT INTO contributions (seq, id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp)
    OVERRIDING SYSTEM VALUE
    SELECT
        (SELECT r.first_seq FROM reserved AS r) + s.ord - 1 AS seq,
        s.id,
        s.contributor_id,
        s.asset_id,
        s.cost_amount::NUMERIC,
        s.coherence_score::NUMERIC,
        s.metadata::JSONB,
        s.timestamp
    FROM backfill_stage_contributions AS s
    ORDER BY s.ord
    ON CONFLICT DO NOTHING
    RETURNING asset_id, cost_amount
),

added AS (
    SELECT
        i.asset_id,
        sum(i.cost_amount) AS cost
    FROM inserted AS i
    GROUP BY i.asset_id
),

totals AS (
    UPDATE assets AS a
    SET
        total_cost = a.total_cost + d.cost,
        updated_at = now()
    FROM added AS d
    WHERE a.id = d.asset_id
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

SELECT set_config('session_replication_role', 'origin', true)
WHERE current_setting('coherence_sql.backfill_references_per_batch', true) = 'on';

SELECT set_config('coherence_sql.set_based_aggregates', 'off', true);

-- name: merge_projects#
-- The staged projects whose key is free. Their keys' locks are taken first, in the global order
-- record_dependency uses. The projects' INSERT triggers are skipped (schema/019) and their work done
-- for the batch: each new row's dependency_count is its pending out-degree, joined into the INSERT;
-- then, as the AFTER trigger does once the statement's rows exist, the pending edges touching the
-- batch's keys whose two projects now exist move to project_dependencies, under the resolution lock,
-- with the count triggers firing. A staged key that existed before has no such edge (a pending edge
-- has a missing end), so resolving every staged key is resolving the inserted ones.
SELECT count(l.locked) AS locked
FROM (
    SELECT lock_project_key(k.ecosystem, k.name) AS locked
    FROM (
        SELECT DISTINCT
            s.ecosystem,
            s.name
        FROM backfill_stage_projects AS s
    ) AS k
    ORDER BY k.ecosystem || '/' || k.name
) AS l;

SELECT set_config('coherence_sql.set_based_aggregates', 'on', true);

WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_projects AS s
),

pending_out AS (
    SELECT
        q.from_ecosystem,
        q.from_name,
        count(*) AS edges
    FROM pending_dependencies AS q
    INNER JOIN backfill_stage_projects AS s ON q.from_ecosystem = s.ecosystem AND q.from_name = s.name
    GROUP BY q.from_ecosystem, q.from_name
),

inserted AS (
    INSERT INTO projects (
        ecosystem,
        name,
        display_ecosystem,
        display_name,
        version,
        description,
        homepage_url,
        repository_url,
        dependency_count
    )
    SELECT
        s.ecosystem,
        s.name,
        s.display_ecosystem,
        s.display_name,
        s.version,
        s.description,
        s.homepage_url,
        s.repository_url,
        coalesce(o.edges, 0) AS dependency_count
    FROM backfill_stage_projects AS s
    LEFT JOIN pending_out AS o ON s.ecosystem = o.from_ecosystem AND s.name = o.from_name
    ORDER BY s.ord
    ON CONFLICT (ecosystem, name) DO NOTHING
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

SELECT set_config('coherence_sql.set_based_aggregates', 'off', true);

SELECT lock_pending_resolution() AS locked
WHERE
    EXISTS (
        SELECT 1
        FROM pending_dependencies AS q
        INNER JOIN backfill_stage_projects AS s ON q.from_ecosystem = s.ecosystem AND q.from_name = s.name
    )
    OR EXISTS (
        SELECT 1
        FROM pending_dependencies AS q
        INNER JOIN backfill_stage_projects AS s ON q.to_ecosystem = s.ecosystem AND q.to_name = s.name
    );

WITH touched AS (
    SELECT q.id
    FROM pending_dependencies AS q
    INNER JOIN backfill_stage_projects AS s ON q.from_ecosystem = s.ecosystem AND q.from_name = s.name
    UNION
    SELECT q.id
    FROM pending_dependencies AS q
    INNER JOIN backfill_stage_projects AS s ON q.to_ecosystem = s.ecosystem AND q.to_name = s.name
),

moved AS (
    DELETE FROM pending_dependencies AS q
    WHERE
        q.id IN (SELECT t.id FROM touched AS t)
        AND EXISTS (
            SELECT 1 FROM projects AS f
            WHERE f.ecosystem = q.from_ecosystem AND f.name = q.from_name
        )
        AND EXISTS (
            SELECT 1 FROM projects AS t
            WHERE t.ecosystem = q.to_ecosystem AND t.name = q.to_name
        )
    RETURNING q.id, q.from_ecosystem, q.from_name, q.to_ecosystem, q.to_name, q.created_at
)

INSERT INTO project_dependencies (from_project_id, to_project_id, created_at)
SELECT
    f.id AS from_project_id,
    t.id AS to_project_id,
    m.created_at
FROM moved AS m
INNER JOIN projects AS f ON m.from_ecosystem = f.ecosystem AND m.from_name = f.name
INNER JOIN projects AS t ON m.to_ecosystem = t.ecosystem AND m.to_name = t.name
ORDER BY m.id
ON CONFLICT (from_project_id, to_project_id) DO NOTHING;

-- name: merge_edges#
-- The staged edges. Those whose projects both exist go straight into project_dependencies with the
-- per-row count trigger skipped and each source's dependency_count raised once by its new edges;
-- the projects they join are locked FOR KEY SHARE in that statement, as the foreign keys' checks
-- lock them, so with session_replication_role = replica (set_reference_checks) the checks
-- themselves are skipped. The rest go through record_dependency() (pending until both exist) with
-- every trigger firing, every key they touch locked first in the one global order, as
-- PostgresGraphStore.add_dependencies does: no deadlocks.
SELECT set_config('coherence_sql.set_based_aggregates', 'on', true);

SELECT set_config('session_replication_role', 'replica', true)
WHERE current_setting('coherence_sql.backfill_references_per_batch', true) = 'on';

WITH inserted AS (
    INSERT INTO project_dependencies (from_project_id, to_project_id)
    SELECT
        f.id AS from_project_id,
        t.id AS to_project_id
    FROM backfill_stage_edges AS s
    INNER JOIN projects AS f ON s.from_ecosystem = f.ecosystem AND s.from_name = f.name
    INNER JOIN projects AS t ON s.to_ecosystem = t.ecosystem AND s.to_name = t.name
    ORDER BY s.ord
    FOR KEY SHARE OF f, t
    ON CONFLICT (from_project_id, to_project_id) DO NOTHING
    RETURNING from_project_id
),

added AS (
    SELECT
        i.from_project_id,
        count(*) AS edges
    FROM inserted AS i
    GROUP BY i.from_project_id
),

counts AS (
    UPDATE projects AS p
    SET dependency_count = p.dependency_count + d.edges
    FROM added AS d
    WHERE p.id = d.from_project_id
    RETURNING 1 AS one
)

INSERT INTO backfill_stage_added (added)
SELECT count(*) FROM inserted;

SELECT set_config('session_replication_role', 'origin', true)
WHERE current_setting('coherence_sql.backfill_references_per_batch', true) = 'on';

SELECT set_config('coherence_sql.set_based_aggregates', 'off', true);

WITH unresolved AS (
    SELECT
        s.from_ecosystem,
        s.from_name,
        s.to_ecosystem,
        s.to_name
    FROM backfill_stage_edges AS s
    WHERE
        NOT (
            EXISTS (
                SELECT 1 FROM projects AS f
                WHERE f.ecosystem = s.from_ecosystem AND f.name = s.from_name
            )
            AND EXISTS (
                SELECT 1 FROM projects AS t
                WHERE t.ecosystem = s.to_ecosystem AND t.name = s.to_name
            )
        )
)

SELECT count(l.locked) AS locked
FROM (
    SELECT lock_project_key(k.ecosystem, k.name) AS locked
    FROM (
        SELECT
            u.from_ecosystem AS ecosystem,
            u.from_name AS name
        FROM unresolved AS u
        UNION
        SELECT
            u.to_ecosystem,
            u.to_name
        FROM unresolved AS u
    ) AS k
    ORDER BY k.ecosystem || '/' || k.name
) AS l;

INSERT INTO backfill_stage_added (added)
SELECT count(*) FILTER (WHERE r.added)
FROM (
    SELECT record_dependency(s.from_ecosystem, s.from_name, s.to_ecosystem, s.to_name) AS added
    FROM backfill_stage_edges AS s
    WHERE
        NOT (
            EXISTS (
                SELECT 1 FROM projects AS f
                WHERE f.ecosystem = s.from_ecosystem AND f.name = s.from_name
            )
            AND EXISTS (
                SELECT 1 FROM projects AS t
                WHERE t.ecosystem = s.to_ecosystem AND t.name = s.to_name
            )
        )
    ORDER BY s.ord
) AS r;

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT coalesce(sum(a.added), 0)::BIGINT FROM backfill_stage_added AS a)
    )
FROM (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_edges AS s
) AS b;

-- name: project_ids(ecosystems, names)
-- The ids of the projects with these keys (the i-th key is number i - 1); a key PostgreSQL lacks
-- has no row. Read once per run, after the projects section, for merge_edges_by_id.
SELECT
    p.id AS "id!",
    (k.number - 1)::INTEGER AS "number!"
FROM unnest(:ecosystems::TEXT[], :names::TEXT[]) WITH ORDINALITY AS k (ecosystem, name, number)
INNER JOIN projects AS p ON k.ecosystem = p.ecosystem AND k.name = p.name;

-- name: merge_edges_by_id#
-- The staged edges whose two projects the snapshot has, by project id (read once per run with
-- project_ids): one insert with no key joins. The batch's projects are locked FOR KEY SHARE first,
-- once each, as the foreign keys' checks lock them, and counted: a batch naming a project that is
-- gone is refused whole (backfill_require_references). Then, as in merge_edges, the insert runs with
-- the per-row count trigger skipped and, when the session may, session_replication_role = replica
-- (the foreign keys' per-row checks, which the locks above have done); each source's
-- dependency_count is raised once by its new edges.
SELECT set_config('coherence_sql.set_based_aggregates', 'on', true);

WITH wanted AS (
    SELECT s.from_id AS id
    FROM backfill_stage_edge_ids AS s
    UNION
    SELECT s.to_id
    FROM backfill_stage_edge_ids AS s
),

locked AS (
    SELECT p.id
    FROM projects AS p
    WHERE p.id IN (SELECT w.id FROM wanted AS w)
    FOR KEY SHARE OF p
)

SELECT backfill_require_references('projects', (SELECT count(*) FROM wanted), (SELECT count(*) FROM locked));

SELECT set_config('session_replication_role', 'replica', true)
WHERE current_setting('coherence_sql.backfill_references_per_batch', true) = 'on';

WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_edge_ids AS s
),

inserted AS (
    INSERT INTO project_dependencies (from_project_id, to_project_id)
    SELECT
        s.from_id,
        s.to_id
    FROM backfill_stage_edge_ids AS s
    ORDER BY s.ord
    ON CONFLICT (from_project_id, to_project_id) DO NOTHING
    RETURNING from_project_id
),

added AS (
    SELECT
        i.from_project_id,
        count(*) AS edges
    FROM inserted AS i
    GROUP BY i.from_project_id
),

counts AS (
    UPDATE projects AS p
    SET dependency_count = p.dependency_count + d.edges
    FROM added AS d
    WHERE p.id = d.from_project_id
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

SELECT set_config('session_replication_role', 'origin', true)
WHERE current_setting('coherence_sql.backfill_references_per_batch', true) = 'on';

SELECT set_config('coherence_sql.set_based_aggregates', 'off', true);

-- name: merge_github_contributors#
-- The staged GitHub contributors whose id is free.
WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_github_contributors AS s
),

inserted AS (
    INSERT INTO github_contributors (id, source, login, name, avatar_url, contributions_count, created_at, updated_at)
    SELECT
        s.id,
        s.source,
        s.login,
        s.name,
        s.avatar_url,
        s.contributions_count,
        s.created_at,
        s.updated_at
    FROM backfill_stage_github_contributors AS s
    ORDER BY s.ord
    ON CONFLICT DO NOTHING
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

-- name: merge_github_organizations#
-- The staged GitHub organizations whose id is free.
WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_github_organizations AS s
),

inserted AS (
    INSERT INTO github_organizations (id, login, type, name, avatar_url, created_at, updated_at)
    SELECT
        s.id,
        s.login,
        s.type,
        s.name,
        s.avatar_url,
        s.created_at,
        s.updated_at
    FROM backfill_stage_github_organizations AS s
    ORDER BY s.ord
    ON CONFLICT DO NOTHING
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

-- name: merge_contributes_to#
-- The staged contributes-to edges not recorded yet.
WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_contributes_to AS s
),

inserted AS (
    INSERT INTO github_contributes_to (contributor_id, ecosystem, name)
    SELECT
        s.contributor_id,
        s.ecosystem,
        s.name
    FROM backfill_stage_contributes_to AS s
    ORDER BY s.ord
    ON CONFLICT DO NOTHING
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

-- name: merge_agent_tasks#
-- The staged agent tasks whose id is free.
WITH batch AS (
    SELECT
        max(s.ord) AS done_through,
        count(*) AS staged
    FROM backfill_stage_agent_tasks AS s
),

inserted AS (
    INSERT INTO agent_tasks (
        id, direction, task_type, status, model, command, tier, context, output, progress_pct,
        current_step, decision_prompt, decision, started_at, created_at, updated_at, claimed_by, claimed_at
    )
    SELECT
        s.id,
        s.direction,
        s.task_type::task_type,
        s.status::task_status,
        s.model,
        s.command,
        s.tier,
        s.context::JSONB,
        s.output,
        s.progress_pct,
        s.current_step,
        s.decision_prompt,
        s.decision,
        s.started_at,
        s.created_at,
        s.updated_at,
        s.claimed_by,
        s.claimed_at
    FROM backfill_stage_agent_tasks AS s
    ORDER BY s.ord
    ON CONFLICT DO NOTHING
    RETURNING 1 AS one
)

SELECT
    record_backfill_batch(
        current_setting('coherence_sql.backfill_snapshot'),
        current_setting('coherence_sql.backfill_unit'),
        b.done_through,
        b.staged,
        (SELECT count(*) FROM inserted)
    )
FROM batch AS b;

-- name: analyze_contributors#
-- Statistics for a freshly filled parent table, before the sections that join against it.
ANALYZE contributors;

-- name: analyze_assets#
-- Statistics for a freshly filled parent table, before the sections that join against it.
ANALYZE assets;

-- name: analyze_projects#
-- Statistics for a freshly filled parent table, before the sections that join against it.
ANALYZE projects;

-- name: vacuum_projects#
-- After a bulk load (docs/decisions.md): flush the trigram indexes' pending lists, refresh statistics.
VACUUM (ANALYZE) projects, project_dependencies, pending_dependencies;

-- name: analyze_contributions#
-- After a bulk load: statistics of the money tables (insert-only: autovacuum sets the visibility map).
ANALYZE contributors, assets, contributions;

-- name: analyze_github#
-- After a bulk load: statistics of the GitHub tables.
ANALYZE github_contributors, github_organizations, github_contributes_to;

-- name: analyze_agent_tasks#
-- After a bulk load: statistics of the agent tasks.
ANALYZE agent_tasks;
