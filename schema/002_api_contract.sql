-- What the API's models and store behaviour need beyond the plan (docs/decisions.md, design.md
-- "Contract decisions"): display case beside the lower-case keys, edges recorded before their
-- projects, the dependency_count the database keeps, insertion order for ties, enum-like CHECKs,
-- money rules, agent task claims, and the GitHub tables.

-- Projects: keys stay lower-case (the plan's CHECKs); the caller's spelling is kept for display.
ALTER TABLE projects
ADD COLUMN display_ecosystem VARCHAR(100) NOT NULL,
ADD COLUMN display_name VARCHAR(255) NOT NULL,
ADD COLUMN version TEXT NOT NULL,
ALTER COLUMN dependency_count SET NOT NULL,
ADD CONSTRAINT projects_dependency_count_check CHECK (dependency_count >= 0),
ADD CONSTRAINT projects_ecosystem_not_empty CHECK (ecosystem <> ''),
ADD CONSTRAINT projects_name_not_empty CHECK (name <> ''),
-- Keys are lower-cased in Python (str.lower), which differs from SQL lower() for some non-ASCII
-- letters (final sigma, dotted capital I): the check holds an ASCII spelling to its key and trusts
-- the writer for the rest.
ADD CONSTRAINT projects_display_matches_key CHECK (
    (lower(display_ecosystem) = ecosystem OR display_ecosystem ~ '[^[:ascii:]]')
    AND (lower(display_name) = name OR display_name ~ '[^[:ascii:]]')
);

ALTER TABLE project_dependencies
RENAME CONSTRAINT project_dependencies_check TO project_dependencies_not_self;

-- Edges whose endpoint is not indexed yet, by key; moved into project_dependencies when both
-- projects exist. An edge lives in exactly one of the two tables.
CREATE TABLE pending_dependencies (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    from_ecosystem VARCHAR(100) NOT NULL,
    from_name VARCHAR(255) NOT NULL,
    to_ecosystem VARCHAR(100) NOT NULL,
    to_name VARCHAR(255) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pending_dependencies_pkey PRIMARY KEY (from_ecosystem, from_name, to_ecosystem, to_name),
    CONSTRAINT pending_dependencies_not_self CHECK (
        from_ecosystem <> to_ecosystem OR from_name <> to_name
    ),
    CONSTRAINT pending_dependencies_keys_lower CHECK (
        from_ecosystem = lower(from_ecosystem) AND from_name = lower(from_name)
        AND to_ecosystem = lower(to_ecosystem) AND to_name = lower(to_name)
    )
);

CREATE INDEX idx_pending_dependencies_to ON pending_dependencies (to_ecosystem, to_name);

-- One key at a time: an edge write and the arrival of its endpoint project serialise on the
-- endpoint's key, so an edge can never stay pending once both projects exist.
CREATE FUNCTION lock_project_key(p_ecosystem TEXT, p_name TEXT)
RETURNS VOID AS $$
    SELECT pg_advisory_xact_lock(hashtextextended(p_ecosystem || '/' || p_name, 7));
$$ LANGUAGE sql;

-- Record "from depends on to" by key; resolved at once when both projects exist.
CREATE FUNCTION record_dependency(
    p_from_ecosystem TEXT, p_from_name TEXT, p_to_ecosystem TEXT, p_to_name TEXT
)
RETURNS BOOLEAN AS $$
DECLARE
    v_from INTEGER;
    v_to INTEGER;
    v_count INTEGER;
BEGIN
    IF p_from_ecosystem || '/' || p_from_name < p_to_ecosystem || '/' || p_to_name THEN
        PERFORM lock_project_key(p_from_ecosystem, p_from_name);
        PERFORM lock_project_key(p_to_ecosystem, p_to_name);
    ELSE
        PERFORM lock_project_key(p_to_ecosystem, p_to_name);
        PERFORM lock_project_key(p_from_ecosystem, p_from_name);
    END IF;
    SELECT id INTO v_from FROM projects WHERE ecosystem = p_from_ecosystem AND name = p_from_name;
    SELECT id INTO v_to FROM projects WHERE ecosystem = p_to_ecosystem AND name = p_to_name;
    IF v_from IS NOT NULL AND v_to IS NOT NULL THEN
        -- Never in both tables: a pending copy (there should be none) is moved, not duplicated.
        DELETE FROM pending_dependencies
        WHERE from_ecosystem = p_from_ecosystem AND from_name = p_from_name
        AND to_ecosystem = p_to_ecosystem AND to_name = p_to_name;
        INSERT INTO project_dependencies (from_project_id, to_project_id)
        VALUES (v_from, v_to)
        ON CONFLICT (from_project_id, to_project_id) DO NOTHING;
    ELSE
        INSERT INTO pending_dependencies (from_ecosystem, from_name, to_ecosystem, to_name)
        VALUES (p_from_ecosystem, p_from_name, p_to_ecosystem, p_to_name)
        ON CONFLICT ON CONSTRAINT pending_dependencies_pkey DO NOTHING;
    END IF;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count > 0;
END;
$$ LANGUAGE plpgsql;

-- dependency_count is the out-degree, pending edges included, kept in the writing transaction.
CREATE FUNCTION project_count_pending_out_degree()
RETURNS TRIGGER AS $$
BEGIN
    NEW.dependency_count := (
        SELECT count(*) FROM pending_dependencies AS q
        WHERE q.from_ecosystem = NEW.ecosystem AND q.from_name = NEW.name
    );
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER project_set_dependency_count
BEFORE INSERT ON projects
FOR EACH ROW
EXECUTE FUNCTION project_count_pending_out_degree();

CREATE FUNCTION project_resolve_pending_dependencies()
RETURNS TRIGGER AS $$
BEGIN
    PERFORM lock_project_key(NEW.ecosystem, NEW.name);
    IF NOT EXISTS (
        SELECT 1 FROM pending_dependencies AS q
        WHERE (q.from_ecosystem = NEW.ecosystem AND q.from_name = NEW.name)
        OR (q.to_ecosystem = NEW.ecosystem AND q.to_name = NEW.name)
    ) THEN
        RETURN NULL;
    END IF;
    -- Both endpoints of a pending edge may be inserted at once, each unable to see the other's
    -- uncommitted row: resolutions take turns, so the second sees the first committed. (An edge
    -- touching this key cannot appear meanwhile: record_dependency waits on this key's lock.)
    PERFORM pg_advisory_xact_lock(hashtextextended('coherence_sql.pending_dependencies', 7));
    WITH moved AS (
        DELETE FROM pending_dependencies AS q
        WHERE (
            q.from_ecosystem = NEW.ecosystem AND q.from_name = NEW.name
            AND EXISTS (SELECT 1 FROM projects AS t WHERE t.ecosystem = q.to_ecosystem AND t.name = q.to_name)
        ) OR (
            q.to_ecosystem = NEW.ecosystem AND q.to_name = NEW.name
            AND EXISTS (SELECT 1 FROM projects AS f WHERE f.ecosystem = q.from_ecosystem AND f.name = q.from_name)
        )
        RETURNING q.id, q.from_ecosystem, q.from_name, q.to_ecosystem, q.to_name, q.created_at
    )
    INSERT INTO project_dependencies (from_project_id, to_project_id, created_at)
    SELECT f.id, t.id, m.created_at
    FROM moved AS m
    INNER JOIN projects AS f ON m.from_ecosystem = f.ecosystem AND m.from_name = f.name
    INNER JOIN projects AS t ON m.to_ecosystem = t.ecosystem AND m.to_name = t.name
    ORDER BY m.id
    ON CONFLICT (from_project_id, to_project_id) DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER project_resolve_dependencies
AFTER INSERT ON projects
FOR EACH ROW
EXECUTE FUNCTION project_resolve_pending_dependencies();

CREATE FUNCTION dependency_count_resolved()
RETURNS TRIGGER AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE projects SET dependency_count = dependency_count + 1 WHERE id = NEW.from_project_id;
    ELSE
        UPDATE projects SET dependency_count = dependency_count - 1 WHERE id = OLD.from_project_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER project_dependencies_count
AFTER INSERT OR DELETE ON project_dependencies
FOR EACH ROW
EXECUTE FUNCTION dependency_count_resolved();

CREATE FUNCTION dependency_count_pending()
RETURNS TRIGGER AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE projects SET dependency_count = dependency_count + 1
        WHERE ecosystem = NEW.from_ecosystem AND name = NEW.from_name;
    ELSE
        UPDATE projects SET dependency_count = dependency_count - 1
        WHERE ecosystem = OLD.from_ecosystem AND name = OLD.from_name;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER pending_dependencies_count
AFTER INSERT OR DELETE ON pending_dependencies
FOR EACH ROW
EXECUTE FUNCTION dependency_count_pending();

-- Contributors: the API's fields; insertion order breaks created_at ties.
ALTER TABLE contributors
ADD COLUMN type VARCHAR(10) NOT NULL,
ADD COLUMN hourly_rate DECIMAL(15, 2),
ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY,
ALTER COLUMN email SET NOT NULL,
ALTER COLUMN metadata SET NOT NULL,
ADD CONSTRAINT contributors_type_check CHECK (type IN ('HUMAN', 'SYSTEM')),
ADD CONSTRAINT contributors_hourly_rate_check CHECK (hourly_rate >= 0),
ADD CONSTRAINT contributors_name_not_empty CHECK (name <> '');

CREATE UNIQUE INDEX contributors_email_lower_key ON contributors (lower(email));
CREATE INDEX idx_contributors_created_seq ON contributors (created_at DESC, seq);

-- Assets: the API's `type` is the plan's asset_type; total_cost is only ever the trigger's sum.
ALTER TABLE assets
ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY,
ALTER COLUMN total_cost SET NOT NULL,
ALTER COLUMN description SET NOT NULL,
ALTER COLUMN metadata SET NOT NULL,
ADD CONSTRAINT assets_asset_type_check CHECK (asset_type IN ('CODE', 'MODEL', 'CONTENT', 'DATA')),
ADD CONSTRAINT assets_total_cost_check CHECK (total_cost >= 0);

CREATE INDEX idx_assets_created_seq ON assets (created_at DESC, seq);

ALTER TABLE contributions
ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY,
ALTER COLUMN metadata SET NOT NULL;

CREATE INDEX idx_contributions_timestamp_seq ON contributions (timestamp DESC, seq);
CREATE INDEX idx_contributions_asset_timestamp ON contributions (asset_id, timestamp, seq);
CREATE INDEX idx_contributions_contributor_timestamp ON contributions (contributor_id, timestamp, seq);

-- Agent tasks: the API's limits, claims for runners, insertion order for ties.
ALTER TABLE agent_tasks
ADD COLUMN claimed_by VARCHAR(255),
ADD COLUMN claimed_at TIMESTAMPTZ,
ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY,
ADD CONSTRAINT agent_tasks_direction_length CHECK (length(direction) <= 5000),
ADD CONSTRAINT agent_tasks_id_not_empty CHECK (id <> '');

ALTER TABLE agent_tasks
RENAME CONSTRAINT agent_tasks_progress_pct_check TO agent_tasks_progress_pct_range;

CREATE INDEX idx_agent_tasks_created_seq ON agent_tasks (created_at DESC, seq);
CREATE INDEX idx_agent_tasks_pending ON agent_tasks (created_at, seq) WHERE status = 'pending';

-- GitHub contributors and organizations (in the API's GraphStore protocol, not in the plan).
CREATE TABLE github_contributors (
    id VARCHAR(255) PRIMARY KEY,
    source VARCHAR(50) NOT NULL DEFAULT 'github',
    login VARCHAR(255) NOT NULL,
    name VARCHAR(255),
    avatar_url VARCHAR(500),
    contributions_count INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT github_contributors_id_not_empty CHECK (id <> ''),
    CONSTRAINT github_contributors_contributions_count_check CHECK (contributions_count >= 0)
);

CREATE INDEX idx_github_contributors_created ON github_contributors (created_at DESC, seq);

CREATE TABLE github_organizations (
    id VARCHAR(255) PRIMARY KEY,
    login VARCHAR(255) NOT NULL,
    type VARCHAR(50) NOT NULL,
    name VARCHAR(255),
    avatar_url VARCHAR(500),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT github_organizations_id_not_empty CHECK (id <> ''),
    CONSTRAINT github_organizations_type_check CHECK (type IN ('Organization', 'User'))
);

-- "contributor works on project", by project key; neither side has to exist (as in the API).
CREATE TABLE github_contributes_to (
    contributor_id VARCHAR(255) NOT NULL,
    ecosystem VARCHAR(100) NOT NULL,
    name VARCHAR(255) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT github_contributes_to_pkey PRIMARY KEY (contributor_id, ecosystem, name),
    CONSTRAINT github_contributes_to_keys_lower CHECK (ecosystem = lower(ecosystem) AND name = lower(name))
);

CREATE INDEX idx_github_contributes_to_project ON github_contributes_to (ecosystem, name, seq);
