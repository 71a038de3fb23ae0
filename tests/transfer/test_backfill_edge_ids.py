"""The edges are staged by project id when the snapshot has both projects (merge_edges_by_id: one
insert, no key joins), by key otherwise (merge_edges: record_dependency parks what is missing). The
ids are read once per run; a batch naming a project PostgreSQL no longer has goes by key, and the id
merge refuses a batch whose project vanished after the ids were read."""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import asyncpg
import pytest

from coherence_sql.errors import SnapshotError
from coherence_sql.models import Project
from coherence_sql.sql import backfill as backfill_sql
from coherence_sql.sql._runtime import Executor
from coherence_sql.stores.postgres import connect
from coherence_sql.stores.protocol import DependencyEdge
from coherence_sql.transfer.backfill import PARTITIONS, backfill
from coherence_sql.transfer.backfill.edges import EdgeKeys
from coherence_sql.transfer.backfill.load import _load_batch, sessions
from coherence_sql.transfer.backfill.plan import Plan
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import Snapshot
from coherence_sql.transfer.verify import verify

SHA = "0" * 64


def counted_merges(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The real merges, counted by name as the loader calls them."""
    calls: Counter[str] = Counter()
    for name in ("merge_edges", "merge_edges_by_id"):
        real = getattr(backfill_sql, name)

        async def counting(conn: Executor, _real: Any = real, _name: str = name) -> None:
            calls[_name] += 1
            await _real(conn)

        monkeypatch.setattr(backfill_sql, name, counting)
    return calls


async def test_the_partitions_go_by_id_and_the_edges_to_missing_projects_by_key(
    clean_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = sample_snapshot(projects=50, edges=400, contributors=2, assets=2, contributions=2, seed=11)
    plan = Plan(snapshot, 10_000)
    edges = next(s for s in plan.sections if s.name == "edges")
    assert edges.locking  # the sample parks some edges (a target never indexed)
    calls = counted_merges(monkeypatch)

    report = await backfill(clean_dsn, snapshot, batch_size=10_000, vacuum=False)

    # One batch per partition by id; the key-locking unit by key, KEYS_PER_TRANSACTION // 2 a batch.
    assert calls["merge_edges_by_id"] == PARTITIONS
    assert calls["merge_edges"] == -(-len(edges.locking) // 250)
    assert report.section("edges").inserted == len(edges.rows)
    assert (await verify(snapshot, clean_dsn, threshold_percent=0.0)).differences == []


def test_the_partitions_are_by_the_source_key_as_when_rows_held_keys() -> None:
    """Checkpoints name partitions: a row's partition is still the CRC-32 of its source's key."""
    snapshot = sample_snapshot(projects=30, edges=300, contributors=2, assets=2, contributions=2, seed=4)
    edges = next(s for s in Plan(snapshot, 25).sections if s.name == "edges")
    assert edges.edge_keys is not None
    partitions = [u for u in edges.units() if not u.last]
    assert len(partitions) == PARTITIONS
    for unit in partitions:
        partition = int(unit.key.rsplit("/", 1)[1])
        for row in unit.rows:
            ecosystem, name = edges.edge_keys.keys[row[1]]
            assert zlib.crc32(f"{ecosystem}/{name}".encode()) % PARTITIONS == partition


async def test_ids_are_read_once_and_a_key_postgresql_lacks_sends_its_batch_by_key(clean_dsn: str) -> None:
    await backfill(clean_dsn, Snapshot(projects=[Project(ecosystem="npm", name="a", version="1", description="d")]))
    keys = EdgeKeys()
    a, b = keys.number(("npm", "a")), keys.number(("npm", "b"))
    conn = await asyncpg.connect(clean_dsn)
    try:
        await keys.read_ids(conn)
        present = await conn.fetchval("SELECT id FROM projects WHERE ecosystem = 'npm' AND name = 'a'")
        async with connect(clean_dsn) as stores:
            await stores.graph.upsert_project(Project(ecosystem="npm", name="b", version="1", description="d"))
        await keys.read_ids(conn)  # already read: not again (b stays unknown to this run)
    finally:
        await conn.close()

    assert keys.by_id([(1, a, a)]) == [(1, present, present)]
    assert keys.by_id([(1, a, a), (2, a, b)]) is None  # one unknown project: the whole batch by key
    assert keys.by_key([(1, a, b)]) == [(1, "npm", "a", "npm", "b")]


async def test_the_id_merge_refuses_a_batch_whose_project_vanished_and_writes_nothing(clean_dsn: str) -> None:
    projects = [Project(ecosystem="npm", name=n, version="1", description="d") for n in ("a", "b", "c")]
    snapshot = Snapshot(projects=projects, edges=[DependencyEdge("npm", "a", "npm", "b")])
    await backfill(clean_dsn, Snapshot(projects=projects))
    edges = next(s for s in Plan(snapshot, 10).sections if s.name == "edges")
    assert edges.edge_keys is not None
    async with sessions(clean_dsn, 1, SHA) as (conn,):
        await backfill_sql.start_unit(conn, unit="edges/clustered/0")
        await edges.edge_keys.read_ids(conn)
        await conn.execute("DELETE FROM projects WHERE name = 'b'")  # no store deletes projects; by hand

        with pytest.raises(SnapshotError, match=r"edges\[0\.\.0\]: PostgreSQL refused the batch .*1 projects"):
            await _load_batch(conn, edges, edges.rows, by_id=True)

        assert await conn.fetchval("SELECT count(*) FROM project_dependencies") == 0
        assert await conn.fetchval("SELECT count(*) FROM backfill_checkpoints WHERE section LIKE 'edges%'") == 0
