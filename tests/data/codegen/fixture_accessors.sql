-- Test fixture for the accessor generator (tests/test_codegen_*.py): every aiosql operator, and
-- the type and nullability cases the generator must get right, against the real schema.

-- name: insert_contributor(id, name, email, type, hourly_rate)<!
-- One contributor; the defaulted columns come back.
-- nullable: hourly_rate
INSERT INTO contributors (id, name, email, email_key, type, hourly_rate)
VALUES (:id, :name, :email, lower(:email::VARCHAR), :type, :hourly_rate)
RETURNING id, name, hourly_rate, metadata, created_at;

-- name: insert_contributors(id, name, email, type)*!
-- Many contributors in one executemany.
INSERT INTO contributors (id, name, email, email_key, type)
VALUES (:id, :name, :email, lower(:email::VARCHAR), :type);

-- name: count_contributors()$
SELECT count(*) AS "total!"
FROM contributors;

-- name: insert_asset(id, name, description, asset_type)<!
INSERT INTO assets (id, name, description, asset_type)
VALUES (:id, :name, :description, :asset_type)
RETURNING id, total_cost;

-- name: add_contribution(id, contributor_id, asset_id, cost_amount, coherence_score)!
INSERT INTO contributions (id, contributor_id, asset_id, cost_amount, coherence_score)
VALUES (:id, :contributor_id, :asset_id, :cost_amount, :coherence_score);

-- name: asset_contributions(asset_id)
-- The asset with each of its contributions; an asset without any still appears (RIGHT JOIN).
SELECT
    a.id AS asset_id,
    a.total_cost,
    c.id AS contribution_id,
    c.cost_amount,
    c.coherence_score,
    c."timestamp"
FROM contributions AS c
RIGHT JOIN assets AS a ON c.asset_id = a.id
WHERE a.id = :asset_id
ORDER BY c.seq;

-- name: insert_projects(ecosystems, names, descriptions)!
-- nullable: descriptions[]
INSERT INTO projects (ecosystem, name, display_ecosystem, display_name, version, description)
SELECT
    u.e,
    u.n,
    u.e,
    u.n,
    '1.0',
    u.d
FROM unnest(:ecosystems::text [], :names::text [], :descriptions::text []) AS u (e, n, d);

-- name: add_dependency(from_id, to_id)!
INSERT INTO project_dependencies (from_project_id, to_project_id)
VALUES (:from_id, :to_id);

-- name: project_ids(ecosystem)
SELECT p.id
FROM projects AS p
WHERE p.ecosystem = :ecosystem
ORDER BY p.id;

-- name: dependencies_of(ecosystem)
-- Every project with what it depends on; the dependency side of the LEFT JOINs may be missing.
SELECT
    p.id,
    p.name,
    p.description,
    d.to_project_id,
    t.name AS to_name
FROM projects AS p
LEFT JOIN project_dependencies AS d ON p.id = d.from_project_id
LEFT JOIN projects AS t ON d.to_project_id = t.id
WHERE p.ecosystem = :ecosystem
ORDER BY p.id, d.id;

-- name: ecosystem_stats()
-- Aggregates are nullable unless proven (count) or overridden (! and ?).
SELECT
    p.ecosystem,
    count(*) AS projects,
    max(p.dependency_count) AS max_dependencies,
    array_agg(p.name ORDER BY p.id) AS names,
    count(p.description) AS "described?",
    min(p.id) AS "first_id!"
FROM projects AS p
GROUP BY p.ecosystem
ORDER BY p.ecosystem;

-- name: set_version(ecosystem, version)!
UPDATE projects SET version = :version
WHERE ecosystem = :ecosystem;

-- name: rename_project(id, display_name)!
-- Breaks projects_display_matches_key unless the new name only changes case.
UPDATE projects SET display_name = :display_name
WHERE id = :id;

-- name: clear_projects#
DELETE FROM project_dependencies;
DELETE FROM projects;

-- name: insert_task(id, direction, task_type, model, command, context)<!
-- nullable: context
INSERT INTO agent_tasks (id, direction, task_type, model, command, context)
VALUES (:id, :direction, :task_type, :model, :command, :context)
RETURNING id, task_type, status, context, progress_pct;

-- name: get_task(id)^
-- row: TaskRow
-- alias: GetTaskRow
SELECT
    t.id,
    t.task_type,
    t.status,
    t.context,
    t.progress_pct,
    t.updated_at
FROM agent_tasks AS t
WHERE t.id = :id;

-- name: tasks_in(status)
-- The same columns as get_task: its row class (a NamedTuple, for the enums) is shared.
SELECT
    t.id,
    t.task_type,
    t.status,
    t.context,
    t.progress_pct,
    t.updated_at
FROM agent_tasks AS t
WHERE t.status = :status
ORDER BY t.seq;

-- name: task_statuses()$
SELECT array_agg(DISTINCT t.status ORDER BY t.status) AS statuses
FROM agent_tasks AS t;

-- name: first_status()$
SELECT t.status
FROM agent_tasks AS t
ORDER BY t.seq
LIMIT 1;

-- name: sleep(seconds)$
-- Sleeps on the server; for the timeout and cancellation tests.
SELECT true AS slept
FROM pg_sleep(:seconds);

-- name: contributor_names()
-- Two queries of one row shape share one Record class, named on either of them.
SELECT
    c.id,
    c.name
FROM contributors AS c
ORDER BY c.seq;

-- name: contributor_names_like(pattern)
-- row: ContributorNameRow
SELECT
    c.id,
    c.name
FROM contributors AS c
WHERE c.name LIKE :pattern
ORDER BY c.seq;
