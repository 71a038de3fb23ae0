"""The comparison: two sides' records through one projection, key by key, into a `VerifyReport`."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from coherence_sql.transfer.verify.project import Finding, Projection, Records, Values, project
from coherence_sql.transfer.verify.report import (
    AGGREGATE,
    DEFAULT_THRESHOLD_PERCENT,
    ENTITIES,
    FIELD,
    FIELDS,
    INVARIANT,
    MISSING_IN_POSTGRES,
    MISSING_IN_SOURCE,
    PROBLEMS,
    Difference,
    EntityCounts,
    Key,
    VerifyReport,
    jsonable,
    render_key,
)

__all__ = ["add_findings", "compare", "compare_projections", "group_findings", "in_sample", "key_differences"]


def in_sample(entity: str, key: Key, percent: float) -> bool:
    """A stable choice by key (CRC-32 of entity and key, in steps of 0.01%): the same keys every run."""
    if percent >= 100:
        return True
    digest = zlib.crc32(f"{entity}:{render_key(entity, key)}".encode())
    return digest % 10_000 < percent * 100


def _record(entity: str, values: Values) -> object:
    names = FIELDS[entity]
    return {name: jsonable(value) for name, value in zip(names, values, strict=True)} if names else {}


def compare(
    source: Records,
    postgres: Records,
    *,
    postgres_findings: Sequence[Finding] = (),
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    source_name: str = "source",
    target_name: str = "postgresql",
) -> VerifyReport:
    """Compare `source` (a `Snapshot`) with `postgres` (`PostgresRecords`, or a `Snapshot` such as
    an export), both through `project`.

    `postgres_findings` are PostgreSQL's own defects no snapshot can show (a pending edge whose two
    projects exist). `verify` reads both sides and calls this.
    """
    return compare_projections(
        project(source, "source", stored_aggregates=False),
        project(postgres, "postgres", stored_aggregates=True),
        tasks_compared=source.agent_tasks is not None,
        postgres_findings=postgres_findings,
        sample_percent=sample_percent,
        threshold_percent=threshold_percent,
        source_name=source_name,
        target_name=target_name,
    )


def compare_projections(
    src: Projection,
    pg: Projection,
    *,
    tasks_compared: bool,
    postgres_findings: Sequence[Finding] = (),
    sample_percent: float = 100.0,
    threshold_percent: float = DEFAULT_THRESHOLD_PERCENT,
    source_name: str = "source",
    target_name: str = "postgresql",
) -> VerifyReport:
    """`compare` of two sides already projected, both in memory. Keys are taken in the source's
    order, then PostgreSQL's own; `verify` gives the same report holding a digest per key
    (`streamed`)."""
    report = VerifyReport(source_name, target_name, sample_percent, threshold_percent)
    findings = group_findings([*src.findings, *pg.findings, *postgres_findings])
    for entity in ENTITIES:
        if entity == "agent_tasks" and not tasks_compared:
            report.not_compared.append(entity)  # an API graph file has no task section
            continue
        counts = EntityCounts()
        report.entities[entity] = counts
        left, right = src.values[entity], pg.values[entity]
        mismatched: set[Key] = set()
        for key in [*left, *(key for key in right if key not in left)]:
            if in_sample(entity, key, sample_percent):
                counts.compared += 1
                key_differences(entity, key, left.get(key), right.get(key), counts, mismatched, report.differences)
        add_findings(entity, findings.get(entity, {}), sample_percent, counts, mismatched, report.differences)
        counts.mismatched = len(mismatched)
    return report


def group_findings(found: Iterable[Finding]) -> dict[str, dict[Key, list[Difference]]]:
    """Findings by entity and key, each key where its first finding is."""
    findings: dict[str, dict[Key, list[Difference]]] = {}
    for entity, key, difference in found:
        findings.setdefault(entity, {}).setdefault(key, []).append(difference)
    return findings


def key_differences(
    entity: str,
    key: Key,
    mine: Values | None,
    theirs: Values | None,
    counts: EntityCounts,
    mismatched: set[Key],
    out: list[Difference],
) -> None:
    """What differs for one key found on one side or both (its values in FIELDS order)."""
    if theirs is None:
        assert mine is not None
        counts.missing_in_postgres += 1
        mismatched.add(key)
        out.append(Difference(entity, render_key(entity, key), MISSING_IN_POSTGRES, source=_record(entity, mine)))
    elif mine is None:
        counts.missing_in_source += 1
        mismatched.add(key)
        out.append(Difference(entity, render_key(entity, key), MISSING_IN_SOURCE, postgres=_record(entity, theirs)))
    elif mine != theirs:
        fields = [
            Difference(entity, render_key(entity, key), FIELD, name, jsonable(a), jsonable(b))
            for name, a, b in zip(FIELDS[entity], mine, theirs, strict=True)
            if a != b
        ]
        if fields:
            counts.differing += 1
            mismatched.add(key)
            out.extend(fields)


def add_findings(
    entity: str,
    found: dict[Key, list[Difference]],
    sample_percent: float,
    counts: EntityCounts,
    mismatched: set[Key],
    out: list[Difference],
) -> None:
    """One entity's one-sided findings (grouped by key) into the report, within the sample."""
    for key, differences in found.items():
        if in_sample(entity, key, sample_percent):
            kinds = {d.kind for d in differences}
            counts.aggregates += 1 if kinds & {AGGREGATE, INVARIANT} else 0
            counts.problems += 1 if kinds & set(PROBLEMS) else 0
            mismatched.add(key)
            out.extend(differences)
