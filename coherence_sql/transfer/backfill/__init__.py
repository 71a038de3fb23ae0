"""Backfill: load a JSON snapshot of the in-memory stores into PostgreSQL at bulk speed, resumably.

Every record is checked first, as the stores would check it, and every problem is collected in one
pass: without a quarantine file a dirty snapshot raises `DirtySnapshotError` listing them all before
anything is written; with one, the valid records load and the refused ones (and the records that
depend on them) go to a snapshot-shaped file with their reasons, to be fixed and backfilled later.
Then each section goes batch by batch: COPY into a temporary staging table, one set-based merge
with ON CONFLICT DO NOTHING (queries/backfill.sql) and the batch's checkpoint, in one transaction.
A re-run, or a run after a kill, ends in the same state.

    report = await backfill("postgresql://…", "snapshot.json", quarantine="refused.json")
    print(report.inserted, report.seconds, report.problems)

Modules, one job each: `checks` (per-record rules), `plan` (what loads in which unit and order),
`load` (sessions, COPY + merge, the scheduler), `quarantine` (the refused records' file),
`source` (the snapshot file and its digest), `report` (what a run did), `run` (`backfill()`).
"""

from __future__ import annotations

from coherence_sql.transfer.backfill.load import BATCH_ATTEMPTS, DEFAULT_JOBS, STATEMENT_TIMEOUT, Progress
from coherence_sql.transfer.backfill.plan import DEFAULT_BATCH_SIZE, KEYS_PER_TRANSACTION, PARTITIONS, SECTIONS
from coherence_sql.transfer.backfill.quarantine import write_quarantine
from coherence_sql.transfer.backfill.report import BackfillReport, DirtySnapshotError, Normalisation, SectionReport
from coherence_sql.transfer.backfill.run import backfill
from coherence_sql.transfer.backfill.source import read_collected_snapshot, read_snapshot_file, snapshot_digest

__all__ = [
    "BATCH_ATTEMPTS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_JOBS",
    "KEYS_PER_TRANSACTION",
    "PARTITIONS",
    "SECTIONS",
    "STATEMENT_TIMEOUT",
    "BackfillReport",
    "DirtySnapshotError",
    "Normalisation",
    "Progress",
    "SectionReport",
    "backfill",
    "read_collected_snapshot",
    "read_snapshot_file",
    "snapshot_digest",
    "write_quarantine",
]
