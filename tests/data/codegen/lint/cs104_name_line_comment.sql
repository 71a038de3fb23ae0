-- name: project_count()$ -- noqa: LT01
SELECT count(*) AS "total!"
FROM projects;
