-- Backfill support (coherence_sql.migration.backfill; docs/decisions.md "Backfill, verify, rollback"):
-- durable checkpoints keyed by the snapshot's SHA-256, and a transaction-local switch with which a
-- backfill statement applies the aggregate triggers' effect set-based instead of row by row.

-- One row per snapshot and section: how far the backfill got. A batch's rows and its checkpoint
-- commit together, so a killed run resumes after the last batch that committed.
CREATE TABLE backfill_checkpoints (
    snapshot_sha256 TEXT NOT NULL,
    section TEXT NOT NULL,
    done_through BIGINT NOT NULL,
    staged BIGINT NOT NULL DEFAULT 0,
    inserted BIGINT NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT backfill_checkpoints_pkey PRIMARY KEY (snapshot_sha256, section),
    CONSTRAINT backfill_checkpoints_sha256_hex CHECK (snapshot_sha256 ~ '^[0-9a-f]{64}$')
);

-- The contributions.seq values reserved for a snapshot's contributions, as ranges in snapshot
-- order: the k-th contribution gets the k-th value, in every run, so insertion order (the tie-break
-- of every list) is the snapshot's even when partitions load on several connections and resume.
CREATE TABLE backfill_reserved_seqs (
    snapshot_sha256 TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    CONSTRAINT backfill_reserved_seqs_pkey PRIMARY KEY (snapshot_sha256, first_seq),
    CONSTRAINT backfill_reserved_seqs_range CHECK (first_seq <= last_seq)
);

-- Called by each merge statement of queries/backfill.sql, in that statement: the batch and its
-- checkpoint are one atomic write.
CREATE FUNCTION record_backfill_batch(
    p_snapshot_sha256 TEXT, p_section TEXT, p_done_through BIGINT, p_staged BIGINT, p_inserted BIGINT
)
RETURNS VOID AS $$
    INSERT INTO backfill_checkpoints AS k (snapshot_sha256, section, done_through, staged, inserted, batches)
    VALUES (p_snapshot_sha256, p_section, p_done_through, p_staged, p_inserted, 1)
    ON CONFLICT ON CONSTRAINT backfill_checkpoints_pkey DO UPDATE SET
        done_through = greatest(k.done_through, excluded.done_through),
        staged = k.staged + excluded.staged,
        inserted = k.inserted + excluded.inserted,
        batches = k.batches + 1,
        updated_at = now();
$$ LANGUAGE sql;

-- The aggregate triggers skip rows written while the transaction-local setting
-- coherence_sql.set_based_aggregates is 'on'. Only the backfill's merge statements set it (with
-- set_config(..., true), so no other session and no later transaction ever sees it), and each of
-- them adds exactly what the skipped triggers would have added, computed from its own RETURNING
-- rows in the same statement. Every other write fires the triggers as before. No superuser, no
-- table lock, no DISABLE TRIGGER. The plan's trigger function is unchanged; only a WHEN is added.
CREATE OR REPLACE TRIGGER contribution_update_asset_cost
AFTER INSERT ON contributions
FOR EACH ROW
WHEN (current_setting('coherence_sql.set_based_aggregates', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION update_asset_total_cost();

CREATE OR REPLACE TRIGGER project_dependencies_count
AFTER INSERT OR DELETE ON project_dependencies
FOR EACH ROW
WHEN (current_setting('coherence_sql.set_based_aggregates', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION dependency_count_resolved();
