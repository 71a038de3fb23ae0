-- Projects and the dependency graph (GraphStore: projects, edges, search, counts, bulk loads).
-- Keys (ecosystem, name) are lower-cased in Python (rules.project_key); display_* keep the
-- caller's spelling. Edges go through record_dependency() so that edges to projects not yet
-- indexed are kept in pending_dependencies (schema/002_api_contract.sql).

-- name: get_project(ecosystem, name)^
-- One project by its lower-case key, in its display spelling.
-- row: ProjectRow
SELECT
    p.display_ecosystem AS ecosystem,
    p.display_name AS name,
    p.version,
    p.dependency_count,
    p.homepage_url,
    p.repository_url,
    coalesce(p.description, '') AS "description!"
FROM projects AS p
WHERE p.ecosystem = :ecosystem AND p.name = :name;

-- name: search_projects(query, pattern, lim)
-- Projects whose key name or description contains the query, ranked as decision 8 says.
-- query is the Python-lowered text, pattern its rules.like_pattern; both trigram indexes serve it.
SELECT
    p.display_name AS name,
    p.display_ecosystem AS ecosystem,
    coalesce(p.description, '') AS "description!"
FROM projects AS p
WHERE p.name LIKE :pattern::text OR p.description ILIKE :pattern::text
ORDER BY
    CASE
        WHEN p.name = :query::text THEN 0
        WHEN starts_with(p.name, :query::text) THEN 1
        WHEN strpos(p.name, :query::text) > 0 THEN 2
        ELSE 3
    END,
    p.id
LIMIT :lim;

-- name: upsert_project(ecosystem, name, display_ecosystem, display_name, version, description, homepage_url, repository_url)!
-- Insert or replace one project; the key keeps its first insertion position (id) and its count.
-- The key's lock is taken before the row is written, as record_dependency takes it (no deadlock).
-- nullable: homepage_url, repository_url
WITH key_lock AS MATERIALIZED (
    SELECT lock_project_key(:ecosystem::text, :name::text) AS locked
)

INSERT INTO projects (
    ecosystem, name, display_ecosystem, display_name, version, description, homepage_url, repository_url
)
SELECT
    :ecosystem::text,
    :name::text,
    :display_ecosystem::text,
    :display_name::text,
    :version::text,
    :description::text,
    :homepage_url::text,
    :repository_url::text
FROM key_lock
ON CONFLICT (ecosystem, name) DO UPDATE SET
    display_ecosystem = excluded.display_ecosystem,
    display_name = excluded.display_name,
    version = excluded.version,
    description = excluded.description,
    homepage_url = excluded.homepage_url,
    repository_url = excluded.repository_url,
    updated_at = now();

-- name: upsert_projects(ecosystems, names, display_ecosystems, display_names, versions, descriptions, homepage_urls, repository_urls)!
-- Bulk upsert_project, rows written in array order; keys must be unique within one call. Run it
-- after lock_project_keys for the same keys, in the same transaction.
-- nullable: homepage_urls[], repository_urls[]
INSERT INTO projects (
    ecosystem, name, display_ecosystem, display_name, version, description, homepage_url, repository_url
)
SELECT
    u.ecosystem,
    u.name,
    u.display_ecosystem,
    u.display_name,
    u.version,
    u.description,
    u.homepage_url,
    u.repository_url
FROM
    unnest(
        :ecosystems::text[],
        :names::text[],
        :display_ecosystems::text[],
        :display_names::text[],
        :versions::text[],
        :descriptions::text[],
        :homepage_urls::text[],
        :repository_urls::text[]
    ) WITH ORDINALITY
        AS u (
            ecosystem, name, display_ecosystem, display_name, version, description, homepage_url, repository_url, ord
        )
ORDER BY u.ord
ON CONFLICT (ecosystem, name) DO UPDATE SET
    display_ecosystem = excluded.display_ecosystem,
    display_name = excluded.display_name,
    version = excluded.version,
    description = excluded.description,
    homepage_url = excluded.homepage_url,
    repository_url = excluded.repository_url,
    updated_at = now();

-- name: lock_project_keys(ecosystems, names)$
-- Take the per-key transaction locks of a batch in one global order (see docs/decisions.md).
SELECT count(k.locked) AS "locked!"
FROM (
    SELECT lock_project_key(u.ecosystem, u.name) AS locked
    FROM unnest(:ecosystems::text[], :names::text[]) AS u (ecosystem, name)
    ORDER BY u.ecosystem || '/' || u.name
) AS k;

-- name: lock_all_project_keys()$
-- A bulk write's one lock in place of one per key (schema/016): every other writer of project keys
-- waits until this transaction ends, and its own triggers and record_dependency() skip key locks.
SELECT count(l.locked) AS "locked!"
FROM (SELECT lock_all_project_keys() AS locked) AS l;

-- name: lock_pending_resolution_for(ecosystems, names)$
-- Before a bulk upsert writes, after lock_project_keys (so no pending edge on these keys can appear
-- meanwhile): take the pending-resolution lock when a pending edge touches one of the batch's keys.
-- Its inserts would take it in their triggers anyway, but only after its updates had locked rows a
-- resolver holding it may need (schema/015): taken first, it orders like every other writer.
SELECT count(*) > 0 AS "taken!"
FROM (
    SELECT lock_pending_resolution() AS locked
    WHERE
        EXISTS (
            SELECT 1
            FROM pending_dependencies AS q
            INNER JOIN unnest(:ecosystems::text[], :names::text[]) AS u (ecosystem, name)
                ON q.from_ecosystem = u.ecosystem AND q.from_name = u.name
        )
        OR EXISTS (
            SELECT 1
            FROM pending_dependencies AS q
            INNER JOIN unnest(:ecosystems::text[], :names::text[]) AS u (ecosystem, name)
                ON q.to_ecosystem = u.ecosystem AND q.to_name = u.name
        )
) AS l;

-- name: add_dependency(from_ecosystem, from_name, to_ecosystem, to_name)$
-- Record "from depends on to" by key; true when the edge is new.
SELECT record_dependency(:from_ecosystem, :from_name, :to_ecosystem, :to_name) AS "added!";

-- name: add_dependencies(from_ecosystems, from_names, to_ecosystems, to_names)$
-- Bulk add_dependency in array order; returns how many edges were new.
SELECT count(*) FILTER (WHERE r.added) AS "added!"
FROM (
    SELECT record_dependency(e.from_ecosystem, e.from_name, e.to_ecosystem, e.to_name) AS added
    FROM
        unnest(
            :from_ecosystems::text[], :from_names::text[], :to_ecosystems::text[], :to_names::text[]
        ) WITH ORDINALITY AS e (from_ecosystem, from_name, to_ecosystem, to_name, ord)
    ORDER BY e.ord
) AS r;

-- name: count_projects()$
-- How many projects are indexed.
SELECT count(*) AS "total!"
FROM projects;

-- name: count_dependents(ecosystem, name)$
-- How many edges point at this key, pending edges (from projects not indexed yet) included.
WITH target AS (
    SELECT t.id
    FROM projects AS t
    WHERE t.ecosystem = :ecosystem::text AND t.name = :name::text
),

resolved AS (
    SELECT count(*) AS n
    FROM project_dependencies AS d
    INNER JOIN target ON d.to_project_id = target.id
),

pending AS (
    SELECT count(*) AS n
    FROM pending_dependencies AS q
    WHERE q.to_ecosystem = :ecosystem::text AND q.to_name = :name::text
)

SELECT resolved.n + pending.n AS "dependents!"
FROM resolved CROSS JOIN pending;

-- name: scan_projects(after, lim)
-- Keyset page of every project in insertion order (id > after), for backfill and verification.
SELECT
    p.id,
    p.ecosystem AS ecosystem_key,
    p.name AS name_key,
    p.display_ecosystem AS ecosystem,
    p.display_name AS name,
    p.version,
    p.dependency_count,
    p.homepage_url,
    p.repository_url,
    coalesce(p.description, '') AS "description!"
FROM projects AS p
WHERE p.id > :after
ORDER BY p.id
LIMIT :lim;
