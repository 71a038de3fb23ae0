"""The PostgreSQL server's metrics, queried when scraped: database size, the data directory's
volume (when the server is on this host), replication lag on a primary, replay delay on a replica.

A scrape never fails and never waits past `timeout_s`: when the queries do not answer,
`coherence_sql_server_up` is 0, the other families are empty, and the reason is logged (redacted).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coherence_sql.errors import CoherenceSQLError
from coherence_sql.metrics.registry import REGISTRY
from coherence_sql.redaction import secrets_of
from coherence_sql.sql import metrics as metrics_sql

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
_START_TIME_SLACK_S = 5


@dataclass(frozen=True, slots=True)
class Volume:
    size_bytes: int
    available_bytes: int


@dataclass(frozen=True, slots=True)
class ServerReading:
    """What one scrape read from the server (and, when local, from its data directory's volume)."""

    database_size_bytes: int
    replay_delay_seconds: float | None  # None: the server is a primary
    replication_lag_seconds: dict[str, float]
    volume: Volume | None


def _families() -> dict[str, GaugeMetricFamily]:
    families = [
        GaugeMetricFamily("coherence_sql_server_up", "1 when this scrape's queries to PostgreSQL worked, else 0."),
        GaugeMetricFamily(
            "coherence_sql_server_database_size_bytes",
            "Size of the database (pg_database_size); its growth rate is deriv(...[1h]).",
        ),
        GaugeMetricFamily(
            "coherence_sql_server_volume_size_bytes",
            "Size of the volume holding the data directory (only when the server is on this host).",
        ),
        GaugeMetricFamily(
            "coherence_sql_server_volume_available_bytes",
            "Space available to PostgreSQL on the data directory's volume (only when the server is on this host).",
        ),
        GaugeMetricFamily(
            "coherence_sql_server_replication_lag_seconds",
            "Replay lag of each replica streaming from this primary (pg_stat_replication.replay_lag).",
            labels=["replica"],
        ),
        GaugeMetricFamily(
            "coherence_sql_server_replay_delay_seconds",
            "On a replica: now() - pg_last_xact_replay_timestamp(), 0 when it replayed all it received.",
        ),
    ]
    return {family.name: family for family in families}


def _same_server(data_directory: Path, started_at_epoch: int) -> bool:
    """Whether the data directory here is the one the scraped server runs on: its postmaster.pid
    (line 3: the start time) must match; when that file is not ours to read, assume it is."""
    try:
        lines = (data_directory / "postmaster.pid").read_text(encoding="ascii").splitlines()
        written_at = int(lines[2])
    except (OSError, UnicodeDecodeError, IndexError, ValueError):
        return True
    # The postmaster writes the file a moment before it records its start time: a second apart seen.
    return abs(written_at - started_at_epoch) <= _START_TIME_SLACK_S


def _local_volume(row: Any, local: bool | None) -> Volume | None:
    """The data directory's volume, when the server is on this host and the path is readable here.

    `local` None: decide (a unix socket or loopback address, the path exists, and its postmaster.pid,
    if readable, is the scraped server's); True: trust the path; False: never (a remote server:
    node_exporter on its host measures the disk)."""
    if local is False or row.data_directory is None:
        return None
    path = Path(row.data_directory)
    if local is None:
        address = row.server_address
        on_this_host = address == "unix-socket" or ipaddress.ip_address(address).is_loopback
        if not on_this_host or not path.exists() or not _same_server(path, row.started_at_epoch):
            return None
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return Volume(size_bytes=stats.f_blocks * stats.f_frsize, available_bytes=stats.f_bavail * stats.f_frsize)


async def read_server(conn: Any, *, data_directory_local: bool | None = None) -> ServerReading:
    """One reading of the server behind `conn` (a connection or a pool): two round trips, the
    server's own figures and, on a primary, its replicas' lag."""
    row = await metrics_sql.server_state(conn)
    if row is None:
        raise CoherenceSQLError("the server state query returned no row")
    lags: dict[str, float] = {}
    for replica in [] if row.in_recovery else await metrics_sql.replication_lag(conn):
        if replica.lag_seconds is None:  # an unknown lag is left out, never reported as 0
            log.warning("metrics: the lag of replica %s is hidden from this role: GRANT pg_monitor", replica.replica)
        else:
            lags[replica.replica] = replica.lag_seconds
    return ServerReading(
        database_size_bytes=row.database_size_bytes,
        replay_delay_seconds=row.replay_delay_seconds if row.in_recovery else None,
        replication_lag_seconds=lags,
        volume=await asyncio.to_thread(_local_volume, row, data_directory_local),
    )


class ServerCollector(Collector):
    """The server metrics, read at scrape time from a DSN or a pool.

    With a DSN, each scrape opens one connection (in a thread of its own, so it works from any
    caller) and closes it. With a pool, a scrape from another thread runs on the pool's loop; a
    scrape on the pool's own loop (an ASGI `/metrics` in the API) must not block that loop, so it
    serves the previous reading and starts the next one (the first scrape has no reading yet:
    `coherence_sql_server_up` is absent, not 0).
    """

    def __init__(
        self,
        source: str | asyncpg.Pool[Any],
        *,
        data_directory_local: bool | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.source = source
        self.data_directory_local = data_directory_local
        self.timeout_s = timeout_s
        self._last: ServerReading | BaseException | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def describe(self) -> Iterator[Metric]:
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        reading = self._reading()
        families = _families()
        if reading is None:
            yield from families.values()
            return
        if isinstance(reading, BaseException):
            log.warning("metrics: the server could not be read: %s", self._redacted(reading))
            families["coherence_sql_server_up"].add_metric([], 0)
            yield from families.values()
            return
        families["coherence_sql_server_up"].add_metric([], 1)
        families["coherence_sql_server_database_size_bytes"].add_metric([], reading.database_size_bytes)
        if reading.volume is not None:
            families["coherence_sql_server_volume_size_bytes"].add_metric([], reading.volume.size_bytes)
            families["coherence_sql_server_volume_available_bytes"].add_metric([], reading.volume.available_bytes)
        for replica, lag in sorted(reading.replication_lag_seconds.items()):
            families["coherence_sql_server_replication_lag_seconds"].add_metric([replica], lag)
        if reading.replay_delay_seconds is not None:
            families["coherence_sql_server_replay_delay_seconds"].add_metric([], reading.replay_delay_seconds)
        yield from families.values()

    def _redacted(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(self.source, str):
            for secret in secrets_of(self.source):
                text = text.replace(secret, "***")
        return text

    async def _read_bounded(self, conn: Any) -> ServerReading:
        return await asyncio.wait_for(
            read_server(conn, data_directory_local=self.data_directory_local), self.timeout_s
        )

    async def _read_dsn(self, dsn: str) -> ServerReading:
        # Imported here: coherence_sql.db imports the pool, which imports this package's pool metrics.
        from coherence_sql.db import connect

        conn = await asyncio.wait_for(connect(dsn), self.timeout_s)
        try:
            return await self._read_bounded(conn)
        finally:
            await conn.close(timeout=self.timeout_s)

    def _reading(self) -> ServerReading | BaseException | None:
        try:
            if isinstance(self.source, str):
                with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="coherence-sql-scrape") as worker:
                    return worker.submit(asyncio.run, self._read_dsn(self.source)).result()
            # asyncpg keeps the pool's loop only here.
            loop: asyncio.AbstractEventLoop = self.source._loop  # type: ignore[attr-defined]
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                future = asyncio.run_coroutine_threadsafe(self._read_bounded(self.source), loop)
                return future.result(self.timeout_s + 1)
            self._refresh_in_background()
            return self._last
        except Exception as exc:  # a scrape never raises: server_up 0 says it failed
            return exc

    def _refresh_in_background(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            return

        async def refresh() -> None:
            try:
                self._last = await self._read_bounded(self.source)
            except Exception as exc:
                self._last = exc

        self._refreshing = asyncio.get_running_loop().create_task(refresh())


def register_server(
    source: str | asyncpg.Pool[Any],
    *,
    data_directory_local: bool | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    registry: CollectorRegistry = REGISTRY,
) -> ServerCollector:
    """Export the server metrics of `source` (a DSN or a pool) from `registry`."""
    collector = ServerCollector(source, data_directory_local=data_directory_local, timeout_s=timeout_s)
    registry.register(collector)
    return collector
