-- Every form the lint must accept.

-- name: by_id(id)^
-- A primary key lookup (casts on parameters are fine: :id::int).
SELECT name, description
FROM projects AS p
WHERE p.id = :id::int;

-- name: by_key(ecosystem, name)^
-- Every column of a composite unique key, in any order.
SELECT id
FROM projects
WHERE name = :name AND ecosystem = :ecosystem;

-- name: newest()^
SELECT id
FROM projects
ORDER BY created_at DESC
LIMIT 1;

-- name: totals()^
SELECT
    count(*) AS "projects!",
    max(dependency_count) AS deepest
FROM projects;

-- name: rename(id, version)^
UPDATE projects SET version = :version
WHERE id = :id
RETURNING id, version;

-- name: with_cte(ecosystem)^
WITH picked AS (
    SELECT id FROM projects WHERE ecosystem = :ecosystem
)
SELECT count(*) AS "n!"
FROM picked;

-- name: by_email(email_key)^
-- Equality on a unique column counts as a key.
SELECT id
FROM contributors AS c
WHERE c.email_key = :email_key;

-- name: with_dependency(id)^
-- A join the lint cannot prove returns one row; the author says it does.
-- noqa: CS202
SELECT
    p.id,
    d.to_project_id
FROM projects AS p
INNER JOIN project_dependencies AS d ON p.id = d.from_project_id
WHERE d.id = :id;

-- name: slices(n)
-- A bound from a parameter is fine ([:n]); so is a slice with spaces ([1 : 2]).
SELECT
    (array_agg(name ORDER BY id))[:n] AS firsts,
    (array_agg(name ORDER BY id))[1 : 2] AS first_two
FROM projects;

-- name: bump(id)!
-- Note: a colon followed by a space in a comment is harmless: like this.
UPDATE projects SET dependency_count = dependency_count + 1 -- note: counted twice?
WHERE id = :id;

-- name: reset#
DO $$
DECLARE
    n integer := 0;
BEGIN
    n := n + 1;
END
$$;

-- name: add_many(id, version)*!
UPDATE projects SET version = :version WHERE id = :id;

-- name: insert_one(ecosystem, name)<!
INSERT INTO projects (ecosystem, name, display_ecosystem, display_name, version)
VALUES (:ecosystem, :name, :ecosystem, :name, '1')
RETURNING id;

-- name: quoted()$
SELECT ':not_a_param' || "name" AS ":nor_this"
FROM projects
LIMIT 1;
