-- name: project_count$
SELECT count(*) AS "total!"
FROM projects;
