-- no-transaction
-- Task updates in place (HOT): a progress update (update_task from an agent runner: current_step,
-- progress_pct, updated_at) writes its new row version on the same page and no index entry, when
-- no indexed column changes and the page has room (docs/decisions.md "Round trips and task updates'
-- server cost"). Measured on PostgreSQL 15 at 20k tasks: 0 of 1,000 progress updates were HOT
-- before, each writing 6 WAL records (~675 bytes) and an entry in five indexes; 1,000 of 1,000
-- after (1 record, ~256 bytes).

-- updated_at changes on every update, so its index made every update a non-HOT one, and no query
-- reads it: pipeline_status's recent list sorts on `updated_at IS NULL DESC, updated_at DESC`,
-- which this index cannot give (idx_scan stayed 0); usage_by_model groups, it does not seek.
-- CONCURRENTLY: a live agent_tasks keeps taking writes while it goes.
DROP INDEX CONCURRENTLY IF EXISTS idx_agent_tasks_updated;

-- Room on each page for a few new versions of its rows (a running task is updated many times;
-- pruning reclaims the old ones on the page). At fillfactor 100 a full page sent ~12% of the
-- updates elsewhere (a non-HOT update); at 90, none. Applies to pages written from now on (no
-- rewrite and no long lock here), as 018 does for projects.
ALTER TABLE agent_tasks SET (fillfactor = 90);
