"""The server collector on a real primary and hot standbys (the replicas suite's cluster, shared
with the router's tests): the primary reports each replica's lag by name, a replica its replay delay."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from coherence_sql.metrics import ServerCollector
from tests.metrics.scrape import Samples, labelled, scrape, value
from tests.replicas.cluster import ReplicaCluster, _bin, _run_as

pytestmark = pytest.mark.slow

LAG = "coherence_sql_server_replication_lag_seconds"


async def scraped(dsn: str) -> Samples:
    registry = CollectorRegistry()
    registry.register(ServerCollector(dsn, timeout_s=5.0))
    _, samples = await asyncio.to_thread(scrape, registry)
    return samples


async def test_the_primary_reports_its_replicas_lag(healthy: ReplicaCluster) -> None:
    samples = await scraped(healthy.primary_dsn())
    assert value(samples, "coherence_sql_server_up") == 1
    lags = labelled(samples, "coherence_sql_server_replication_lag_seconds")
    # Each replica, named by its application_name (the walreceiver's: the replica's cluster_name).
    assert {dict(labels)["replica"] for labels in lags} == {
        healthy.replica_name(index) for index in range(len(healthy.replicas))
    }
    assert len(lags) == len(healthy.replicas)
    assert all(0 <= lag < 10 for lag in lags.values()), lags
    assert value(samples, "coherence_sql_server_replay_delay_seconds") is None
    # On this host over a unix socket: the data directory's volume is measured.
    size = value(samples, "coherence_sql_server_volume_size_bytes")
    assert size is not None
    assert size > 0


async def test_a_replica_reports_its_replay_delay_and_no_lag_of_its_own(healthy: ReplicaCluster) -> None:
    samples = await scraped(healthy.replica_dsn(0))
    assert value(samples, "coherence_sql_server_up") == 1
    assert value(samples, "coherence_sql_server_replay_delay_seconds") == 0  # replayed all it received
    assert labelled(samples, "coherence_sql_server_replication_lag_seconds") == {}

    replica = await asyncpg.connect(healthy.replica_dsn(0))
    primary = await asyncpg.connect(healthy.primary_dsn())
    try:
        # A transaction replayed since the replica started: the delay is measured from its commit time.
        await primary.execute("CREATE TABLE written_before_the_pause (n int)")
        await asyncio.to_thread(healthy.wait_until_streaming)
        await replica.execute("SELECT pg_wal_replay_pause()")
        await primary.execute("CREATE TABLE written_while_paused (n int)")
        for _ in range(100):  # until the replica has received what it does not replay
            if await replica.fetchval("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        delay = value(await scraped(healthy.replica_dsn(0)), "coherence_sql_server_replay_delay_seconds")
        assert delay is not None
        assert delay > 0
    finally:
        await replica.execute("SELECT pg_wal_replay_resume()")
        await replica.close()
        await primary.close()


async def test_a_replica_cut_off_from_its_primary_reports_the_time_since_its_last_replay(
    healthy: ReplicaCluster,
) -> None:
    # Without a WAL receiver, "replayed all it received" holds for ever while the primary goes on:
    # 0 there would hide a replica that stopped following.
    primary = await asyncpg.connect(healthy.primary_dsn())
    replica = await asyncpg.connect(healthy.replica_dsn(0))
    conninfo = await replica.fetchval("SHOW primary_conninfo")
    try:
        await primary.execute("CREATE TABLE written_before_the_cut (n int)")
        await asyncio.to_thread(healthy.wait_until_streaming)
        await replica.execute("ALTER SYSTEM SET primary_conninfo = ''")
        await replica.execute("SELECT pg_reload_conf()")
        for _ in range(100):  # until its WAL receiver has stopped
            if not await replica.fetchval("SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver)"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.1)
        delay = value(await scraped(healthy.replica_dsn(0)), "coherence_sql_server_replay_delay_seconds")
        assert delay is not None
        assert delay >= 1.0
    finally:
        await replica.execute(f"ALTER SYSTEM SET primary_conninfo = '{conninfo.replace(chr(39), chr(39) * 2)}'")
        await replica.execute("SELECT pg_reload_conf()")
        await replica.close()
        await primary.close()
    await asyncio.to_thread(healthy.wait_until_streaming)


def test_streams_that_share_an_application_name_are_each_reported(healthy: ReplicaCluster) -> None:
    # A standby's walreceiver is called "walreceiver" unless configured otherwise: several replicas
    # under one name must stay several series, or the one lagging could hide behind the other.
    def lags() -> dict[tuple[tuple[str, str], ...], float]:
        registry = CollectorRegistry()
        registry.register(ServerCollector(healthy.primary_dsn(), timeout_s=5.0))
        return labelled(scrape(registry)[1], LAG)

    name = healthy.replica_name(0)
    others = sorted(healthy.replica_name(index) for index in range(1, len(healthy.replicas)))
    assert sorted(dict(labels)["replica"] for labels in lags()) == sorted([name, *others])
    run_as = _run_as()
    with tempfile.TemporaryDirectory(dir=healthy.parent) as target:
        if run_as:
            os.chown(target, run_as["user"], run_as["group"])
        receiver = subprocess.Popen(  # a second WAL stream from the primary, under the replica's name
            [_bin("pg_receivewal"), "-D", target, "-h", str(healthy.primary.socket_dir), "-U", "postgres", "-n"],
            env={**os.environ, "PGAPPNAME": name}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **run_as,
        )  # fmt: skip
        try:
            for _ in range(100):
                seen = lags()
                if len(seen) == len(healthy.replicas) + 1 or receiver.poll() is not None:
                    break
                time.sleep(0.1)
            assert receiver.poll() is None, receiver.stderr.read() if receiver.stderr else ""
            names = sorted(dict(labels)["replica"] for labels in seen)
            sharing = [label for label in names if label.startswith(f"{name}@pid")]
            assert len(sharing) == 2, names  # the replica and the second stream under its name
            assert sorted(set(names) - set(sharing)) == others, names  # the other replicas keep theirs
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
