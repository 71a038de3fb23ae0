-- name: project_name(id)$
SELECT name
FROM projects
WHERE id = :id; -- the key, e.g.:id_of_project
