"""`backfill()`: the entry point that reads the snapshot, plans it, and loads it with the scheduler."""

from __future__ import annotations

import bisect
import re
import time
from pathlib import Path

from coherence_sql.db import Pool
from coherence_sql.errors import InvalidValueError, SnapshotError
from coherence_sql.schema import require_current
from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.transfer.backfill.load import (
    DEFAULT_JOBS,
    Progress,
    Scheduler,
    check_references,
    reserve_contribution_seqs,
    schedule_order,
    sessions,
)
from coherence_sql.transfer.backfill.plan import DEFAULT_BATCH_SIZE, Plan, Unit
from coherence_sql.transfer.backfill.quarantine import write_quarantine
from coherence_sql.transfer.backfill.report import BackfillReport, DirtySnapshotError, SectionReport
from coherence_sql.transfer.backfill.source import read_collected_snapshot, same_file, snapshot_digest
from coherence_sql.transfer.snapshot import (
    GRAPH_SECTIONS,
    TASK_SECTION,
    CollectedSnapshot,
    Snapshot,
    collector_paused,
)

__all__ = ["backfill"]


async def backfill(
    target: str | Pool | None,
    source: Snapshot | str | Path,
    *,
    snapshot_sha256: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    jobs: int = DEFAULT_JOBS,
    restart: bool = False,
    vacuum: bool = True,
    per_row_foreign_keys: bool = False,
    progress: Progress | None = None,
    quarantine: str | Path | None = None,
) -> BackfillReport:
    """Load `source` (a snapshot file or a `Snapshot`) into PostgreSQL; return what was done.

    `target` is a DSN, a pool, or None ($DATABASE_URL, else the embedded server). Rows PostgreSQL
    already has are left alone (ON CONFLICT DO NOTHING): the runbook takes the snapshot after
    dual-write started, so they are at least as new. Progress is checkpointed per batch under the
    snapshot's SHA-256 (the file's bytes, or `snapshot_digest`), so a second run resumes where the
    first stopped; `restart=True` forgets the checkpoints and merges everything again (still
    idempotent). `jobs` connections load independent sections (and partitions of contributions)
    at once. `vacuum`: once a table group is loaded, VACUUM (ANALYZE) the projects' tables (trigram
    pending lists) and ANALYZE the others. When the role may set `session_replication_role` (a
    superuser, or `GRANT SET ON PARAMETER`), contributions and edges check their references once per
    batch and skip the foreign keys' per-row triggers; `per_row_foreign_keys=True` keeps the
    triggers.

    Every record a store would refuse, and every record depending on one, is a problem; all are
    found in one pass. Without `quarantine` any problem raises `DirtySnapshotError` (listing them
    all in `.report.problems`) before anything is written; with it, the refused records are written
    to that file (snapshot-shaped, reasons in its "problems" list; see `write_quarantine`) and the
    valid ones load. A whole-file problem (unreadable, not UTF-8 JSON, nested too deep, not an
    object, a section that is not a list) raises `SnapshotError` at once.
    """
    if batch_size < 1:
        raise InvalidValueError(f"batch_size must be at least 1, got {batch_size}")
    if jobs < 1:
        raise InvalidValueError(f"jobs must be at least 1, got {jobs}")
    started = time.perf_counter()
    quarantine_path = None if quarantine is None else Path(quarantine)
    collected: CollectedSnapshot | None = None
    if isinstance(source, Snapshot):
        snapshot = source
        sha = snapshot_sha256 or snapshot_digest(snapshot)
    else:
        if quarantine_path is not None and same_file(quarantine_path, Path(source)):
            raise SnapshotError(f"the quarantine file {quarantine_path} is the snapshot itself: name another file")
        collected, file_sha = read_collected_snapshot(source)
        snapshot = collected.snapshot
        sha = snapshot_sha256 or file_sha
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise InvalidValueError(f"snapshot_sha256 must be 64 lower-case hex digits, got {sha!r}")
    if quarantine_path is not None and quarantine_path.is_dir():
        raise SnapshotError(f"the quarantine file {quarantine_path} is a directory: name a file")
    try:
        with collector_paused():  # ~200k new tuples among ~200k models
            plan = Plan(snapshot, batch_size, collected)
    finally:
        if collected is not None:
            collected.close()  # the file the plan's pass over the edges read
    # The file's decoded records and their models: plan.raw keeps the ones a quarantine may need.
    del collected, snapshot
    report = BackfillReport(sha)
    async with sessions(target, jobs, sha) as conns:
        first = conns[0]
        await require_current(first)
        await check_references(first, plan)
        order = {name: i for i, name in enumerate((*GRAPH_SECTIONS, TASK_SECTION))}
        report.problems = sorted(plan.problems, key=lambda p: (order[p.section], p.index))
        report.normalised = [n for n in plan.normalised.values() if n.count]
        if report.problems and quarantine_path is None:
            raise DirtySnapshotError(report)
        if quarantine_path is not None:  # before loading: the refused records are safe first
            write_quarantine(quarantine_path, plan)
            report.quarantine = str(quarantine_path)
        references_per_batch = not per_row_foreign_keys and bool(
            await backfill_sql.may_skip_foreign_key_triggers(first)
        )
        for conn in conns:
            await backfill_sql.set_reference_checks(conn, per_batch="on" if references_per_batch else "off")
        report.references_per_batch = references_per_batch
        if restart:
            await backfill_sql.clear_checkpoints(first, snapshot_sha256=sha)
        checkpoints = {row.section: row for row in await backfill_sql.get_checkpoints(first, snapshot_sha256=sha)}
        units: list[Unit] = []
        reports: dict[str, SectionReport] = {}
        for section in plan.sections:
            section_units = section.units()
            for unit in section_units:
                before = checkpoints.get(unit.key)
                if before is None:
                    unit.start = 0
                elif unit.resume_by_count:
                    unit.start = min(before.staged, len(unit.rows))
                else:
                    unit.start = bisect.bisect_right([row[0] for row in unit.rows], before.done_through)
            if section.name == "contributions" and any(u.start < len(u.rows) for u in section_units):
                await reserve_contribution_seqs(first, sha, plan.contribution_slots)
            reports[section.name] = SectionReport(
                section.name, len(section.rows), resumed=sum(u.start for u in section_units)
            )
            units.extend(section_units)
        report.sections = list(reports.values())
        if progress is not None:
            for name, section_report in reports.items():
                progress(name, section_report.resumed, section_report.records)
        report.check_seconds = time.perf_counter() - started
        scheduler = Scheduler(sha, schedule_order(units, jobs), reports, progress, vacuum=vacuum)
        await scheduler.run(conns, checkpoints)
        report.vacuum_seconds = scheduler.vacuum_seconds
    report.seconds = time.perf_counter() - started
    return report
