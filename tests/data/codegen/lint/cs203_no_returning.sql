-- name: rename(id, version)
UPDATE projects SET version = :version
WHERE id = :id;
