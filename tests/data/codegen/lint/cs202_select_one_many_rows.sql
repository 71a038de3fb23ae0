-- name: project_in(ecosystem)^
-- ecosystem alone is not unique: (ecosystem, name) is.
SELECT id, name
FROM projects
WHERE ecosystem = :ecosystem;
