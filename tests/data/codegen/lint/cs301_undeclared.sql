-- name: project_by_key(ecosystem)^
SELECT id
FROM projects
WHERE ecosystem = :ecosystem AND name = :name;
