-- The projects' two INSERT triggers (002: the pending out-degree counted BEFORE each row, the
-- pending edges resolved AFTER it) skip rows written while the transaction-local setting
-- coherence_sql.set_based_aggregates is 'on', as 011 did for the aggregate triggers. Only the
-- backfill's merge_projects sets it around its INSERT, and does the same work for the whole batch
-- in its own statements: the counts joined into the INSERT, then one resolution of the batch's
-- keys (queries/backfill.sql). A per-row call cost ~200 us, most of a 500-project batch
-- (docs/benchmarks.md). Every other write fires the triggers as before; the functions are unchanged.
CREATE OR REPLACE TRIGGER project_set_dependency_count
BEFORE INSERT ON projects
FOR EACH ROW
WHEN (current_setting('coherence_sql.set_based_aggregates', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION project_count_pending_out_degree();

CREATE OR REPLACE TRIGGER project_resolve_dependencies
AFTER INSERT ON projects
FOR EACH ROW
WHEN (current_setting('coherence_sql.set_based_aggregates', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION project_resolve_pending_dependencies();
