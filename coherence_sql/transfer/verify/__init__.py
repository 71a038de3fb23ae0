"""Verify: compare the in-memory stores (or a snapshot file) with PostgreSQL, field by field.

Every entity is matched by key: records missing on either side and fields that differ are listed
with the key and both values; the aggregates (total_cost = sum of contributions, dependency_count
= out-degree) are checked on both sides, and so are the problems a side can hold on its own (an edge
listed twice, a GitHub contributes-to edge whose contributor is unknown). PostgreSQL is read in
keyset pages inside one REPEATABLE READ transaction (one moment), and both sides go through one
projection (`project`: the scans name their columns as the models' fields). Given the write journal, the writes still on
their way to PostgreSQL and the dead letters are reported too. `verify` holds a 16-byte digest
per key, not the records (`streamed`): the source is read once, PostgreSQL once page by page, and
the source again for the keys that differ only.

    report = await verify(stores, pool, journal=path)   # MemoryStores, a Snapshot or a snapshot file
    if not report.passed: print(render.verify_table(report))

Modules, one job each: `report` (the report's data), `project` (one side as comparable values),
`compare` (two sides in memory into a report), `digest` (a value's 16-byte digest), `source` (the
source read record by record, twice), `streamed` (the comparison by digests), `journal` (the
journal's backlog), `run` (`verify()`).
"""

from __future__ import annotations

from coherence_sql.transfer.postgres_reader import PAGE_SIZE, PostgresContents, read_postgres
from coherence_sql.transfer.verify.compare import compare
from coherence_sql.transfer.verify.journal import read_journal
from coherence_sql.transfer.verify.report import (
    AGGREGATE,
    DEFAULT_THRESHOLD_PERCENT,
    DUPLICATE,
    ENTITIES,
    FIELD,
    FIELDS,
    INVARIANT,
    MISSING_IN_POSTGRES,
    MISSING_IN_SOURCE,
    UNKNOWN_REFERENCE,
    Difference,
    EntityCounts,
    JournalBacklog,
    VerifyReport,
    counts_by_kind,
)
from coherence_sql.transfer.verify.run import verify, verify_memory

__all__ = [
    "AGGREGATE",
    "DEFAULT_THRESHOLD_PERCENT",
    "DUPLICATE",
    "ENTITIES",
    "FIELD",
    "FIELDS",
    "INVARIANT",
    "MISSING_IN_POSTGRES",
    "MISSING_IN_SOURCE",
    "PAGE_SIZE",
    "UNKNOWN_REFERENCE",
    "Difference",
    "EntityCounts",
    "JournalBacklog",
    "PostgresContents",
    "VerifyReport",
    "compare",
    "counts_by_kind",
    "read_journal",
    "read_postgres",
    "verify",
    "verify_memory",
]
