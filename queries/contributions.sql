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
-- row: ContributionRow
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
