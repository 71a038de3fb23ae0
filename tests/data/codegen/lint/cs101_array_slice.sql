-- name: first_two_tags(id)^
SELECT tags[1:2] AS first_two
FROM projects
WHERE id = :id;
