-- Contributors (GraphStore): create, get, list newest first, lookup by email, bulk load, scans.
-- Columns are aliased to the API model's field names; seq breaks created_at ties (insertion order).

-- name: get_contributor(id)^
-- One contributor by id.
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

-- name: upsert_contributors(ids, types, names, emails, email_keys, wallet_addresses, hourly_rates, created_ats, github_usernames, metadatas)!
-- Bulk load in array order; an existing id is replaced in place (keeps its seq).
-- nullable: wallet_addresses[], hourly_rates[], github_usernames[]
INSERT INTO contributors (
    id, type, name, email, email_key, wallet_address, hourly_rate, created_at, github_username, metadata
)
SELECT
    u.id,
    u.type,
    u.name,
    u.email,
    u.email_key,
    u.wallet_address,
    u.hourly_rate,
    u.created_at,
    u.github_username,
    u.metadata
FROM
    unnest(
        :ids::uuid[],
        :types::text[],
        :names::text[],
        :emails::text[],
        :email_keys::text[],
        :wallet_addresses::text[],
        :hourly_rates::numeric[],
        :created_ats::timestamptz[],
        :github_usernames::text[],
        :metadatas::jsonb[]
    ) WITH ORDINALITY
        AS u (
            id, type, name, email, email_key, wallet_address, hourly_rate, created_at, github_username, metadata, ord
        )
ORDER BY u.ord
ON CONFLICT (id) DO UPDATE SET
    type = excluded.type,
    name = excluded.name,
    email = excluded.email,
    email_key = excluded.email_key,
    wallet_address = excluded.wallet_address,
    hourly_rate = excluded.hourly_rate,
    created_at = excluded.created_at,
    github_username = excluded.github_username,
    metadata = excluded.metadata,
    updated_at = now();

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

-- name: digest_contributors(after, lim)
-- Keyset page of (id, md5 of the canonical row text) by id, for consistency checks.
SELECT
    c.id,
    md5(
        jsonb_build_array(
            c.id::text,
            c.type,
            c.name,
            c.email,
            c.wallet_address,
            c.hourly_rate::text,
            to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
            c.github_username,
            c.metadata
        )::text
    ) AS "digest!"
FROM contributors AS c
WHERE c.id > :after
ORDER BY c.id
LIMIT :lim;
