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

-- name: list_attention_tasks(lim)
-- Tasks that need a person (needs_decision or failed), newest first.
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
WHERE t.status IN ('needs_decision', 'failed')
ORDER BY t.created_at DESC, t.seq ASC
LIMIT :lim;

-- name: count_attention_tasks()$
-- How many tasks need a person (needs_decision or failed).
SELECT count(*) AS "total!"
FROM agent_tasks AS t
WHERE t.status IN ('needs_decision', 'failed');

-- name: review_attention_tasks()
-- Every task that needs a person, in insertion order (get_review_summary).
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
WHERE t.status IN ('needs_decision', 'failed')
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

-- name: pipeline_running(lim)
-- Running tasks in insertion order (get_pipeline_status).
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
WHERE t.status = 'running'
ORDER BY t.seq
LIMIT :lim;

-- name: pipeline_pending(lim)
-- Pending tasks, oldest first; ties in insertion order (get_pipeline_status).
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
WHERE t.status = 'pending'
ORDER BY t.created_at ASC, t.seq ASC
LIMIT :lim;

-- name: pipeline_recent(lim)
-- Finished tasks (every status but running and pending), most recently updated first. A task never
-- updated comes first, as the API's sort on the text "None" puts it; ties in insertion order.
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
WHERE t.status NOT IN ('running', 'pending')
ORDER BY t.updated_at IS NULL DESC, t.updated_at DESC, t.seq ASC
LIMIT :lim;

-- name: pipeline_phase_counts()
-- Running plus pending tasks per task type (get_pipeline_status running_by_phase).
SELECT
    t.task_type,
    count(*) AS "tasks!"
FROM agent_tasks AS t
WHERE t.status IN ('running', 'pending')
GROUP BY t.task_type
ORDER BY t.task_type;

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
