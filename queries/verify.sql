-- Whole-table reads for verification and the phase-3 export (coherence_sql.transfer.postgres_reader):
-- keyset pages in insertion order (id or seq > after), every column the API's models carry, and the
-- one invariant no snapshot can show (pending edges the database could resolve). Tables whose
-- table-group file already has such a scan (projects, contributors, assets, contributions, GitHub) use it.

-- name: scan_resolved_edges(after, lim)
-- Edges between two indexed projects, by key, in insertion order.
-- row: DependencyEdgeRow
-- alias: ScanResolvedEdgesRow
WITH page AS (
    SELECT
        d.id,
        d.from_project_id,
        d.to_project_id,
        d.created_at
    FROM project_dependencies AS d
    WHERE d.id > :after
    ORDER BY d.id
    LIMIT :lim
)

SELECT
    page.id,
    f.ecosystem AS from_ecosystem,
    f.name AS from_name,
    t.ecosystem AS to_ecosystem,
    t.name AS to_name,
    page.created_at
FROM page
INNER JOIN projects AS f ON page.from_project_id = f.id
INNER JOIN projects AS t ON page.to_project_id = t.id
ORDER BY page.id;

-- name: scan_pending_edges(after, lim)
-- Edges with an endpoint not indexed yet, by key, in insertion order.
-- alias: ScanPendingEdgesRow
SELECT
    q.id,
    q.from_ecosystem,
    q.from_name,
    q.to_ecosystem,
    q.to_name,
    q.created_at
FROM pending_dependencies AS q
WHERE q.id > :after
ORDER BY q.id
LIMIT :lim;

-- name: scan_contributes_to(after, lim)
-- "GitHub contributor works on project" edges in insertion order.
SELECT
    w.seq,
    w.contributor_id,
    w.ecosystem,
    w.name
FROM github_contributes_to AS w
WHERE w.seq > :after
ORDER BY w.seq
LIMIT :lim;

-- name: scan_agent_tasks(after, lim)
-- Agent tasks in insertion order, every column.
SELECT
    t.seq,
    t.id,
    t.direction,
    t.task_type,
    t.status,
    t.model,
    t.command,
    t.tier,
    t.context,
    t.output,
    t.progress_pct,
    t.current_step,
    t.decision_prompt,
    t.decision,
    t.started_at,
    t.created_at,
    t.updated_at,
    t.claimed_by,
    t.claimed_at
FROM agent_tasks AS t
WHERE t.seq > :after
ORDER BY t.seq
LIMIT :lim;

-- name: resolvable_pending_edges()
-- Pending edges whose two projects both exist: they should have moved into project_dependencies.
SELECT
    q.from_ecosystem,
    q.from_name,
    q.to_ecosystem,
    q.to_name
FROM pending_dependencies AS q
WHERE
    EXISTS (
        SELECT 1 FROM projects AS f
        WHERE f.ecosystem = q.from_ecosystem AND f.name = q.from_name
    )
    AND EXISTS (
        SELECT 1 FROM projects AS t
        WHERE t.ecosystem = q.to_ecosystem AND t.name = q.to_name
    )
ORDER BY q.id;

-- name: scan_resolved_edges_by_time(after_at, after_id, lim)
-- Edges between two indexed projects in the order they were recorded (created_at, then id): the
-- phase-3 export's order, in keyset pages, merged with the pending edges' pages by the export.
-- alias: ScanResolvedEdgesByTimeRow
WITH page AS (
    SELECT
        d.id,
        d.from_project_id,
        d.to_project_id,
        d.created_at
    FROM project_dependencies AS d
    WHERE (d.created_at, d.id) > (:after_at::TIMESTAMPTZ, :after_id::INTEGER)
    ORDER BY d.created_at, d.id
    LIMIT :lim
)

SELECT
    page.id,
    f.ecosystem AS from_ecosystem,
    f.name AS from_name,
    t.ecosystem AS to_ecosystem,
    t.name AS to_name,
    page.created_at
FROM page
INNER JOIN projects AS f ON page.from_project_id = f.id
INNER JOIN projects AS t ON page.to_project_id = t.id
ORDER BY page.created_at, page.id;

-- name: scan_pending_edges_by_time(after_at, after_id, lim)
-- Edges with an endpoint not indexed yet, in the order they were recorded (created_at, then id).
-- alias: ScanPendingEdgesByTimeRow
SELECT
    q.id,
    q.from_ecosystem,
    q.from_name,
    q.to_ecosystem,
    q.to_name,
    q.created_at
FROM pending_dependencies AS q
WHERE (q.created_at, q.id) > (:after_at::TIMESTAMPTZ, :after_id::BIGINT)
ORDER BY q.created_at, q.id
LIMIT :lim;
