-- no-transaction
-- Two reads whose cost grew with the data the API's writes add, found by the 10-minute load test
-- (docs/benchmarks.md "Load tests", docs/decisions.md "Load tests (issue 12)").

-- list_tasks_page with a status: its page walked idx_agent_tasks_created_seq from the newest task
-- and filtered on status, so a page of running tasks read past every newer task of another status
-- (new tasks are pending: ~18k of them after ten minutes at 1,000 req/s, and the page's buffers
-- per call grew with each). With the status leading, the page is the first LIMIT entries of its
-- status in the order the query asks for, whatever else the table holds. The (status, task_type)
-- index stays: the count by status and type reads it alone.
-- CONCURRENTLY: a live agent_tasks keeps taking writes while it builds. An interrupted build leaves
-- an invalid index under this name: dropped first, so a re-run after repair builds it again.
DROP INDEX CONCURRENTLY IF EXISTS idx_agent_tasks_status_created;
CREATE INDEX CONCURRENTLY idx_agent_tasks_status_created ON agent_tasks (status, created_at DESC, seq);

-- The trigram indexes: with fastupdate (the default) every upsert_project appends its entries to
-- the index's pending list, which every search reads whole and which only a flush empties (VACUUM,
-- ANALYZE, or the list passing gin_pending_list_limit, 4 MB by default: ~5,000 projects). Between
-- autovacuum's runs, whose threshold grows with the table, search got ~5x slower at 4,000 pending
-- entries and the planner turns to a sequential scan. 64 kB (the least allowed) flushes every ~100
-- entries: the pending list stays a few pages. Measured against fastupdate = off, which costs each
-- upsert ~2x the time and ~9x the WAL; the flush in batches costs ~1.2x.
ALTER INDEX idx_projects_name_trgm SET (gin_pending_list_limit = 64);
ALTER INDEX idx_projects_description_trgm SET (gin_pending_list_limit = 64);
