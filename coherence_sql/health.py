"""Health for the API's `/api/ready`: does PostgreSQL answer, is its schema this code's, can the
role write, and (for the cut-over stores) where the cut-over stands; plus the start-up check that
refuses a database the role cannot write.

`check_health(stores_or_pool)` returns a `HealthReport` and never raises for a database that is
down or slow: it reports it, within its timeout (5 s by default). `CutoverStores.check_health()`
adds the cut-over's state and decides readiness by phase (docs/decisions.md, "Operating it").
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from coherence_sql.errors import CoherenceSQLError, DatabaseNotWritableError
from coherence_sql.schema import SchemaFile, discover
from coherence_sql.sql import health as health_sql
from coherence_sql.stores.postgres import PostgresStores

if TYPE_CHECKING:
    from coherence_sql.db import Pool

T = TypeVar("T")

HEALTH_TIMEOUT_S: Final = 5.0

# The privileges the stores' writes need, table by table: their named queries (queries/*.sql) and
# what the schema's functions and triggers write on their behalf (a trigger runs with the caller's
# privileges): ON CONFLICT DO UPDATE needs UPDATE; record_dependency() inserts edges and deletes
# pending ones; the count triggers update projects, the cost trigger updates assets. SELECT on
# every one of them: RETURNING, ON CONFLICT and UPDATE/DELETE ... WHERE read the rows they write
# (a role with INSERT alone passes nothing but a bare INSERT), and the stores read them all.
# tests/cutover/test_health.py runs the stores as a role granted exactly these.
STORE_WRITES: Final[Mapping[str, tuple[str, ...]]] = {
    "projects": ("SELECT", "INSERT", "UPDATE"),
    "project_dependencies": ("SELECT", "INSERT"),
    "pending_dependencies": ("SELECT", "INSERT", "DELETE"),
    "contributors": ("SELECT", "INSERT"),
    "assets": ("SELECT", "INSERT", "UPDATE"),
    "contributions": ("SELECT", "INSERT"),
    "github_contributors": ("SELECT", "INSERT", "UPDATE"),
    "github_organizations": ("SELECT", "INSERT", "UPDATE"),
    "github_contributes_to": ("SELECT", "INSERT"),
    "agent_tasks": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "shadow_mismatches": ("SELECT", "INSERT"),
}


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseCheck(_Part):
    """The round trip: whether PostgreSQL answered, how fast, and who we are there."""

    reachable: bool
    round_trip_ms: float | None = None
    server_version: str | None = None
    role: str | None = None
    error: str | None = None


class SchemaCheck(_Part):
    """The applied schema files against the files this code ships (by file name)."""

    current: bool
    shipped: int
    applied: int
    behind: list[str]  # shipped, not applied: `coherence-sql migrate`
    ahead: list[str]  # applied, unknown to this code: newer code was deployed somewhere
    changed: list[str]  # applied with another checksum, or failed part-way (dirty)


class WriteCheck(_Part):
    """Whether the role can write what the stores write (STORE_WRITES)."""

    writable: bool
    in_recovery: bool  # a hot standby
    read_only: bool  # default_transaction_read_only (a failover's old primary, a misconfiguration)
    missing_privileges: list[str]  # "table PRIVILEGE"


class CutoverCheck(_Part):
    """The cut-over's state (the fields of StoreStatus a readiness probe needs)."""

    phase: Literal["memory", "dual-write", "postgres-primary"]
    degraded: bool
    diverged: bool
    diverged_since: str | None
    journal_pending: int | None  # None: the journal could not be read
    dead_letters: int | None


class HealthReport(_Part):
    """The answer to `/api/ready`: `ready`, and why not in `reasons`; `warnings` name what an
    operator should look at although the API can serve. `database`, `schema_files` and `writes` are None
    where PostgreSQL is not configured or was not reached; `cutover` only for the cut-over stores."""

    ready: bool
    reasons: list[str]
    warnings: list[str]
    database: DatabaseCheck | None
    schema_files: SchemaCheck | None = None
    writes: WriteCheck | None = None
    cutover: CutoverCheck | None = None
    checked_in_ms: float


@dataclass(frozen=True, slots=True)
class DatabaseProbe:
    """What one probe of PostgreSQL found, before a verdict."""

    database: DatabaseCheck
    schema_files: SchemaCheck | None = None
    writes: WriteCheck | None = None

    def problems(self) -> tuple[list[str], list[str]]:
        """(what stops the stores from working, what only deserves a look)."""
        if not self.database.reachable:
            return [f"PostgreSQL does not answer: {self.database.error}"], []
        blocking: list[str] = []
        notes: list[str] = []
        if self.schema_files is not None:
            if self.schema_files.behind:
                pending = ", ".join(self.schema_files.behind)
                blocking.append(f"the schema is behind this code: {pending} pending; run `coherence-sql migrate`")
            if self.schema_files.changed:
                blocking.append(
                    f"applied schema files were edited or failed part-way: {', '.join(self.schema_files.changed)}"
                )
            if self.schema_files.ahead:
                notes.append(
                    f"the schema is ahead of this code: {', '.join(self.schema_files.ahead)} applied but unknown; "
                    f"deploy the newer code"
                )
        writes = self.writes
        if writes is not None and not writes.writable:
            # Behind, the tables may not exist yet: "lacks INSERT" would only repeat "run migrate".
            behind = self.schema_files is not None and bool(self.schema_files.behind)
            if writes.in_recovery or writes.read_only or not behind:
                blocking.append(str(not_writable(writes, self.database.role)))
        return blocking, notes


@functools.cache
def _shipped() -> tuple[SchemaFile, ...]:
    return tuple(discover())  # the files this code ships never change while it runs


def _write_privileges() -> tuple[list[str], list[str]]:
    tables = [table for table, privileges in STORE_WRITES.items() for _ in privileges]
    wanted = [privilege for privileges in STORE_WRITES.values() for privilege in privileges]
    return tables, wanted


def not_writable(writes: WriteCheck, role: str | None) -> DatabaseNotWritableError:
    """The start-up error for a database the role cannot write, naming every reason."""
    why: list[str] = []
    if writes.in_recovery:
        why.append("the server is a hot standby (in recovery): DATABASE_URL must name the primary")
    elif writes.read_only:
        why.append("the server's sessions are read-only (default_transaction_read_only = on)")
    if writes.missing_privileges:
        why.append(f"role {role} lacks {', '.join(writes.missing_privileges)}")
    return DatabaseNotWritableError(f"the stores cannot write to this database: {'; '.join(why)}")


def _schema_check(rows: Sequence[health_sql.SchemaHistoryRow]) -> SchemaCheck:
    files = _shipped()
    by_version = {f.version: f for f in files}
    applied = {row.version: row for row in rows}
    behind = [f.filename for f in files if f.version not in applied]
    ahead = [f"{row.version:03d}_{row.name}.sql" for row in rows if row.version not in by_version]
    changed = [
        shipped.filename
        for row in rows
        if (shipped := by_version.get(row.version)) is not None
        and (not row.success or (row.name, row.checksum) != (shipped.name, shipped.checksum))
    ]
    return SchemaCheck(
        current=not (behind or ahead or changed),
        shipped=len(files),
        applied=len(rows),
        behind=behind,
        ahead=ahead,
        changed=changed,
    )


def _write_check(state: health_sql.ServerStateRow) -> WriteCheck:
    return WriteCheck(
        writable=not (state.in_recovery or state.read_only or state.missing),
        in_recovery=state.in_recovery,
        read_only=state.read_only,
        missing_privileges=list(state.missing),
    )


async def _server_state(conn: Any) -> health_sql.ServerStateRow:
    tables, privileges = _write_privileges()
    state = await health_sql.server_state(conn, tables=tables, privileges=privileges)
    assert state is not None  # a SELECT without FROM returns its one row
    return state


async def _probe(pool: Pool) -> DatabaseProbe:
    # Two round trips on one connection: the server's state, then the schema history (only when
    # the history table exists; a query on a missing table would fail the whole check).
    started = time.perf_counter()
    async with pool.acquire() as conn:
        state = await _server_state(conn)
        round_trip_ms = (time.perf_counter() - started) * 1000
        history = await health_sql.schema_history(conn) if state.has_history else []
    return DatabaseProbe(
        database=DatabaseCheck(
            reachable=True, round_trip_ms=round(round_trip_ms, 2), server_version=state.version, role=state.role
        ),
        schema_files=_schema_check(history),
        writes=_write_check(state),
    )


_ABANDONED: set[asyncio.Task[Any]] = set()  # probes past their timeout, left to end on their own


def _forget(task: asyncio.Task[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def answer_within(work: Coroutine[Any, Any, T], timeout_s: float) -> T:
    """`work`'s result within `timeout_s`, else TimeoutError at once. Unlike `asyncio.wait_for`,
    this never waits for the cancelled work to finish: a query cancelled on a frozen server is
    only acknowledged when the pool's release bound runs out (coherence_sql/pool.py)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError


async def probe_database(pool: Pool, timeout_s: float = HEALTH_TIMEOUT_S) -> DatabaseProbe:
    """Probe PostgreSQL through `pool`; a failure or a timeout is reported, never raised."""
    try:
        return await answer_within(_probe(pool), timeout_s)
    except TimeoutError:
        error = f"no answer within {timeout_s:g}s"
    except CoherenceSQLError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return DatabaseProbe(database=DatabaseCheck(reachable=False, error=error))


async def check_health(target: PostgresStores | Pool, *, timeout_s: float = HEALTH_TIMEOUT_S) -> HealthReport:
    """Whether the PostgreSQL stores (or a pool's users) can serve: PostgreSQL answers within
    `timeout_s`, the schema is not behind, the role can write. Never raises for a database that
    is down; returns within `timeout_s` (plus scheduling)."""
    started = time.perf_counter()
    pool = target.pool if isinstance(target, PostgresStores) else target
    return verdict(await probe_database(pool, timeout_s), started=started)


def verdict(probe: DatabaseProbe, *, started: float) -> HealthReport:
    """The report on a probe for code on the PostgreSQL stores: every problem is a reason
    (`started`: the check's perf_counter() start)."""
    reasons, warnings = probe.problems()
    return HealthReport(
        ready=not reasons,
        reasons=reasons,
        warnings=warnings,
        database=probe.database,
        schema_files=probe.schema_files,
        writes=probe.writes,
        checked_in_ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def require_writable(pool: Pool) -> None:
    """For start-up: raise DatabaseNotWritableError unless the role can write what the stores
    write (not a hot standby, sessions not read-only, every privilege of STORE_WRITES)."""
    # One round trip, on a pool that just checked the schema (stores.postgres.connect).
    async with pool.acquire() as conn:
        state = await _server_state(conn)
    writes = _write_check(state)
    if not writes.writable:
        raise not_writable(writes, state.role)


def cutover_verdict(
    cutover: CutoverCheck, probe: DatabaseProbe | None, *, checked_in_ms: float
) -> HealthReport:
    """Readiness of the cut-over stores. In phases 1-2 memory is the source of truth and serves
    every call, so PostgreSQL's problems (away, behind, unwritable, diverged, a backlog) are
    warnings, not reasons: taking the API out of rotation for them would turn a PostgreSQL outage
    into an API outage. In phase 3 PostgreSQL serves: its problems, and a divergence, are reasons."""
    reasons: list[str] = []
    warnings: list[str] = []
    if probe is not None:
        blocking, notes = probe.problems()
        reasons += blocking
        warnings += notes
    if cutover.diverged:
        reasons.append(f"PostgreSQL diverged since {cutover.diverged_since}: it misses writes nothing can replay")
    if cutover.phase != "postgres-primary":
        warnings = reasons + warnings
        reasons = []
    if cutover.degraded:
        warnings.append("started without PostgreSQL and has not reached it since: writes are journaled")
    if cutover.journal_pending:
        warnings.append(f"{cutover.journal_pending} write(s) wait in the journal for PostgreSQL")
    elif cutover.journal_pending is None:
        warnings.append("the write journal cannot be read")
    if cutover.dead_letters:
        warnings.append(f"{cutover.dead_letters} dead letter(s) wait for an operator (docs/runbook.md)")
    return HealthReport(
        ready=not reasons,
        reasons=reasons,
        warnings=warnings,
        database=None if probe is None else probe.database,
        schema_files=None if probe is None else probe.schema_files,
        writes=None if probe is None else probe.writes,
        cutover=cutover,
        checked_in_ms=checked_in_ms,
    )
