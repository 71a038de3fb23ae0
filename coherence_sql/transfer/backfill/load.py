"""Loading the plan into PostgreSQL: the sessions, COPY + merge of each batch, the checks that need
the database (orphans, the seq block), and the scheduler that hands units to connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Final, cast

import asyncpg

from coherence_sql.db import DEFAULT_SERVER_SETTINGS, Connection, Pool, connect, resolve_dsn
from coherence_sql.errors import (
    DRIVER_FAILURES,
    CoherenceSQLError,
    ConcurrencyError,
    DatabaseError,
    DuplicateError,
    InvalidValueError,
    SnapshotError,
    UnknownReferenceError,
    translate,
)
from coherence_sql.pool import mark_session_changed
from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.sql._runtime import Executor
from coherence_sql.transfer.backfill.plan import Plan, Row, Section, Unit
from coherence_sql.transfer.backfill.report import SectionReport
from coherence_sql.transfer.progress import Progress

__all__ = [
    "BATCH_ATTEMPTS",
    "DEFAULT_JOBS",
    "STATEMENT_TIMEOUT",
    "Progress",
    "Scheduler",
    "check_references",
    "reserve_contribution_seqs",
    "schedule_order",
    "sessions",
]

BATCH_ATTEMPTS: Final = 3  # a deadlock or serialization failure with a live writer is retried
DEFAULT_JOBS: Final = 2  # connections loading at once (independent sections, partitions)
STATEMENT_TIMEOUT: Final = "15min"  # VACUUM of a large table outlives the pool's 60 s


@asynccontextmanager
async def _session(target: str | Pool | None) -> AsyncIterator[Connection]:
    """One connection for the whole run (the staging tables live in its session)."""
    if isinstance(target, asyncpg.Pool):
        try:
            async with target.acquire() as proxy:
                # Its set_config(..., false) and staging tables are session state: reset on release.
                mark_session_changed(proxy)
                yield cast(Connection, proxy)  # the proxy forwards every call
        except CoherenceSQLError:
            raise
        except DRIVER_FAILURES as exc:
            raise translate(exc, "backfill") from None
        return
    settings = {**DEFAULT_SERVER_SETTINGS, "application_name": "coherence_sql backfill"}
    conn = await connect(resolve_dsn(target), server_settings=settings)
    try:
        yield conn
    finally:
        await conn.close()


_DATA_ERRORS: Final = (InvalidValueError, UnknownReferenceError, DuplicateError)
Merge = Callable[[Executor], Awaitable[None]]


_EDGE_IDS_TABLE: Final = "backfill_stage_edge_ids"
_EDGE_IDS_COLUMNS: Final = ("ord", "from_id", "to_id")


def _staged(section: Section, rows: Sequence[Row], by_id: bool) -> tuple[str, Sequence[str], Sequence[Row], Merge]:
    """Where a batch is staged and how it is merged: the edges by project id when they may (both
    projects in PostgreSQL), else by key; every other section as its rows are."""
    edges = section.edge_keys
    if edges is None:
        return section.table, section.columns, rows, section.merge
    if by_id:
        staged = edges.by_id(rows)
        if staged is not None:
            return _EDGE_IDS_TABLE, _EDGE_IDS_COLUMNS, staged, backfill_sql.merge_edges_by_id
    return section.table, section.columns, edges.by_key(rows), section.merge


async def _load_batch(conn: Connection, section: Section, rows: Sequence[Row], *, by_id: bool = False) -> None:
    """COPY one batch into staging and merge it, in one transaction; retried on a deadlock."""
    table, columns, staged, merge = _staged(section, rows, by_id)
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(table, records=staged, columns=columns)
                    await merge(conn)
            except CoherenceSQLError:
                raise
            except DRIVER_FAILURES as exc:
                raise translate(exc, f"backfill.{section.name}") from None
            return
        except ConcurrencyError:
            if attempt == BATCH_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
        except _DATA_ERRORS as exc:
            first, last = min(row[0] for row in rows) - 1, max(row[0] for row in rows) - 1  # rows may be clustered
            raise SnapshotError(
                f"{section.name}[{first}..{last}]: PostgreSQL refused the batch (nothing of it was written): {exc}"
            ) from None


async def check_references(conn: Connection, plan: Plan) -> None:
    """Contributions may name contributors and assets PostgreSQL already has; a contribution that
    names one PostgreSQL lacks too is refused (an orphan)."""
    orphans: dict[int, str] = {}  # ord → why
    for kind, wanted, lookup in (
        ("contributor", plan.external_contributors, backfill_sql.existing_contributor_ids),
        ("asset", plan.external_assets, backfill_sql.existing_asset_ids),
    ):
        if not wanted:
            continue
        found = {row.id for row in await lookup(conn, ids=list(wanted))}
        for ref, ords in wanted.items():
            if ref not in found:
                for ord_ in ords:
                    orphans.setdefault(ord_, f"the {kind} {ref} is neither in the snapshot nor in PostgreSQL")
    for ord_, reason in sorted(orphans.items()):
        plan.refuse("contributions", ord_ - 1, plan.raw["contributions", ord_ - 1], reason, "orphan")
    if orphans:
        plan.drop_rows("contributions", set(orphans))


async def reserve_contribution_seqs(conn: Connection, sha: str, count: int) -> None:
    """Reserve one block of `count` contributions.seq values for the snapshot, once: the merge gives
    the k-th contribution the block's k-th value, so a resumed run keeps the order."""
    ranges = await backfill_sql.get_reserved_seqs(conn, snapshot_sha256=sha)
    if len(ranges) == 1 and ranges[0].last_seq - ranges[0].first_seq + 1 == count:
        return
    if ranges:  # the same snapshot always has the same contributions: the table was edited by hand
        held = sum(r.last_seq - r.first_seq + 1 for r in ranges)
        raise DatabaseError(
            f"backfill_reserved_seqs holds {len(ranges)} range(s) of {held} values for this snapshot, which has "
            f"{count} contributions: run again with restart (--restart)"
        )
    try:
        async with conn.transaction():
            await backfill_sql.lock_contributions_seq(conn)
            first = await backfill_sql.reserve_contribution_seq_block(conn, n=count)
            assert first is not None
            await backfill_sql.record_reserved_seqs(
                conn, snapshot_sha256=sha, first_seqs=[first], last_seqs=[first + count - 1]
            )
    except CoherenceSQLError:
        raise
    except DRIVER_FAILURES as exc:
        raise translate(exc, "backfill.reserve_contribution_seq_block") from None


# After a table group is loaded: VACUUM (ANALYZE) where a bulk load leaves the trigram indexes'
# pending lists full (docs/decisions.md), ANALYZE elsewhere (insert-only tables; autovacuum follows).
_VACUUM: Final[dict[str, Callable[[Executor], Awaitable[None]]]] = {
    "contributions": backfill_sql.analyze_contributions,
    "projects": backfill_sql.vacuum_projects,
    "github": backfill_sql.analyze_github,
    "agent_tasks": backfill_sql.analyze_agent_tasks,
}


def schedule_order(units: list[Unit], jobs: int) -> list[Unit]:
    """Section order for one connection; with several, the long chains start first: the parents,
    then contribution and edge partitions alternately, then the small independent sections."""
    if jobs == 1:
        return units
    rank = {"contributors": 0, "assets": 0, "projects": 0, "contributions": 1, "edges": 1}
    ordered = sorted(enumerate(units), key=lambda item: (rank.get(item[1].section.name, 2), item[1].key[-1:], item[0]))
    return [unit for _, unit in ordered]


class Scheduler:
    """Hands units to connections: the first waiting unit whose `after` sections have committed.
    When the last unit of a section commits, its worker ANALYZEs it (for the sections after it) and,
    once a table group is complete, VACUUMs the group while the other connections keep loading."""

    def __init__(
        self,
        sha: str,
        units: list[Unit],
        reports: dict[str, SectionReport],
        progress: Progress | None,
        *,
        vacuum: bool,
    ) -> None:
        self._sha = sha
        self._waiting = list(units)
        self._open: dict[str, int] = {}  # section → units not committed yet
        self._members: dict[str, set[str]] = {}  # vacuum group → its sections
        for unit in units:
            section = unit.section
            self._open[section.name] = self._open.get(section.name, 0) + 1
            self._members.setdefault(section.vacuum, set()).add(section.name)
        self._incomplete = {group: set(names) for group, names in self._members.items()}
        self._changed = asyncio.Condition()
        self._reports = reports
        self._progress = progress
        self._vacuum = vacuum
        self._done: dict[str, int] = {name: r.resumed for name, r in reports.items()}
        self._started: dict[str, float] = {}
        self.vacuum_seconds: float | None = None

    def _ready(self) -> Unit | None:
        for unit in self._waiting:
            if unit.last and self._open[unit.section.name] > 1:
                continue  # its section's other units are still loading
            if all(self._open.get(name, 0) == 0 for name in unit.section.after):
                return unit
        return None

    async def run(self, conns: Sequence[Connection], checkpoints: dict[str, backfill_sql.GetCheckpointsRow]) -> None:
        workers = [asyncio.ensure_future(self._work(conn, checkpoints)) for conn in conns]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for worker in done:
                worker.result()  # the first failure, as it was raised
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, conn: Connection, checkpoints: dict[str, backfill_sql.GetCheckpointsRow]) -> None:
        while True:
            async with self._changed:
                unit = self._ready()
                while unit is None and self._waiting:
                    await self._changed.wait()
                    unit = self._ready()
                if unit is None:
                    return
                self._waiting.remove(unit)
            await self._load_unit(conn, unit, checkpoints.get(unit.key))
            section = unit.section
            self._open[section.name] -= 1
            if self._open[section.name] == 0:
                await self._section_done(conn, section)
            async with self._changed:
                self._changed.notify_all()

    async def _section_done(self, conn: Connection, section: Section) -> None:
        report = self._reports[section.name]
        report.seconds = time.perf_counter() - self._started.get(section.name, time.perf_counter())
        if section.analyze is not None and report.inserted:
            await section.analyze(conn)  # the sections waiting on it plan with real statistics
        incomplete = self._incomplete[section.vacuum]
        incomplete.discard(section.name)
        filled = any(self._reports[name].inserted for name in self._members[section.vacuum])
        if self._vacuum and not incomplete and filled:
            began = time.perf_counter()
            await _VACUUM[section.vacuum](conn)
            self.vacuum_seconds = (self.vacuum_seconds or 0.0) + time.perf_counter() - began

    async def _load_unit(self, conn: Connection, unit: Unit, before: backfill_sql.GetCheckpointsRow | None) -> None:
        section = unit.section
        report = self._reports[section.name]
        self._started.setdefault(section.name, time.perf_counter())
        await backfill_sql.start_unit(conn, unit=unit.key)
        # The edges of the partitions name projects the snapshot has, committed by now: by id. The
        # locking unit's name a project the snapshot lacks: by key, through record_dependency.
        by_id = section.edge_keys is not None and not unit.last and unit.start < len(unit.rows)
        if by_id:
            assert section.edge_keys is not None
            await section.edge_keys.read_ids(conn)
        staged = 0
        for first, end in unit.batches():
            await _load_batch(conn, section, unit.rows[first:end], by_id=by_id)
            staged += end - first
            self._done[section.name] += end - first
            if self._progress is not None:
                self._progress(section.name, self._done[section.name], report.records)
        if staged:
            after = await backfill_sql.get_checkpoints(conn, snapshot_sha256=self._sha)
            now = next(row.inserted for row in after if row.section == unit.key)
            report.inserted += now - (0 if before is None else before.inserted)
            report.staged += staged


@asynccontextmanager
async def sessions(target: str | Pool | None, jobs: int, sha: str) -> AsyncIterator[list[Connection]]:
    """`jobs` connections, each with the staging tables and the snapshot named in its session."""
    async with AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(_session(target)) for _ in range(jobs)]
        for conn in conns:
            await backfill_sql.start_session(conn, snapshot_sha256=sha)
            await backfill_sql.session_statement_timeout(conn, duration=STATEMENT_TIMEOUT)
            await backfill_sql.create_staging(conn)
        yield conns
        for conn in conns:
            await backfill_sql.drop_staging(conn)
