-- name: projects_of(ecosystem, lim)
SELECT id
FROM projects
WHERE ecosystem = :ecosystem
ORDER BY id;
