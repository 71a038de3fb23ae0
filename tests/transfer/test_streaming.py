"""Snapshot files read and written record by record: the streamed export writes the bytes the
in-memory export would, the streaming reader gives what json.loads gives, and neither holds more
memory for a larger data set (tracemalloc peaks at two sizes, no timing)."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from coherence_sql.errors import SnapshotError
from coherence_sql.stores.postgres import connect
from coherence_sql.transfer import snapshot_file
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.export import export_snapshot, export_to_file
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import GRAPH_SECTIONS, TASK_SECTION, load_snapshot, write_json, write_snapshot
from coherence_sql.transfer.snapshot_file import iter_sections, load_snapshot_streaming
from tests.stores.records import project


def _read_all(path: Path) -> dict[str, list[Any]]:
    return {name: list(records) for name, records in iter_sections(path)}


async def test_the_streamed_export_writes_the_bytes_of_the_in_memory_export(clean_dsn: str, tmp_path: Path) -> None:
    snapshot = sample_snapshot(projects=40, edges=120, contributors=15, assets=12, contributions=90, tasks=20, seed=5)
    await backfill(clean_dsn, snapshot, vacuum=False)
    target, source = snapshot.projects[1], snapshot.projects[2]
    async with connect(clean_dsn) as stores:  # a pending edge resolved later: a new id with an older time
        await stores.graph.add_dependency("npm", "Arrives-Later", target.ecosystem, target.name)
        await stores.graph.add_dependency(source.ecosystem, source.name, "npm", "never-indexed")
        await stores.graph.upsert_project(project("Arrives-Later", "npm"))
    streamed, whole = tmp_path / "streamed.json", tmp_path / "whole.json"

    summary = await export_to_file(clean_dsn, streamed, page_size=7)  # many pages in every section
    write_snapshot(whole, await export_snapshot(clean_dsn))

    assert streamed.read_bytes() == whole.read_bytes()
    exported = json.loads(streamed.read_text())
    assert summary.records == {name: len(exported[name]) for name in (*GRAPH_SECTIONS, TASK_SECTION)}
    assert summary.records["contributions"] == 90
    assert [["npm", "arrives-later"], [target.ecosystem.lower(), target.name.lower()]] in exported["edges"]
    assert exported["edges"][-1] == [[source.ecosystem.lower(), source.name.lower()], ["npm", "never-indexed"]]


async def test_the_export_of_an_empty_database_streams_an_empty_snapshot(clean_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.json"

    summary = await export_to_file(clean_dsn, path)

    assert json.loads(path.read_text()) == {name: [] for name in (*GRAPH_SECTIONS, TASK_SECTION)}
    assert set(summary.records.values()) == {0}
    assert os.listdir(tmp_path) == ["empty.json"]  # no temp file left beside it


def test_the_reader_gives_what_json_loads_gives_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_file, "CHUNK", 61)  # records, strings and numbers cut at every place
    path = tmp_path / "s.json"
    write_snapshot(path, sample_snapshot(projects=30, edges=60, contributors=8, assets=8, contributions=40, seed=2))
    odd = {"projects": [], "edges": [[["a", 'q"\\u00e9 ☕'], ["b", "c"]]], "x": [1e3, -0.5]}
    write_json(tmp_path / "odd.json", odd)

    assert _read_all(path) == json.loads(path.read_text())
    assert _read_all(tmp_path / "odd.json") == json.loads((tmp_path / "odd.json").read_text())


def test_the_streaming_load_gives_the_models_and_the_errors_of_load_snapshot(tmp_path: Path) -> None:
    path, graph_only, bad = tmp_path / "s.json", tmp_path / "graph.json", tmp_path / "bad.json"
    write_snapshot(path, sample_snapshot(projects=20, edges=40, contributors=5, assets=5, contributions=20, seed=3))
    write_json(graph_only, {"projects": [{"name": "react", "ecosystem": "npm", "version": "1", "description": "d"}]})
    write_json(bad, {"projects": [], "contributors": [{"id": "x"}]})

    assert load_snapshot_streaming(path) == load_snapshot(path)
    assert load_snapshot_streaming(graph_only) == load_snapshot(graph_only)
    assert load_snapshot_streaming(graph_only).agent_tasks is None
    with pytest.raises(SnapshotError) as streamed:
        load_snapshot_streaming(bad)
    with pytest.raises(SnapshotError) as whole:
        load_snapshot(bad)
    assert str(streamed.value) == str(whole.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"projects": [{"name": "a"} {"name": "b"}]}', "expected ',' or ']' at line 1 column 29"),
        ('{"projects": {"name": "a"}}', "section 'projects' must be a list, got dict"),
        ('[{"name": "a"}]', "the top level must be a JSON object"),
        ('{"projects": [\n{"name": tru}]}', "not valid JSON: Expecting value at line 2 column 10"),
        ('{"projects": []} []', "extra data after the snapshot"),
    ],
)
def test_the_reader_refuses_what_is_not_a_snapshot_saying_where(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)

    with pytest.raises(SnapshotError) as caught:
        _read_all(path)

    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def _peak(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def _apeak(action: Callable[[], Awaitable[object]]) -> int:
    tracemalloc.start()
    try:
        await action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _sized(n: int) -> Any:
    quarter = n // 4
    return sample_snapshot(
        projects=n, edges=3 * n, contributors=quarter, assets=quarter, contributions=2 * n, tasks=quarter
    )


@pytest.mark.slow
def test_reading_a_ten_times_larger_file_holds_no_more_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_file, "CHUNK", 4096)
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    write_snapshot(small, _sized(200))
    write_snapshot(large, _sized(2000))

    def count(path: Path) -> Callable[[], int]:
        return lambda: sum(1 for _, records in iter_sections(path) for _ in records)

    small_peak, large_peak = _peak(count(small)), _peak(count(large))

    assert large.stat().st_size > 9 * small.stat().st_size
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


@pytest.mark.slow
async def test_exporting_ten_times_more_rows_holds_no_more_memory(
    clean_dsn: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    truncate: str = request.getfixturevalue("_truncate_sql")
    peaks = []
    for n in (100, 1000):
        admin = await asyncpg.connect(clean_dsn)
        try:
            await admin.execute(truncate)
        finally:
            await admin.close()
        await backfill(clean_dsn, _sized(n), vacuum=False)
        peaks.append(await _apeak(lambda n=n: export_to_file(clean_dsn, tmp_path / f"{n}.json", page_size=50)))

    assert (tmp_path / "1000.json").stat().st_size > 9 * (tmp_path / "100.json").stat().st_size
    assert peaks[1] < 1.5 * peaks[0], peaks
