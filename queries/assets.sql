-- Assets (GraphStore): create, get, list newest first, bulk load, scans.
-- total_cost is written only by the contribution trigger (schema/001), never by these queries.

-- name: get_asset(id)^
-- One asset by id.
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

-- name: upsert_assets(ids, types, names, descriptions, created_ats, metadatas)!
-- Bulk load in array order; an existing id is replaced in place, its total_cost kept.
INSERT INTO assets (id, asset_type, name, description, created_at, metadata)
SELECT
    u.id,
    u.asset_type,
    u.name,
    u.description,
    u.created_at,
    u.metadata
FROM
    unnest(
        :ids::uuid[],
        :types::text[],
        :names::text[],
        :descriptions::text[],
        :created_ats::timestamptz[],
        :metadatas::jsonb[]
    ) WITH ORDINALITY AS u (id, asset_type, name, description, created_at, metadata, ord)
ORDER BY u.ord
ON CONFLICT (id) DO UPDATE SET
    asset_type = excluded.asset_type,
    name = excluded.name,
    description = excluded.description,
    created_at = excluded.created_at,
    metadata = excluded.metadata,
    updated_at = now();

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

-- name: digest_assets(after, lim)
-- Keyset page of (id, md5 of the canonical row text) by id, for consistency checks.
SELECT
    a.id,
    md5(
        jsonb_build_array(
            a.id::text,
            a.asset_type,
            a.name,
            a.description,
            a.total_cost::text,
            to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
            a.metadata
        )::text
    ) AS "digest!"
FROM assets AS a
WHERE a.id > :after
ORDER BY a.id
LIMIT :lim;
