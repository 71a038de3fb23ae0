"""PostgreSQL bulk writes are all or nothing per call, at any size, and hold few locks.

`upsert_projects` and `add_dependencies` used to commit per batch of 500 keys, so a call of 600
that failed at its last element left 500 written. Each call is now one transaction: up to
BULK_KEYS_PER_TRANSACTION keys with one advisory lock per key, above that with the one lock on all
project keys (schema/016). The failures here are injected by a trigger in a private database, at
the call's last element, past the old batch size; the lock tests count the locks in pg_locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from coherence_sql.errors import InvalidValueError
from coherence_sql.models import Project
from coherence_sql.schema import migrate
from coherence_sql.stores.postgres import BULK_KEYS_PER_TRANSACTION, PostgresGraphStore, PostgresStores, connect
from coherence_sql.stores.protocol import DependencyEdge

OLD_BATCH = BULK_KEYS_PER_TRANSACTION  # the batch size calls used to be cut into
MARK = "fail-here"

# A trigger only this module's database has: the write of the marked key fails in PostgreSQL,
# after every earlier row of the same statement was written.
REFUSE_MARKED = f"""
CREATE FUNCTION test_refuse_marked_project() RETURNS trigger AS $$
BEGIN
    IF NEW.name = '{MARK}' THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE FUNCTION test_refuse_marked_edge() RETURNS trigger AS $$
BEGIN
    IF NEW.to_name = '{MARK}' THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER test_refuse_marked BEFORE INSERT OR UPDATE ON projects
FOR EACH ROW EXECUTE FUNCTION test_refuse_marked_project();
CREATE TRIGGER test_refuse_marked BEFORE INSERT ON pending_dependencies
FOR EACH ROW EXECUTE FUNCTION test_refuse_marked_edge();
"""
EMPTY = "DELETE FROM project_dependencies; DELETE FROM pending_dependencies; DELETE FROM projects;"


def project(name: str, version: str = "1.0") -> Project:
    return Project(ecosystem="npm", name=name, version=version, description="")


@pytest.fixture(scope="module")
async def private_dsn(database_factory: Callable[[], Awaitable[str]]) -> str:
    dsn = await database_factory()
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(REFUSE_MARKED)
    finally:
        await conn.close()
    return dsn


@pytest.fixture
async def stores(private_dsn: str) -> AsyncIterator[PostgresStores]:
    async with connect(private_dsn) as opened:
        await opened.pool.execute(EMPTY)
        yield opened


async def table_counts(stores: PostgresStores) -> tuple[int, ...]:
    row = await stores.pool.fetchrow(
        "SELECT (SELECT count(*) FROM projects), (SELECT count(*) FROM project_dependencies),"
        " (SELECT count(*) FROM pending_dependencies), (SELECT coalesce(sum(dependency_count), 0) FROM projects)"
    )
    assert row is not None
    return tuple(row)


async def dependency_count(graph: PostgresGraphStore, name: str) -> int:
    found = await graph.get_project("npm", name)
    assert found is not None, name
    return found.dependency_count


@pytest.mark.parametrize("size", [OLD_BATCH // 2, OLD_BATCH + 100, 3 * OLD_BATCH])
async def test_a_bulk_upsert_that_fails_at_its_last_project_writes_nothing(stores: PostgresStores, size: int) -> None:
    graph = stores.graph
    await graph.upsert_projects([project(f"p{i:05d}") for i in range(10)])  # some of the call updates these
    await graph.add_dependencies([DependencyEdge("npm", "p00000", "npm", f"p{i:05d}") for i in range(1, size)])
    before = await table_counts(stores)
    batch = [project(f"p{i:05d}", version="2.0") for i in range(size - 1)] + [project(MARK)]
    with pytest.raises(InvalidValueError, match="refused by the test"):
        await graph.upsert_projects(batch)
    assert await table_counts(stores) == before
    versions = await stores.pool.fetch("SELECT DISTINCT version FROM projects")
    assert [r["version"] for r in versions] == ["1.0"]
    await graph.upsert_projects(batch[:-1])  # without the bad one, the whole call lands
    assert (await table_counts(stores))[0] == size - 1
    assert await dependency_count(graph, "p00000") == size - 1


@pytest.mark.parametrize("size", [OLD_BATCH // 4, OLD_BATCH + 100])
async def test_bulk_edges_that_fail_at_the_last_edge_write_nothing(stores: PostgresStores, size: int) -> None:
    graph = stores.graph
    await graph.upsert_projects([project("app"), project("lib")])
    before = await table_counts(stores)
    edges = [DependencyEdge("npm", "app", "npm", f"d{i:05d}") for i in range(size - 2)]
    edges += [DependencyEdge("npm", "app", "npm", "lib"), DependencyEdge("npm", "lib", "npm", MARK)]
    with pytest.raises(InvalidValueError, match="refused by the test"):
        await graph.add_dependencies(edges)
    assert await table_counts(stores) == before
    assert await dependency_count(graph, "app") == 0
    assert await graph.count_dependents("npm", "lib") == 0


async def test_a_bulk_write_above_the_batch_size_holds_one_lock_and_waits_for_key_writers(
    stores: PostgresStores, private_dsn: str
) -> None:
    size = 4 * OLD_BATCH
    writer = await asyncpg.connect(private_dsn)
    try:
        async with writer.transaction():
            await writer.execute("SELECT lock_project_key('npm', 'elsewhere')")  # a single writer, mid-write
            bulk = asyncio.ensure_future(stores.graph.upsert_projects([project(f"q{i:05d}") for i in range(size)]))
            waiting = 0
            for _ in range(200):  # until the bulk write waits for the writer
                waiting = await writer.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting == 1
            held = await writer.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
            )
            assert held == 1, f"the bulk write holds or waits for {held} advisory locks, not one"
            assert not bulk.done()
        await asyncio.wait_for(bulk, timeout=30)
    finally:
        await writer.close()
    assert await stores.graph.count_projects() == size


async def test_a_bulk_write_at_the_batch_size_locks_its_keys_and_lets_others_write(stores: PostgresStores) -> None:
    # Small bulk calls keep per-key locks: a single write of another key proceeds meanwhile.
    async with stores.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT lock_project_key('npm', 'held')")
        await asyncio.wait_for(stores.graph.upsert_projects([project(f"r{i}") for i in range(OLD_BATCH)]), 10)
        await asyncio.wait_for(stores.graph.add_dependencies([DependencyEdge("npm", "r1", "npm", "r2")]), 10)
    assert await stores.graph.count_dependents("npm", "r2") == 1


async def test_one_call_with_more_keys_than_the_lock_table_holds_succeeds(stores: PostgresStores) -> None:
    # ~6,400 lock slots by default: 20,000 advisory locks in one transaction is "out of shared memory".
    edges = [DependencyEdge("npm", f"s{i:05d}", "npm", f"t{i:05d}") for i in range(10_000)]
    await stores.graph.add_dependencies(edges)
    await stores.graph.upsert_projects([project(f"{side}{i:05d}") for i in range(0, 10_000, 2) for side in "st"])
    assert await table_counts(stores) == (10_000, 5_000, 5_000, 5_000)  # resolved where both exist
    assert await dependency_count(stores.graph, "s00000") == 1
    assert await stores.graph.count_dependents("npm", "t00001") == 1  # pending: s00001 is not indexed


async def test_edges_and_projects_written_concurrently_with_a_large_bulk_all_resolve(stores: PostgresStores) -> None:
    size = 2 * OLD_BATCH
    names = [f"c{i:05d}" for i in range(size)]
    singles = [stores.graph.add_dependency("npm", names[i], "npm", names[i + 1]) for i in range(0, size - 1, 7)]
    await asyncio.gather(stores.graph.upsert_projects([project(n) for n in names]), *singles)
    counts = await table_counts(stores)
    assert counts[0] == size
    assert counts[1] == len(singles)  # every edge resolved: both endpoints exist
    assert counts[2] == 0
