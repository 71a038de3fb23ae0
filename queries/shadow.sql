-- name: record_mismatch(operation, entity_key, control_side, control, candidate, control_ms, candidate_ms, error, observed_at)!
-- Keep one shadow-read mismatch with both answers; control_side names the store that served the read.
-- nullable: entity_key, control, candidate, candidate_ms, error
INSERT INTO shadow_mismatches (
    operation, entity_key, control_side, control, candidate, control_ms, candidate_ms, error, observed_at
)
VALUES (
    :operation, :entity_key, :control_side, :control, :candidate, :control_ms, :candidate_ms, :error, :observed_at
);
