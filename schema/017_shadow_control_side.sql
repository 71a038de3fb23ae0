-- Which store served the read a shadow mismatch was found on. At 100% PostgreSQL reads (and in
-- phase 3) PostgreSQL serves and memory is read in the shadow, so "control" is PostgreSQL's answer
-- there; before, it was always memory's. Existing rows were all found on memory-served reads.

ALTER TABLE shadow_mismatches
ADD COLUMN control_side TEXT NOT NULL DEFAULT 'memory'
CONSTRAINT shadow_mismatches_control_side CHECK (control_side IN ('memory', 'postgres'));
