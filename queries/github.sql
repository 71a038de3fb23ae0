-- GitHub contributors, organizations and "contributor works on project" edges (GraphStore).
-- An upsert replaces every field but keeps the row's insertion position (seq), as the API's dict does.

-- name: upsert_github_contributor(id, source, login, name, avatar_url, contributions_count, created_at, updated_at)<!
-- Insert or replace one GitHub contributor.
-- row: GithubContributorRow
-- nullable: name, avatar_url, updated_at
INSERT INTO github_contributors (id, source, login, name, avatar_url, contributions_count, created_at, updated_at)
VALUES (:id, :source, :login, :name, :avatar_url, :contributions_count, :created_at, :updated_at)
ON CONFLICT (id) DO UPDATE
    SET
        source = excluded.source,
        login = excluded.login,
        name = excluded.name,
        avatar_url = excluded.avatar_url,
        contributions_count = excluded.contributions_count,
        created_at = excluded.created_at,
        updated_at = excluded.updated_at
RETURNING id, source, login, name, avatar_url, contributions_count, created_at, updated_at;

-- name: get_github_contributor(id)^
-- One GitHub contributor by its exact id ("github:<login>").
SELECT
    g.id,
    g.source,
    g.login,
    g.name,
    g.avatar_url,
    g.contributions_count,
    g.created_at,
    g.updated_at
FROM github_contributors AS g
WHERE g.id = :id;

-- name: list_github_contributors(lim)
-- Newest first; ties in insertion order.
SELECT
    g.id,
    g.source,
    g.login,
    g.name,
    g.avatar_url,
    g.contributions_count,
    g.created_at,
    g.updated_at
FROM github_contributors AS g
ORDER BY g.created_at DESC, g.seq ASC
LIMIT :lim;

-- name: upsert_github_organization(id, login, type, name, avatar_url, created_at, updated_at)<!
-- Insert or replace one GitHub organization.
-- row: GithubOrganizationRow
-- nullable: name, avatar_url, updated_at
INSERT INTO github_organizations (id, login, type, name, avatar_url, created_at, updated_at)
VALUES (:id, :login, :type, :name, :avatar_url, :created_at, :updated_at)
ON CONFLICT (id) DO UPDATE
    SET
        login = excluded.login,
        type = excluded.type,
        name = excluded.name,
        avatar_url = excluded.avatar_url,
        created_at = excluded.created_at,
        updated_at = excluded.updated_at
RETURNING id, login, type, name, avatar_url, created_at, updated_at;

-- name: get_github_organization(id)^
-- One GitHub organization by its exact id.
SELECT
    o.id,
    o.login,
    o.type,
    o.name,
    o.avatar_url,
    o.created_at,
    o.updated_at
FROM github_organizations AS o
WHERE o.id = :id;

-- name: add_github_contributes_to(contributor_id, ecosystem, name)!
-- Record "contributor works on project" by project key; a repeat is a no-op (0 rows).
INSERT INTO github_contributes_to (contributor_id, ecosystem, name)
VALUES (:contributor_id, :ecosystem, :name)
ON CONFLICT ON CONSTRAINT github_contributes_to_pkey DO NOTHING;

-- name: get_project_github_contributors(ecosystem, name)
-- The known GitHub contributors of a project key, in edge insertion order; unknown ids are skipped.
SELECT
    g.id,
    g.source,
    g.login,
    g.name,
    g.avatar_url,
    g.contributions_count,
    g.created_at,
    g.updated_at
FROM (
    SELECT
        e.contributor_id,
        e.seq
    FROM github_contributes_to AS e
    WHERE e.ecosystem = :ecosystem AND e.name = :name
) AS w
INNER JOIN github_contributors AS g ON w.contributor_id = g.id
ORDER BY w.seq;

-- name: scan_github_contributors(after, lim)
-- Keyset page of every GitHub contributor in insertion order (seq > after).
SELECT
    g.seq,
    g.id,
    g.source,
    g.login,
    g.name,
    g.avatar_url,
    g.contributions_count,
    g.created_at,
    g.updated_at
FROM github_contributors AS g
WHERE g.seq > :after
ORDER BY g.seq
LIMIT :lim;

-- name: scan_github_organizations(after, lim)
-- Keyset page of every GitHub organization in insertion order (seq > after).
SELECT
    o.seq,
    o.id,
    o.login,
    o.type,
    o.name,
    o.avatar_url,
    o.created_at,
    o.updated_at
FROM github_organizations AS o
WHERE o.seq > :after
ORDER BY o.seq
LIMIT :lim;
