-- Contributor emails are unique by the key Python's str.lower() gives (coherence_sql.stores.rules
-- .email_key), which the stores and the backfill compute and write, no longer by SQL lower(): the
-- server's lower() follows its locale and differs from Python's for some letters ('İ', a final
-- 'Σ'), so the two stores disagreed on which emails are the same (docs/decisions.md "Contributor
-- email"). Rows written before this file get lower(email), the key the old index used.
ALTER TABLE contributors ADD COLUMN email_key TEXT;

UPDATE contributors SET email_key = lower(email);

ALTER TABLE contributors
ALTER COLUMN email_key SET NOT NULL,
ADD CONSTRAINT contributors_email_key_unique UNIQUE (email_key);

DROP INDEX contributors_email_lower_key;
