"""The read router on a real primary and two streaming replicas: reads spread, every caller sees its
own writes while replay is slowed, a paused replica leaves the rotation and comes back, a stopped
one costs no caller an error."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import cast

import pytest

from coherence_sql.db import Pool, PoolSettings
from coherence_sql.errors import PoolTimeoutError
from coherence_sql.models import Project
from coherence_sql.replicas import ReadRouter, read_your_writes
from coherence_sql.stores.postgres import PostgresGraphStore
from tests.replicas.cluster import ReplicaCluster, on_replica
from tests.replicas.conftest import routed

pytestmark = pytest.mark.slow


def _store(router: ReadRouter) -> PostgresGraphStore:
    return PostgresGraphStore(cast(Pool, router))


def _project(name: str, version: str) -> Project:
    return Project(ecosystem="npm", name=name, version=version, description="")


def _reads(router: ReadRouter) -> dict[str, int]:
    return {"primary": router.primary_reads, **{r.name: r.reads for r in router.replicas}}


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s}s")
        await asyncio.sleep(0.01)


async def test_reads_without_writes_spread_evenly_over_the_replicas(healthy: ReplicaCluster) -> None:
    async with routed(healthy) as router:
        assert [r.in_rotation for r in router.replicas] == [True, True]
        store = _store(router)
        for _ in range(200):
            assert await store.get_project("npm", "absent") is None
        reads = _reads(router)
    # In turn: 100 each, unless a loaded machine made one miss a check (then the other serves).
    assert reads["primary"] == 0
    assert reads["replica-1"] + reads["replica-2"] == 200
    assert min(reads["replica-1"], reads["replica-2"]) >= 50, reads


async def test_a_write_sends_the_writers_next_read_to_the_primary(healthy: ReplicaCluster) -> None:
    async with routed(healthy, check_interval_s=30.0) as router:  # no primary sample after the write
        store = _store(router)
        with read_your_writes():
            await store.upsert_project(_project("first-read", "1"))
            before = router.primary_reads
            found = await store.get_project("npm", "first-read")
        assert found is not None
        assert found.version == "1"
        assert router.primary_reads == before + 1  # no primary sample covers the write yet
        with read_your_writes():  # another caller, who wrote nothing, reads from a replica
            await store.get_project("npm", "first-read")
        assert router.primary_reads == before + 1


async def test_every_caller_sees_its_own_writes_while_replay_is_slowed(healthy: ReplicaCluster) -> None:
    for index in (0, 1):  # every commit reaches the replicas' data 150 ms late
        await on_replica(healthy, index, "ALTER SYSTEM SET recovery_min_apply_delay = '150ms'")
        await on_replica(healthy, index, "SELECT pg_reload_conf()")
    seen: list[tuple[str, str | None]] = []

    async def caller(number: int, scoped: bool) -> None:
        rng = random.Random(number)
        for round_ in range(12):
            version = f"{number}.{round_}"
            with read_your_writes() if scoped else contextlib.nullcontext():
                await store.upsert_project(_project(f"caller-{number}", version))
                await asyncio.sleep(rng.uniform(0, 0.3))
                found = await store.get_project("npm", f"caller-{number}")
            seen.append((version, None if found is None else found.version))

    async with routed(healthy) as router:
        store = _store(router)
        await asyncio.gather(*(caller(n, scoped=n % 2 == 0) for n in range(8)))
        reads = _reads(router)
    assert len(seen) == 96
    assert [pair for pair in seen if pair[0] != pair[1]] == []
    # The claim is only worth something if replicas served some of these reads and refused others.
    assert reads["replica-1"] + reads["replica-2"] > 0, reads
    assert reads["primary"] > 0, reads


async def test_a_paused_replica_leaves_the_rotation_and_comes_back_after_resume(healthy: ReplicaCluster) -> None:
    async with routed(healthy, max_lag_s=0.5) as router:
        store = _store(router)
        paused = router.replicas[0]
        await on_replica(healthy, 0, "SELECT pg_wal_replay_pause()")
        # Paused but not yet past the lag limit, it is still in rotation: a writer's reads must
        # go around it (to the replica that replays, or the primary) and see every write.
        assert paused.in_rotation
        for round_ in range(8):
            with read_your_writes():
                await store.upsert_project(_project("paused-writer", str(round_)))
                await asyncio.sleep(0.03)
                found = await store.get_project("npm", "paused-writer")
            assert found is not None
            assert found.version == str(round_)
        assert paused.reads == 0
        writes = 0

        async def keep_writing() -> None:
            nonlocal writes
            while True:
                writes += 1
                await store.upsert_project(_project("ticker", str(writes)))
                await asyncio.sleep(0.02)

        writer = asyncio.create_task(keep_writing())
        try:
            await _until(lambda: not paused.in_rotation, 5.0, "taking the paused replica out")
            assert paused.problem is not None
            assert "behind the primary" in paused.problem
            assert paused.delay_s > 0.5
            before = paused.reads
            with read_your_writes():
                for _ in range(20):
                    await store.get_project("npm", "ticker")
            assert paused.reads == before  # out of rotation: not one read
            await on_replica(healthy, 0, "SELECT pg_wal_replay_resume()")
            await _until(lambda: paused.in_rotation, 5.0, "putting the resumed replica back")
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        assert paused.problem is None
        assert router.replicas[1].in_rotation


async def test_a_stopped_replica_causes_no_caller_error_and_returns_when_started(healthy: ReplicaCluster) -> None:
    async with routed(healthy) as router:
        store = _store(router)
        await store.upsert_project(_project("steady", "1"))
        await _until(lambda: router.required_position() is not None, 2.0, "a primary sample after the write")
        stopping = asyncio.create_task(asyncio.to_thread(healthy.stop_replica, 1))
        answers = []
        while not stopping.done():
            answers.append(await store.get_project("npm", "steady"))
        await stopping
        for _ in range(50):  # the stopped replica's pooled connections fail on use: the primary answers
            answers.append(await store.get_project("npm", "steady"))
        assert all(a is not None and a.version == "1" for a in answers)
        stopped = router.replicas[1]
        await _until(lambda: not stopped.in_rotation, 2.0, "taking the stopped replica out")
        assert stopped.problem is not None
        await asyncio.to_thread(healthy.start_replica, 1)
        await _until(lambda: stopped.in_rotation, 10.0, "the restarted replica's return")
        before = stopped.reads
        for _ in range(10):
            await store.get_project("npm", "steady")
        assert stopped.reads > before


async def test_a_saturated_replica_pool_times_out_like_the_primarys_and_stays_in_rotation(
    healthy: ReplicaCluster,
) -> None:
    one_connection = PoolSettings(min_size=1, max_size=1, acquire_timeout_s=0.3)
    async with routed(healthy, pool=one_connection, check_interval_s=30.0) as router:
        store = _store(router)
        first, second = (r.pool for r in router.replicas)
        assert first is not None
        assert second is not None
        async with first.acquire(), second.acquire():  # both replicas' only connections, taken
            with pytest.raises(PoolTimeoutError, match=r"no PostgreSQL connection within 0\.3s"):
                await store.get_project("npm", "absent")
        assert [r.in_rotation for r in router.replicas] == [True, True]
        assert router.primary_reads == 0


async def test_a_replica_pool_full_past_the_lag_limit_leaves_the_rotation_and_comes_back(
    healthy: ReplicaCluster,
) -> None:
    """A full pool is saturation for a while (the check above keeps it in rotation); full for longer
    than the lag limit, its connections may be stuck on a frozen server: out, until one is free."""
    one_connection = PoolSettings(min_size=1, max_size=1, acquire_timeout_s=0.1)
    async with routed(healthy, pool=one_connection, max_lag_s=0.5, check_interval_s=0.05) as router:
        first = router.replicas[0]
        assert first.pool is not None
        async with first.pool.acquire():
            for _ in range(100):
                await asyncio.sleep(0.05)
                if not first.in_rotation:
                    break
            assert not first.in_rotation
            assert first.problem is not None
            assert "no free connection for" in first.problem
            assert router.replicas[1].in_rotation
        for _ in range(100):
            await asyncio.sleep(0.05)
            if first.in_rotation:
                break
        assert first.in_rotation
        assert first.busy_since is None
