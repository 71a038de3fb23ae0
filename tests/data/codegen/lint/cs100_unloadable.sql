-- name: 2nd_project()^
SELECT id
FROM projects
ORDER BY id
LIMIT 1 OFFSET 1;
