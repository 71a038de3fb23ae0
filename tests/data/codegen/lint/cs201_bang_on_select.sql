-- name: project_by_id(id)!
SELECT name
FROM projects
WHERE id = :id;
