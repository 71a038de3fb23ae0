-- Shadow-read mismatches (coherence_sql.migration.shadow): what memory and PostgreSQL answered
-- for the same read while reads move over, kept for the operator (Scientist's mismatch payload).

CREATE TABLE shadow_mismatches (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation TEXT NOT NULL,
    entity_key TEXT,
    control JSONB,
    candidate JSONB,
    control_ms DOUBLE PRECISION NOT NULL,
    candidate_ms DOUBLE PRECISION,
    error TEXT,
    observed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_shadow_mismatches_observed ON shadow_mismatches (observed_at DESC);
