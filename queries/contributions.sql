-- Contributions (GraphStore): the audit trail of costs; inserting one adds its cost to the asset's
-- total_cost in the same transaction (the plan's trigger). seq breaks timestamp ties.

-- name: create_contribution(id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp)<!
-- Record a contribution in one statement (one round trip, atomic): whether the contributor and the
-- asset exist, and the new row, inserted only when both do; the asset's total_cost grows by
-- cost_amount in the same statement (trigger). A missing reference: the flags say which, the row
-- columns are NULL and nothing was written (the INSERT selected no row, so no unique violation on
-- the id either, as the memory store reports the references first).
WITH refs AS (
    SELECT
        exists(
            SELECT 1 FROM contributors AS c
            WHERE c.id = :contributor_id::uuid
        ) AS contributor_exists,
        exists(
            SELECT 1 FROM assets AS a
            WHERE a.id = :asset_id::uuid
        ) AS asset_exists
),

inserted AS (
    INSERT INTO contributions (id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp)
    SELECT
        :id::uuid,
        :contributor_id::uuid,
        :asset_id::uuid,
        :cost_amount::numeric,
        :coherence_score::numeric,
        :metadata::jsonb,
        :timestamp::timestamptz
    FROM refs AS r
    WHERE r.contributor_exists AND r.asset_exists
    RETURNING id, contributor_id, asset_id, cost_amount, coherence_score, metadata, timestamp
)

SELECT
    r.contributor_exists AS "contributor_exists!",
    r.asset_exists AS "asset_exists!",
    i.id,
    i.contributor_id,
    i.asset_id,
    i.cost_amount,
    i.coherence_score,
    i.metadata,
    i.timestamp
FROM refs AS r
LEFT JOIN inserted AS i ON TRUE;

-- name: get_contribution(id)^
-- One contribution by id.
-- row: ContributionRow
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
