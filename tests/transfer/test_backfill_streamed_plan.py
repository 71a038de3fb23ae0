"""The backfill's plan of a snapshot file reads the edges (most of a file) in a pass of their own,
record by record: the decoded edges are never all held (tracemalloc peak, no timing), the plan is
the one of the whole file decoded at once, and the second pass reads the file the first one read."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coherence_sql.errors import SnapshotError
from coherence_sql.transfer import snapshot_file
from coherence_sql.transfer.backfill.plan import Plan
from coherence_sql.transfer.backfill.source import read_collected_snapshot
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import collect_snapshot, write_json, write_snapshot


def plan_of_file(path: Path) -> Plan:
    collected, _ = read_collected_snapshot(path)
    try:
        return Plan(collected.snapshot, 10_000, collected)
    finally:
        collected.close()


def plan_of_decoded(path: Path) -> Plan:
    """The plan of the whole file decoded at once (json.loads), as every edge held in memory."""
    collected = collect_snapshot(json.loads(path.read_text()), origin=str(path), edges_raw=True)
    return Plan(collected.snapshot, 10_000, collected)


def verdicts(plan: Plan) -> dict[str, Any]:
    edges = next(s for s in plan.sections if s.name == "edges")
    assert edges.edge_keys is not None
    return {
        "rows": {s.name: s.rows for s in plan.sections if s.name != "edges"},
        "edges": edges.edge_keys.by_key(edges.rows),
        "units": [(u.key, edges.edge_keys.by_key(u.rows)) for u in edges.units()],
        "problems": sorted(((p.section, p.index), p) for p in plan.problems),
        "notes": {n.what: (n.count, n.examples) for n in plan.normalised.values()},
        "raw": plan.raw,
    }


def _peak(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_planning_a_file_holds_less_than_its_decoded_edges_and_half_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An O(records) read holds every decoded edge (three lists and four strings each) before the
    plan adds its rows; this plan holds one edge's JSON at a time and three ints a row (and the
    edges' identities: O(distinct edges), not their JSON)."""
    monkeypatch.setattr(snapshot_file, "CHUNK", 1 << 16)  # the reader's buffer, small beside the data
    path = tmp_path / "edges.json"
    write_snapshot(path, sample_snapshot(projects=100, edges=10_000, contributors=2, assets=2, contributions=2, seed=7))
    decoded_edges = _peak(lambda: json.loads(path.read_text())["edges"])

    streamed = _peak(lambda: plan_of_file(path))
    whole = _peak(lambda: plan_of_decoded(path))

    assert whole > decoded_edges  # the O(records) plan: the decoded edges and more
    assert streamed < 0.5 * whole, (streamed, decoded_edges, whole)
    assert streamed < 0.7 * decoded_edges, (streamed, decoded_edges, whole)


def test_the_plan_of_a_file_is_the_plan_of_the_file_decoded_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    snapshot = sample_snapshot(projects=40, edges=300, contributors=10, assets=8, contributions=40, tasks=5, seed=2)
    data = snapshot.to_json()
    data["edges"][7:7] = [[["npm", "a"], ["npm"]], "x", [["npm", 7], ["npm", "b"]], data["edges"][3]]  # refused
    data["edges"].append([["npm", "A"], ["npm", "a"]])  # itself
    write_json(path, data)

    assert verdicts(plan_of_file(path)) == verdicts(plan_of_decoded(path))
    assert [p.kind for p in plan_of_file(path).problems if p.section == "edges"] == [
        "malformed",
        "malformed",
        "malformed",
        "self-edge",
    ]


def test_sections_in_any_order_and_a_section_named_twice_read_as_json_loads_reads_them(tmp_path: Path) -> None:
    snapshot = sample_snapshot(projects=20, edges=60, contributors=3, assets=3, contributions=5, seed=3)
    data = snapshot.to_json()
    reordered = tmp_path / "reordered.json"
    write_json(reordered, {"edges": data["edges"], "contributors": data["contributors"], "projects": data["projects"]})
    twice = tmp_path / "twice.json"  # the last "edges" is the one json.loads keeps
    twice.write_text(
        '{"edges": [[["npm", "x"], ["npm", "y"]]], "projects": '
        + json.dumps(data["projects"])
        + ', "edges": '
        + json.dumps(data["edges"][:10])
        + "}"
    )

    assert verdicts(plan_of_file(reordered)) == verdicts(plan_of_decoded(reordered))
    assert verdicts(plan_of_file(twice)) == verdicts(plan_of_decoded(twice))
    assert len(next(s for s in plan_of_file(twice).sections if s.name == "edges").rows) == 10


def test_the_edges_pass_reads_the_file_the_first_pass_read(tmp_path: Path) -> None:
    """Snapshot writers rename a new file over the old: the open file is still the old one."""
    path = tmp_path / "s.json"
    write_snapshot(path, sample_snapshot(projects=10, edges=30, contributors=1, assets=1, contributions=1, seed=1))
    first = json.loads(path.read_text())["edges"]
    collected, _ = read_collected_snapshot(path)
    try:
        write_snapshot(path, sample_snapshot(projects=10, edges=5, contributors=1, assets=1, contributions=1, seed=2))
        assert collected.edges_source is not None
        assert list(collected.edges_source) == first
        assert list(collected.edges_source) == first  # each pass from the start
    finally:
        collected.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"projects": [], "edges": [[["a", "b"], ["c", "d"]] [1]]}', "not valid JSON: Expecting ',' delimiter"),
        ('{"edges": {"a": 1}}', "section 'edges' must be a list, got dict"),
        ('{"nodes": []}', "unknown sections ['nodes']"),
    ],
)
def test_a_file_the_streamed_read_refuses_gets_the_whole_reads_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)

    with pytest.raises(SnapshotError) as caught:
        read_collected_snapshot(path)

    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))
