-- no-transaction
-- Drop the plan's indexes that another B-tree index on the same table already covers: each is a
-- leading prefix of a wider index, so every lookup and ordered scan it served, the wider one serves
-- too, while every insert paid to maintain both (docs/decisions.md "Redundant indexes"; 100,000
-- contributions insert ~25 % faster without their three). tests/test_schema_indexes.py keeps it so.
-- CONCURRENTLY: a live table keeps taking writes while each index goes.

-- (ecosystem) and (ecosystem, name): the UNIQUE (ecosystem, name) constraint's own index.
DROP INDEX CONCURRENTLY IF EXISTS idx_projects_ecosystem;
DROP INDEX CONCURRENTLY IF EXISTS idx_projects_ecosystem_name;

-- (from_project_id): UNIQUE (from_project_id, to_project_id).
DROP INDEX CONCURRENTLY IF EXISTS idx_dependencies_from;

-- (created_at DESC): (created_at DESC, seq), from 002_api_contract.sql.
DROP INDEX CONCURRENTLY IF EXISTS idx_contributors_created;
DROP INDEX CONCURRENTLY IF EXISTS idx_assets_created;
DROP INDEX CONCURRENTLY IF EXISTS idx_agent_tasks_created;

-- (contributor_id), (asset_id), (timestamp DESC): (contributor_id, timestamp, seq),
-- (asset_id, timestamp, seq) and (timestamp DESC, seq).
DROP INDEX CONCURRENTLY IF EXISTS idx_contributions_contributor;
DROP INDEX CONCURRENTLY IF EXISTS idx_contributions_asset;
DROP INDEX CONCURRENTLY IF EXISTS idx_contributions_timestamp;

-- (status): (status, task_type).
DROP INDEX CONCURRENTLY IF EXISTS idx_agent_tasks_status;
