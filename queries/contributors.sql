-- Contributors (GraphStore): create, get, list newest first, lookup by email, a keyset scan (verify).
-- Columns are aliased to the API model's field names; seq breaks created_at ties (insertion order).

-- name: get_contributor(id)^
-- One contributor by id.
-- row: ContributorRow
SELECT
    c.id,
    c.type,
    c.name,
    c.email,
    c.wallet_address,
    c.hourly_rate,
    c.created_at,
    c.github_username,
    c.metadata
FROM contributors AS c
WHERE c.id = :id;

-- name: insert_contributor(id, type, name, email, email_key, wallet_address, hourly_rate, created_at, github_username, metadata)<!
-- Create a contributor; an existing id or email key (rules.email_key) is a unique violation.
-- nullable: wallet_address, hourly_rate, github_username
INSERT INTO contributors (
    id, type, name, email, email_key, wallet_address, hourly_rate, created_at, github_username, metadata
)
VALUES (
    :id, :type, :name, :email, :email_key, :wallet_address, :hourly_rate, :created_at, :github_username, :metadata
)
RETURNING id, type, name, email, wallet_address, hourly_rate, created_at, github_username, metadata;

-- name: list_contributors(lim)
-- Newest first; ties in insertion order.
SELECT
    c.id,
    c.type,
    c.name,
    c.email,
    c.wallet_address,
    c.hourly_rate,
    c.created_at,
    c.github_username,
    c.metadata
FROM contributors AS c
ORDER BY c.created_at DESC, c.seq ASC
LIMIT :lim;

-- name: find_contributor_by_email(email_key)^
-- The contributor with this email, compared case-insensitively: by its key (rules.email_key).
SELECT
    c.id,
    c.type,
    c.name,
    c.email,
    c.wallet_address,
    c.hourly_rate,
    c.created_at,
    c.github_username,
    c.metadata
FROM contributors AS c
WHERE c.email_key = :email_key;

-- name: scan_contributors(after, lim)
-- Keyset page of every contributor in insertion order (seq > after), for backfill and verification.
SELECT
    c.seq,
    c.id,
    c.type,
    c.name,
    c.email,
    c.wallet_address,
    c.hourly_rate,
    c.created_at,
    c.github_username,
    c.metadata
FROM contributors AS c
WHERE c.seq > :after
ORDER BY c.seq
LIMIT :lim;
