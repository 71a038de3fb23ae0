-- Assets (GraphStore): create, get, list newest first, a keyset scan (verify).
-- total_cost is written only by the contribution trigger (schema/001), never by these queries.

-- name: get_asset(id)^
-- One asset by id.
-- row: AssetRow
SELECT
    a.id,
    a.asset_type AS type,
    a.name,
    a.description,
    a.total_cost,
    a.created_at,
    a.metadata
FROM assets AS a
WHERE a.id = :id;

-- name: insert_asset(id, type, name, description, created_at, metadata)<!
-- Create an asset with total_cost 0.00; an existing id is a unique violation.
INSERT INTO assets (id, asset_type, name, description, created_at, metadata)
VALUES (:id, :type, :name, :description, :created_at, :metadata)
RETURNING id, asset_type AS type, name, description, total_cost, created_at, metadata;

-- name: list_assets(lim)
-- Newest first; ties in insertion order.
SELECT
    a.id,
    a.asset_type AS type,
    a.name,
    a.description,
    a.total_cost,
    a.created_at,
    a.metadata
FROM assets AS a
ORDER BY a.created_at DESC, a.seq ASC
LIMIT :lim;

-- name: scan_assets(after, lim)
-- Keyset page of every asset in insertion order (seq > after), for backfill and verification.
SELECT
    a.seq,
    a.id,
    a.asset_type AS type,
    a.name,
    a.description,
    a.total_cost,
    a.created_at,
    a.metadata
FROM assets AS a
WHERE a.seq > :after
ORDER BY a.seq
LIMIT :lim;
