-- Contributions (GraphStore): the audit trail of costs; inserting one adds its cost to the asset's
-- total_cost in the same transaction (the plan's trigger). seq breaks timestamp ties.

-- name: contribution_references(contributor_id, asset_id)^
-- Whether the contributor and the asset a new contribution names exist.
SELECT
    exists(
        SELECT 1 FROM contributors AS c
        WHERE c.id = :contributor_id
    ) AS "contributor_exists!",
    exists(
        SELECT 1 FROM assets AS a
        WHERE a.id = :asset_id
    ) AS "asset_exists!";

-- name: insert_contribution(id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp)<!
-- Record a contribution; the asset's total_cost grows by cost_amount atomically (trigger).
INSERT INTO contributions (id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp)
VALUES (:id, :contributor_id, :asset_id, :cost_amount, :coherence_score, :metadata, :timestamp)
RETURNING id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp;

-- name: get_contribution(id)^
-- One contribution by id.
SELECT
    c.id,
    c.contributor_id,
    c.asset_id,
    c.cost_amount,
    c.coherence_score,
    c.metadata,
    c.timestamp
FROM contributions AS c
WHERE c.id = :id;

-- name: list_contributions(lim)
-- Newest first; ties in insertion order.
SELECT
    c.id,
    c.contributor_id,
    c.asset_id,
    c.cost_amount,
    c.coherence_score,
    c.metadata,
    c.timestamp
FROM contributions AS c
ORDER BY c.timestamp DESC, c.seq ASC
LIMIT :lim;

-- name: get_asset_contributions(asset_id)
-- One asset's contributions, oldest first; ties in insertion order.
SELECT
    c.id,
    c.contributor_id,
    c.asset_id,
    c.cost_amount,
    c.coherence_score,
    c.metadata,
    c.timestamp
FROM contributions AS c
WHERE c.asset_id = :asset_id
ORDER BY c.timestamp ASC, c.seq ASC;

-- name: get_contributor_contributions(contributor_id)
-- One contributor's contributions, oldest first; ties in insertion order.
SELECT
    c.id,
    c.contributor_id,
    c.asset_id,
    c.cost_amount,
    c.coherence_score,
    c.metadata,
    c.timestamp
FROM contributions AS c
WHERE c.contributor_id = :contributor_id
ORDER BY c.timestamp ASC, c.seq ASC;

-- name: insert_contributions(ids, contributor_ids, asset_ids, cost_amounts, coherence_scores, metadatas, timestamps)!
-- Bulk load in array order; an existing id is skipped (a contribution is immutable and its cost
-- is already in total_cost), so the affected count is how many were new.
INSERT INTO contributions (id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp)
SELECT
    u.id,
    u.contributor_id,
    u.asset_id,
    u.cost_amount,
    u.coherence_score,
    u.metadata,
    u.timestamp
FROM
    unnest(
        :ids::uuid[],
        :contributor_ids::uuid[],
        :asset_ids::uuid[],
        :cost_amounts::numeric[],
        :coherence_scores::numeric[],
        :metadatas::jsonb[],
        :timestamps::timestamptz[]
    ) WITH ORDINALITY
        AS u (id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp, ord)
ORDER BY u.ord
ON CONFLICT (id) DO NOTHING;

-- name: scan_contributions(after, lim)
-- Keyset page of every contribution in insertion order (seq > after), for backfill and verification.
SELECT
    c.seq,
    c.id,
    c.contributor_id,
    c.asset_id,
    c.cost_amount,
    c.coherence_score,
    c.metadata,
    c.timestamp
FROM contributions AS c
WHERE c.seq > :after
ORDER BY c.seq
LIMIT :lim;

-- name: digest_contributions(after, lim)
-- Keyset page of (id, md5 of the canonical row text) by id, for consistency checks.
SELECT
    c.id,
    md5(
        jsonb_build_array(
            c.id::text,
            c.contributor_id::text,
            c.asset_id::text,
            c.cost_amount::text,
            c.coherence_score::text,
            c.metadata,
            to_char(c.timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
        )::text
    ) AS "digest!"
FROM contributions AS c
WHERE c.id > :after
ORDER BY c.id
LIMIT :lim;
