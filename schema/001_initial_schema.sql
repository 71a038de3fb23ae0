-- The migration plan's schema (shared/seed/POSTGRESQL-MIGRATION.md), as written there, with its
-- constraints named so that errors can say which rule was broken. What the API needs beyond the
-- plan is added by 002_api_contract.sql.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- 1. Projects and dependencies

CREATE TABLE projects (
    id SERIAL PRIMARY KEY,
    ecosystem VARCHAR(100) NOT NULL,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    homepage_url VARCHAR(500),
    repository_url VARCHAR(500),
    dependency_count INTEGER DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT projects_ecosystem_name_key UNIQUE (ecosystem, name),
    CONSTRAINT projects_ecosystem_lower CHECK (ecosystem = lower(ecosystem)),
    CONSTRAINT projects_name_lower CHECK (name = lower(name))
);

CREATE INDEX idx_projects_ecosystem ON projects (ecosystem);
CREATE INDEX idx_projects_name ON projects (name);
CREATE INDEX idx_projects_ecosystem_name ON projects (ecosystem, name);

-- Full-text search support
CREATE INDEX idx_projects_name_trgm ON projects USING gin (name gin_trgm_ops);
CREATE INDEX idx_projects_description_trgm ON projects USING gin (description gin_trgm_ops);

-- Dependencies table (graph edges)
CREATE TABLE project_dependencies (
    id SERIAL PRIMARY KEY,
    from_project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    to_project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (from_project_id, to_project_id),
    CHECK (from_project_id != to_project_id)
);

CREATE INDEX idx_dependencies_from ON project_dependencies (from_project_id);
CREATE INDEX idx_dependencies_to ON project_dependencies (to_project_id);

-- 2. Contributors

CREATE TABLE contributors (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(255) NOT NULL,
    email VARCHAR(255),
    github_username VARCHAR(255),
    wallet_address VARCHAR(255),
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_contributors_github ON contributors (github_username);
CREATE INDEX idx_contributors_email ON contributors (email);
CREATE INDEX idx_contributors_created ON contributors (created_at DESC);

-- 3. Assets

CREATE TABLE assets (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(255) NOT NULL,
    description TEXT,
    asset_type VARCHAR(50) NOT NULL,
    total_cost DECIMAL(15, 2) DEFAULT 0.00,
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_assets_type ON assets (asset_type);
CREATE INDEX idx_assets_created ON assets (created_at DESC);
CREATE INDEX idx_assets_total_cost ON assets (total_cost DESC);

-- 4. Contributions

CREATE TABLE contributions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    contributor_id UUID NOT NULL REFERENCES contributors (id) ON DELETE CASCADE,
    asset_id UUID NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    cost_amount DECIMAL(15, 2) NOT NULL CHECK (cost_amount >= 0),
    coherence_score DECIMAL(3, 2) NOT NULL CHECK (coherence_score >= 0 AND coherence_score <= 1),
    metadata JSONB DEFAULT '{}',
    timestamp TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_contributions_contributor ON contributions (contributor_id);
CREATE INDEX idx_contributions_asset ON contributions (asset_id);
CREATE INDEX idx_contributions_timestamp ON contributions (timestamp DESC);
CREATE INDEX idx_contributions_coherence ON contributions (coherence_score DESC);

-- Trigger to update asset.total_cost when contribution is inserted
CREATE OR REPLACE FUNCTION update_asset_total_cost()
RETURNS TRIGGER AS $$
BEGIN
    UPDATE assets
    SET total_cost = total_cost + NEW.cost_amount,
        updated_at = NOW()
    WHERE id = NEW.asset_id;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER contribution_update_asset_cost
AFTER INSERT ON contributions
FOR EACH ROW
EXECUTE FUNCTION update_asset_total_cost();

-- 5. Agent tasks

CREATE TYPE task_type AS ENUM ('spec', 'test', 'impl', 'review', 'heal');
CREATE TYPE task_status AS ENUM ('pending', 'running', 'completed', 'failed', 'needs_decision');

CREATE TABLE agent_tasks (
    id VARCHAR(50) PRIMARY KEY,
    direction TEXT NOT NULL,
    task_type task_type NOT NULL,
    status task_status NOT NULL DEFAULT 'pending',
    model VARCHAR(100) NOT NULL,
    command TEXT NOT NULL,
    output TEXT,
    context JSONB DEFAULT '{}',
    progress_pct INTEGER CHECK (progress_pct >= 0 AND progress_pct <= 100),
    current_step TEXT,
    decision_prompt TEXT,
    decision TEXT,
    tier VARCHAR(50),
    started_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ,
    CONSTRAINT direction_not_empty CHECK (length(trim(direction)) > 0)
);

CREATE INDEX idx_agent_tasks_status ON agent_tasks (status);
CREATE INDEX idx_agent_tasks_type ON agent_tasks (task_type);
CREATE INDEX idx_agent_tasks_created ON agent_tasks (created_at DESC);
CREATE INDEX idx_agent_tasks_updated ON agent_tasks (updated_at DESC);
CREATE INDEX idx_agent_tasks_status_type ON agent_tasks (status, task_type);

-- Index for attention queries (needs_decision, failed)
CREATE INDEX idx_agent_tasks_attention ON agent_tasks (status, created_at DESC)
WHERE status IN ('needs_decision', 'failed');
