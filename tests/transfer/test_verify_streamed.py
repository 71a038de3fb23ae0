"""verify holding a digest per key gives the report of the in-memory comparison (`compare`, which
holds both sides' projections): over Hypothesis edits of either side (a field changed, to an equal
value spelled differently too, a record missing, a record listed twice, a total or count stated
wrong, a contributor unknown, a sample), field by field and in the same order. The source is read
again only for the keys that differ; a snapshot file is read record by record on each pass."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from coherence_sql.errors import SnapshotError
from coherence_sql.models import TaskType
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer import snapshot_file
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import ContributesTo, Snapshot, load_snapshot, write_json, write_snapshot
from coherence_sql.transfer.verify import compare, verify
from coherence_sql.transfer.verify import source as source_module
from coherence_sql.transfer.verify.digest import digest
from coherence_sql.transfer.verify.project import Rows
from coherence_sql.transfer.verify.report import FIELDS, VerifyReport
from coherence_sql.transfer.verify.source import FileSource, MemorySource, RepeatedSectionError, Source
from coherence_sql.transfer.verify.streamed import (
    capture,
    compare_postgres,
    digest_source,
    streamed_report,
    wanted_keys,
)

VALUED = ("projects", "contributors", "assets", "contributions", "github_contributors", "github_organizations")


class SnapshotPages:
    """A snapshot standing in for PostgreSQL's side, in pages of three rows (no invariant rows)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    async def section(self, name: str) -> AsyncIterator[Sequence[Any]]:
        records = getattr(self._snapshot, name) or []
        for start in range(0, len(records), 3):
            yield records[start : start + 3]

    async def resolvable_pending_edges(self) -> Sequence[Any]:
        return []


class CountingSource:
    """A source that counts its passes and the records read on each."""

    def __init__(self, inner: Source) -> None:
        self._inner = inner
        self.passes: list[int] = []

    def sections(self) -> Any:
        self.passes.append(0)
        for name, records in self._inner.sections():
            yield name, self._counted(records)

    def _counted(self, records: Any) -> Any:
        for record in records:
            self.passes[-1] += 1
            yield record


async def streamed(source: Source, postgres: Snapshot, sample_percent: float = 100.0) -> VerifyReport:
    rows = Rows()
    digests = digest_source(source, rows, sample_percent)
    compared = await compare_postgres(SnapshotPages(postgres), digests, rows, sample_percent)
    captured = capture(source, rows, wanted_keys(digests, compared))
    return streamed_report(digests, compared, captured, sample_percent=sample_percent)


def _repeated_keys(side: Snapshot) -> int:
    rows = Rows()
    edges = [rows.row("edges", e)[0] for e in side.edges]
    works = [rows.row("github_contributes_to", w)[0] for w in side.github_contributes_to]
    return len(edges) - len(set(edges)) + len(works) - len(set(works))


def base(seed: int) -> Snapshot:
    return sample_snapshot(projects=12, edges=30, contributors=5, assets=5, contributions=15, tasks=5, seed=seed)


def copy(snapshot: Snapshot) -> Snapshot:
    return Snapshot(
        **{name: list(getattr(snapshot, name)) for name in FIELDS if name != "agent_tasks"},
        agent_tasks=None if snapshot.agent_tasks is None else list(snapshot.agent_tasks),
    )


def _other(value: Any, draw: st.DrawFn) -> Any:
    """Another value for a field: different, or equal but spelled differently (the digest's hard
    cases: 1.10 and 1.1, keys reordered, 1 and 1.0, naive and aware UTC)."""
    if isinstance(value, Enum):
        return draw(st.sampled_from([m for m in type(value) if m != value] or [value]))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.sampled_from([value + 1, float(value), value]))
    if isinstance(value, float):
        return draw(st.sampled_from([0.0, 0.5, 1.0, 0.125, value]))
    if isinstance(value, Decimal):
        return draw(st.sampled_from([value + 1, Decimal(f"{value}0"), -value, value]))
    if isinstance(value, datetime):
        return draw(st.sampled_from([value + timedelta(microseconds=1), value.replace(tzinfo=UTC), value]))
    if isinstance(value, dict):
        reordered = dict(reversed(list(value.items())))
        return draw(st.sampled_from([reordered, {**value, "k": 1}, {**value, "k": 1.0}, {}]))
    if isinstance(value, UUID):
        return draw(st.uuids())
    if isinstance(value, str):
        return draw(st.sampled_from([value + "x", value.upper(), "", value]))
    return draw(st.sampled_from(["x", 0, None]))


@st.composite
def edited(draw: st.DrawFn) -> tuple[Snapshot, Snapshot, float]:
    """A source and a PostgreSQL side that start equal, then a few edits of either."""
    start = base(draw(st.integers(0, 3)))
    source, postgres = copy(start), copy(start)
    if draw(st.booleans()):
        source.agent_tasks = None  # a graph-only file: tasks not compared
    for _ in range(draw(st.integers(0, 5))):
        side = draw(st.sampled_from([source, postgres]))
        edit = draw(st.sampled_from(["field", "field", "missing", "repeat", "unknown", "case"]))
        entity = draw(st.sampled_from(list(FIELDS)))
        records = getattr(side, entity)
        if not records:
            continue
        index = draw(st.integers(0, len(records) - 1))
        record = records[index]
        if edit == "field" and entity in (*VALUED, "agent_tasks"):
            names = [n for n in (*FIELDS[entity], "id") if hasattr(record, n)]  # an id changed: a key missing
            name = draw(st.sampled_from(names))
            if entity == "contributions" and name == "coherence_score":
                value: Any = draw(st.sampled_from([0.0, 0.5, 1.0, 0.125]))
            elif entity == "contributions" and name == "cost_amount":
                value = draw(st.sampled_from([Decimal("1.10"), Decimal("1.1"), record.cost_amount + 1]))
            elif name.endswith("_at") or name == "timestamp":  # a time or None: what _aware takes
                moment = getattr(record, name) or datetime(2026, 1, 1)
                value = draw(st.sampled_from([moment + timedelta(seconds=1), moment.replace(tzinfo=UTC), None]))
            else:
                value = _other(getattr(record, name), draw)
            records[index] = record.model_copy(update={name: value})
        elif edit == "missing":
            del records[index]
        elif edit == "repeat" and (side is source or entity in ("edges", "github_contributes_to")):
            # PostgreSQL's keys are unique: only an edge can be there twice (resolved and pending)
            if entity == "edges":
                again: Any = DependencyEdge(record[0].upper(), *record[1:])
            elif entity == "github_contributes_to":
                again = ContributesTo(record.contributor_id, record.ecosystem.upper(), record.name)
            elif entity in VALUED or entity == "agent_tasks":
                name = draw(st.sampled_from([n for n in FIELDS[entity] if hasattr(record, n)]))
                again = (
                    record
                    if name in ("coherence_score", "cost_amount", "created_at", "timestamp")
                    else (record.model_copy(update={name: _other(getattr(record, name), draw)}))
                )
            else:
                continue
            records.insert(draw(st.integers(0, len(records))), again)
        elif edit == "unknown":
            side.github_contributes_to.append(ContributesTo(f"nobody-{index}", "npm", f"p-{index}"))
        elif edit == "case" and entity == "projects":
            records[index] = record.model_copy(update={"name": record.name.swapcase()})
    return source, postgres, draw(st.sampled_from([100.0, 100.0, 40.0]))


@given(edited())
def test_the_streamed_comparison_gives_the_in_memory_report(sides: tuple[Snapshot, Snapshot, float]) -> None:
    source, postgres, percent = sides

    expected = compare(source, postgres, sample_percent=percent).as_json()
    counting = CountingSource(MemorySource(source))
    got = asyncio.run(streamed(counting, postgres, percent)).as_json()

    if _repeated_keys(postgres) > 1:  # listed by where the repeat is, not the first listing: the only order change
        for report in (got, expected):
            report["differences"].sort(key=repr)
    assert got == expected
    for difference in expected["differences"]:
        event(f"{difference['entity']} {difference['kind']}")
    assert len(counting.passes) == 2
    # A clean comparison reads the source once. Equal values spelled differently (1 and 1.0) may read
    # a section again, and equal sides can still have findings of their own (the same record repeated
    # on both sides: its duplicates are read again to be reported).
    if repr(source) == repr(postgres) and not expected["differences"]:
        assert counting.passes[1] == 0


async def test_a_clean_source_is_read_once_and_a_difference_reads_only_its_section(tmp_path: Path) -> None:
    snapshot = base(1)
    path = tmp_path / "s.json"
    write_snapshot(path, snapshot)
    changed = copy(snapshot)
    changed.contributors[0] = changed.contributors[0].model_copy(update={"name": "drift"})

    clean, drifted = CountingSource(FileSource(path)), CountingSource(FileSource(path))
    assert (await streamed(clean, snapshot)).ok
    report = await streamed(drifted, changed)

    assert clean.passes == [sum(len(getattr(snapshot, n) or []) for n in FIELDS), 0]
    assert drifted.passes[1] == len(snapshot.contributors)
    [difference] = report.differences
    assert (difference.entity, difference.field, difference.source, difference.postgres) == (
        "contributors",
        "name",
        snapshot.contributors[0].name,
        "drift",
    )


async def test_a_snapshot_file_gives_the_report_of_its_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "CHUNK_RECORDS", 7)  # many chunks in every section
    monkeypatch.setattr(snapshot_file, "CHUNK", 101)
    snapshot = base(2)
    path = tmp_path / "s.json"
    write_snapshot(path, snapshot)
    postgres = copy(snapshot)
    del postgres.contributions[3]
    postgres.edges.append(DependencyEdge("npm", "only-here", "npm", "react"))

    from_file = await streamed(FileSource(path), postgres)

    assert from_file.as_json() == compare(load_snapshot(path), postgres).as_json()
    assert {(d.entity, d.kind) for d in from_file.differences} == {
        ("contributions", "missing_in_postgres"),
        ("assets", "aggregate"),
        ("edges", "missing_in_source"),
    }


async def test_a_bad_record_is_refused_with_load_snapshots_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    records = [{"name": f"p{i}", "ecosystem": "npm", "version": "1", "description": "d"} for i in range(5)]
    write_json(path, {"projects": [*records, {"name": "x"}]})
    with pytest.raises(SnapshotError) as whole:
        load_snapshot(path)

    with pytest.raises(SnapshotError) as streamed_error:
        digest_source(FileSource(path), Rows(), 100.0)

    assert str(streamed_error.value) == str(whole.value)
    assert "projects[5]" in str(streamed_error.value)


async def test_a_file_changed_between_passes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_snapshot(path, base(0))
    source = FileSource(path)
    digest_source(source, Rows(), 100.0)
    write_snapshot(path, base(1))  # replaced by another file (a new inode) before the second pass
    with pytest.raises(SnapshotError, match="changed while verify read it"):
        list(source.sections())


async def test_a_section_named_twice_is_verified_as_load_snapshot_reads_it(clean_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "twice.json"
    kept = {"name": "kept", "ecosystem": "npm", "version": "2", "description": "the last section wins"}
    path.write_text(
        json.dumps({"projects": [{**kept, "name": "dropped"}]})[:-1] + ', "projects": ' + json.dumps([kept]) + "}"
    )
    with pytest.raises(RepeatedSectionError):
        digest_source(FileSource(path), Rows(), 100.0)

    report = await verify(path, clean_dsn)

    assert [(d.kind, d.key) for d in report.differences] == [("missing_in_postgres", "npm/kept")]
    assert report.entities["projects"].compared == 1


# A small domain, so that pairs are often equal, equal but spelled differently, or nearly equal.
_LEAVES = st.sampled_from(
    [
        *(0, 1, 1.0, -0.0, 0.1, True, None, "1", "a", "", "spec", TaskType.SPEC, UUID(int=1)),
        *(Decimal("1"), Decimal("1.00"), Decimal("0.1"), Decimal("-0")),
        *(datetime(2026, 1, 2), datetime(2026, 1, 2, tzinfo=UTC)),
    ]
) | st.builds(lambda: float("nan"))  # a new NaN each time: equal to nothing (one NaN is equal to itself by identity)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.sampled_from(["a", "b", "1"]), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(_VALUES, _VALUES)
def test_equal_digests_mean_equal_values(a: Any, b: Any) -> None:
    if digest(a) == digest(b):
        assert a == b
    if a == b:
        event("equal values")
        if digest(a) != digest(b):
            event("equal values, other digests (sent to the last pass)")


def test_equal_values_spelled_alike_get_one_digest() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    same = [
        ({"b": 1, "a": [Decimal("1.10"), None]}, {"a": [Decimal("1.1"), None], "b": 1}),
        (Decimal("0.00"), Decimal("-0")),
        ((UUID(int=5), when, "é\ud800"), (UUID(int=5), when, "é\ud800")),
    ]
    for a, b in same:
        assert digest(a) == digest(b)
    nan = float("nan")
    assert digest(nan) != digest(nan)  # NaN is not equal to itself: never the same digest
    assert digest(Decimal("0.1")) != digest(0.1)  # equal text, unequal values
    assert digest(["a", "b"]) != digest(["ab"]) != digest(("a", "b"))
    assert len(digest(random.random())) == 16
