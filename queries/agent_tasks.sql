-- Agent tasks (AgentTaskStore): the API's agent_service store functions plus claims for runners.
-- Lists are newest first by created_at with ties in insertion order (seq); the plan's ENUM types
-- come back as models.TaskType / models.TaskStatus in the generated accessors.

-- name: insert_task(id, direction, task_type, status, model, command, tier, context, output, progress_pct, current_step, decision_prompt, decision, started_at, created_at, updated_at, claimed_by, claimed_at)<!
-- Store a task exactly as given; an existing id is a unique violation.
-- row: TaskRow
-- nullable: tier, context, output, progress_pct, current_step, decision_prompt, decision, started_at, updated_at, claimed_by, claimed_at
INSERT INTO agent_tasks (
    id, direction, task_type, status, model, command, tier, context, output, progress_pct,
    current_step, decision_prompt, decision, started_at, created_at, updated_at, claimed_by, claimed_at
)
VALUES (
    :id, :direction, :task_type, :status, :model, :command, :tier, :context, :output, :progress_pct,
    :current_step, :decision_prompt, :decision, :started_at, :created_at, :updated_at, :claimed_by, :claimed_at
)
RETURNING
    id, direction, task_type, status, model, command, tier, context, output, progress_pct,
    current_step, decision_prompt, decision, started_at, created_at, updated_at, claimed_by, claimed_at;

-- name: get_task(id)^
-- One task by id.
SELECT
    t.id,
    t.direction,
    t.task_type,
    t.status,
    t.model,
    t.command,
    t.tier,
    t.context,
    t.output,
    t.progress_pct,
    t.current_step,
    t.decision_prompt,
    t.decision,
    t.started_at,
    t.created_at,
    t.updated_at,
    t.claimed_by,
    t.claimed_at
FROM agent_tasks AS t
WHERE t.id = :id;

-- name: list_tasks_page(status, task_type, lim, off)
-- One page of the tasks matching the optional filters (NULL = any), newest first, beside how many
-- match before paging: one statement, so one snapshot and one round trip. A row per task on the
-- page, each carrying the total; an empty page is one row with the total and NULL task columns.
-- The page keeps its own ORDER BY ... LIMIT, so the index on (created_at DESC, seq) bounds it.
-- nullable: status, task_type
WITH matching AS (
    SELECT count(*) AS total
    FROM agent_tasks AS c
    WHERE
        (:status::task_status IS NULL OR c.status = :status::task_status)
        AND (:task_type::task_type IS NULL OR c.task_type = :task_type::task_type)
),

page AS (
    SELECT
        p.id,
        p.direction,
        p.task_type,
        p.status,
        p.model,
        p.command,
        p.tier,
        p.context,
        p.output,
        p.progress_pct,
        p.current_step,
        p.decision_prompt,
        p.decision,
        p.started_at,
        p.created_at,
        p.updated_at,
        p.claimed_by,
        p.claimed_at,
        p.seq
    FROM agent_tasks AS p
    WHERE
        (:status::task_status IS NULL OR p.status = :status::task_status)
        AND (:task_type::task_type IS NULL OR p.task_type = :task_type::task_type)
    ORDER BY p.created_at DESC, p.seq ASC
    LIMIT :lim OFFSET :off
)

SELECT
    n.total AS "total!",
    t.id,
    t.direction,
    t.task_type,
    t.status,
    t.model,
    t.command,
    t.tier,
    t.context,
    t.output,
    t.progress_pct,
    t.current_step,
    t.decision_prompt,
    t.decision,
    t.started_at,
    t.created_at,
    t.updated_at,
    t.claimed_by,
    t.claimed_at
FROM matching AS n
LEFT JOIN page AS t ON TRUE
ORDER BY t.created_at DESC, t.seq ASC;

-- name: update_task(id, status, output, progress_pct, current_step, decision_prompt, decision, now)<!
-- client-contract section 3.4 in one statement, so concurrent updates are never lost: NULL leaves a
-- field alone; a decision on a needs_decision task resumes it (an explicit status wins), otherwise
-- the first decision wins; started_at is set once, when status becomes running; updated_at always.
-- nullable: status, output, progress_pct, current_step, decision_prompt, decision
UPDATE agent_tasks AS t
SET
    status = CASE
        WHEN :status::task_status IS NOT NULL THEN :status::task_status
        WHEN :decision::text IS NOT NULL AND t.status = 'needs_decision' THEN 'running'
        ELSE t.status
    END,
    decision = CASE
        WHEN :decision::text IS NULL THEN t.decision
        WHEN t.status = 'needs_decision' THEN :decision::text
        ELSE coalesce(t.decision, :decision::text)
    END,
    started_at = CASE
        WHEN :status::task_status = 'running' AND t.started_at IS NULL THEN :now::timestamptz
        ELSE t.started_at
    END,
    output = coalesce(:output, t.output),
    progress_pct = coalesce(:progress_pct, t.progress_pct),
    current_step = coalesce(:current_step, t.current_step),
    decision_prompt = coalesce(:decision_prompt, t.decision_prompt),
    updated_at = :now::timestamptz
WHERE t.id = :id
RETURNING
    id, direction, task_type, status, model, command, tier, context, output, progress_pct,
    current_step, decision_prompt, decision, started_at, created_at, updated_at, claimed_by, claimed_at;

-- name: attention_tasks_page(lim)
-- The newest tasks that need a person (needs_decision or failed) beside how many there are: one
-- statement, so one snapshot and one round trip (as list_tasks_page). A row per task on the page,
-- each carrying the total; an empty page is one row with the total and NULL task columns.
-- row: TaskPageRow
WITH needing AS (
    SELECT count(*) AS total
    FROM agent_tasks AS c
    WHERE c.status IN ('needs_decision', 'failed')
),

page AS (
    SELECT
        p.id,
        p.direction,
        p.task_type,
        p.status,
        p.model,
        p.command,
        p.tier,
        p.context,
        p.output,
        p.progress_pct,
        p.current_step,
        p.decision_prompt,
        p.decision,
        p.started_at,
        p.created_at,
        p.updated_at,
        p.claimed_by,
        p.claimed_at,
        p.seq
    FROM agent_tasks AS p
    WHERE p.status IN ('needs_decision', 'failed')
    ORDER BY p.created_at DESC, p.seq ASC
    LIMIT :lim
)

SELECT
    n.total AS "total!",
    t.id,
    t.direction,
    t.task_type,
    t.status,
    t.model,
    t.command,
    t.tier,
    t.context,
    t.output,
    t.progress_pct,
    t.current_step,
    t.decision_prompt,
    t.decision,
    t.started_at,
    t.created_at,
    t.updated_at,
    t.claimed_by,
    t.claimed_at
FROM needing AS n
LEFT JOIN page AS t ON TRUE
ORDER BY t.created_at DESC, t.seq ASC;

-- name: review_summary()
-- get_review_summary in one statement (one snapshot, one round trip): the tasks per status present,
-- [status, tasks] pairs in a JSON array in the order each status first occurs (insertion order),
-- beside every task that needs a person (needs_decision or failed) in insertion order. A row per
-- such task, each carrying the pairs; none: one row with the pairs and NULL task columns. Pairs in
-- a jsonb array keep their order (a jsonb object would not); not two arrays: a bigint[] makes
-- asyncpg introspect its type on each new connection (three more round trips); jsonb_agg, not
-- json_object_agg, which the replica router does not know as read-only (replicas/statements.py).
WITH by_status AS (
    SELECT
        s.status,
        count(*) AS tasks,
        min(s.seq) AS first_seq
    FROM agent_tasks AS s
    GROUP BY s.status
),

counts AS (
    SELECT coalesce(jsonb_agg(jsonb_build_array(b.status, b.tasks) ORDER BY b.first_seq), '[]'::jsonb) AS by_status
    FROM by_status AS b
),

attention AS (
    SELECT
        a.id,
        a.direction,
        a.task_type,
        a.status,
        a.model,
        a.command,
        a.tier,
        a.context,
        a.output,
        a.progress_pct,
        a.current_step,
        a.decision_prompt,
        a.decision,
        a.started_at,
        a.created_at,
        a.updated_at,
        a.claimed_by,
        a.claimed_at,
        a.seq
    FROM agent_tasks AS a
    WHERE a.status IN ('needs_decision', 'failed')
)

SELECT
    n.by_status AS "by_status!",
    t.id,
    t.direction,
    t.task_type,
    t.status,
    t.model,
    t.command,
    t.tier,
    t.context,
    t.output,
    t.progress_pct,
    t.current_step,
    t.decision_prompt,
    t.decision,
    t.started_at,
    t.created_at,
    t.updated_at,
    t.claimed_by,
    t.claimed_at
FROM counts AS n
LEFT JOIN attention AS t ON TRUE
ORDER BY t.seq;

-- name: task_status_counts()
-- Tasks per status present, in the order each status first occurs (insertion order).
SELECT
    t.status,
    count(*) AS "tasks!"
FROM agent_tasks AS t
GROUP BY t.status
ORDER BY min(t.seq);

-- name: usage_by_model()
-- Tasks per model and status, with the model's last_used (updated_at, else created_at, of its
-- newest task in insertion order); models in order of first use.
WITH per_status AS (
    SELECT
        t.model,
        t.status,
        count(*) AS tasks,
        min(t.seq) AS first_seq
    FROM agent_tasks AS t
    GROUP BY t.model, t.status
),

last_task AS (
    SELECT DISTINCT ON (t.model)
        t.model,
        coalesce(t.updated_at, t.created_at) AS last_used
    FROM agent_tasks AS t
    ORDER BY t.model ASC, t.seq DESC
)

SELECT
    p.model,
    p.status,
    p.tasks AS "tasks!",
    l.last_used AS "last_used!"
FROM per_status AS p
INNER JOIN last_task AS l ON p.model = l.model
ORDER BY min(p.first_seq) OVER (PARTITION BY p.model), p.first_seq;

-- name: pipeline_status(running_lim, pending_lim, recent_lim)
-- get_pipeline_status in one statement (one snapshot, one round trip): the running plus pending
-- tasks per task type over all tasks (a jsonb object: its order is PHASES'), beside only the tasks
-- the payload can show: the first running_lim running in insertion order, the pending_lim oldest
-- pending (created_at, then insertion order) and the recent_lim finished ones (every status but
-- running and pending) most recently updated first, a task never updated first as the API's sort
-- on the text "None" puts it, ties in insertion order. Each list keeps its own ORDER BY ... LIMIT
-- (the indexes bound them); the rows come in insertion order, which stores/pipeline.py takes. A
-- row per shown task, each carrying the object; none: one row with the object and NULL task columns.
WITH by_phase AS (
    SELECT
        c.task_type,
        count(*) AS tasks
    FROM agent_tasks AS c
    WHERE c.status IN ('running', 'pending')
    GROUP BY c.task_type
),

phases AS (
    SELECT coalesce(jsonb_object_agg(b.task_type, b.tasks), '{}'::jsonb) AS by_phase
    FROM by_phase AS b
),

running AS (
    SELECT
        r.id,
        r.direction,
        r.task_type,
        r.status,
        r.model,
        r.command,
        r.tier,
        r.context,
        r.output,
        r.progress_pct,
        r.current_step,
        r.decision_prompt,
        r.decision,
        r.started_at,
        r.created_at,
        r.updated_at,
        r.claimed_by,
        r.claimed_at,
        r.seq
    FROM agent_tasks AS r
    WHERE r.status = 'running'
    ORDER BY r.seq
    LIMIT :running_lim
),

pending AS (
    SELECT
        p.id,
        p.direction,
        p.task_type,
        p.status,
        p.model,
        p.command,
        p.tier,
        p.context,
        p.output,
        p.progress_pct,
        p.current_step,
        p.decision_prompt,
        p.decision,
        p.started_at,
        p.created_at,
        p.updated_at,
        p.claimed_by,
        p.claimed_at,
        p.seq
    FROM agent_tasks AS p
    WHERE p.status = 'pending'
    ORDER BY p.created_at ASC, p.seq ASC
    LIMIT :pending_lim
),

recent AS (
    SELECT
        f.id,
        f.direction,
        f.task_type,
        f.status,
        f.model,
        f.command,
        f.tier,
        f.context,
        f.output,
        f.progress_pct,
        f.current_step,
        f.decision_prompt,
        f.decision,
        f.started_at,
        f.created_at,
        f.updated_at,
        f.claimed_by,
        f.claimed_at,
        f.seq
    FROM agent_tasks AS f
    WHERE f.status NOT IN ('running', 'pending')
    ORDER BY f.updated_at IS NULL DESC, f.updated_at DESC, f.seq ASC
    LIMIT :recent_lim
),

shown AS (
    SELECT * FROM running
    UNION ALL
    SELECT * FROM pending
    UNION ALL
    SELECT * FROM recent
)

SELECT
    n.by_phase AS "by_phase!",
    t.id,
    t.direction,
    t.task_type,
    t.status,
    t.model,
    t.command,
    t.tier,
    t.context,
    t.output,
    t.progress_pct,
    t.current_step,
    t.decision_prompt,
    t.decision,
    t.started_at,
    t.created_at,
    t.updated_at,
    t.claimed_by,
    t.claimed_at
FROM phases AS n
LEFT JOIN shown AS t ON TRUE
ORDER BY t.seq;

-- name: claim_next_task(worker, now)<!
-- Claim the oldest pending task (created_at, then seq) for worker and mark it running; a task
-- another claimer holds is skipped, so two claimers never get the same task.
UPDATE agent_tasks AS t
SET
    status = 'running',
    claimed_by = :worker,
    claimed_at = :now::timestamptz,
    started_at = coalesce(t.started_at, :now::timestamptz),
    updated_at = :now::timestamptz
WHERE
    t.id = (
        SELECT p.id
        FROM agent_tasks AS p
        WHERE p.status = 'pending'
        ORDER BY p.created_at ASC, p.seq ASC
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
RETURNING
    id, direction, task_type, status, model, command, tier, context, output, progress_pct,
    current_step, decision_prompt, decision, started_at, created_at, updated_at, claimed_by, claimed_at;

-- name: claim_task(id, worker, now)<!
-- Claim this task as claim_next_task would; no row when it does not exist or is not pending.
UPDATE agent_tasks AS t
SET
    status = 'running',
    claimed_by = :worker,
    claimed_at = :now::timestamptz,
    started_at = coalesce(t.started_at, :now::timestamptz),
    updated_at = :now::timestamptz
WHERE t.id = :id AND t.status = 'pending'
RETURNING
    id, direction, task_type, status, model, command, tier, context, output, progress_pct,
    current_step, decision_prompt, decision, started_at, created_at, updated_at, claimed_by, claimed_at;

-- name: clear_tasks()!
-- Delete every task (the API's clear_store, for tests and resets).
DELETE FROM agent_tasks;
