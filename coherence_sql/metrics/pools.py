"""Pool metrics: sizes read from the live pools at scrape time, waits recorded as they happen.

The gauges cost nothing on the hot path: a collector walks a WeakSet of live pools when scraped.
Only the wait for a connection is recorded per acquire (its duration, and a timeout when it ran
out), through children bound once per pool. Pools that share a name are added together.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from time import perf_counter
from typing import Final, Protocol

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from coherence_sql.metrics.histogram import HistogramFamily
from coherence_sql.metrics.registry import LATENCY_BUCKETS, REGISTRY
from coherence_sql.metrics.switch import SWITCH

POOL_ACQUIRE_DURATION: Final = HistogramFamily(
    "coherence_sql_pool_acquire_duration_seconds",
    "Time a caller waited to get a connection from the pool.",
    ["pool"],
    LATENCY_BUCKETS,
)
REGISTRY.register(POOL_ACQUIRE_DURATION)
POOL_TIMEOUTS: Final = Counter(
    "coherence_sql_pool_timeouts_total",
    "Waits for a pool connection that ran out (PoolTimeoutError raised).",
    ["pool"],
    registry=REGISTRY,
)

_GAUGES: Final = (
    ("coherence_sql_pool_size", "Connections the pool holds open."),
    ("coherence_sql_pool_max_size", "The most connections the pool may open."),
    ("coherence_sql_pool_in_use", "Connections handed out to callers now."),
    ("coherence_sql_pool_idle", "Open connections waiting in the pool."),
    ("coherence_sql_pool_waiting", "Callers waiting for a connection now."),
)


class MeasuredPool(Protocol):
    """What the collector reads of a pool (`coherence_sql.pool.BoundedPool`)."""

    name: str
    waiting: int

    def get_size(self) -> int: ...
    def get_max_size(self) -> int: ...
    def get_idle_size(self) -> int: ...
    def is_closing(self) -> bool: ...


class AcquireTimer:
    """One pool's acquire metrics, bound once to its name."""

    __slots__ = ("_duration", "_timeouts")

    def __init__(self, pool: str) -> None:
        self._duration = POOL_ACQUIRE_DURATION.child(pool)
        self._timeouts = POOL_TIMEOUTS.labels(pool)

    def observe(self, started: float) -> None:
        if SWITCH.on:
            self._duration.observe(perf_counter() - started)

    def timed_out(self) -> None:
        # Counted even when timings are off: a timeout is an event an alert fires on, never a cost.
        self._timeouts.inc()


class PoolCollector(Collector):
    """The gauges of every live pool, by name, read when scraped."""

    def __init__(self) -> None:
        self._pools: weakref.WeakSet[MeasuredPool] = weakref.WeakSet()

    def track(self, pool: MeasuredPool) -> None:
        self._pools.add(pool)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation in _GAUGES:
            yield GaugeMetricFamily(name, documentation, labels=["pool"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        totals: dict[str, list[int]] = {}
        for pool in list(self._pools):
            if pool.is_closing():
                continue
            size, idle = pool.get_size(), pool.get_idle_size()
            figures = (size, pool.get_max_size(), size - idle, idle, pool.waiting)
            total = totals.setdefault(pool.name, [0] * len(figures))
            for index, figure in enumerate(figures):
                total[index] += figure
        for index, (name, documentation) in enumerate(_GAUGES):
            family = GaugeMetricFamily(name, documentation, labels=["pool"])
            for pool_name in sorted(totals):
                family.add_metric([pool_name], totals[pool_name][index])
            yield family


POOLS: Final = PoolCollector()
REGISTRY.register(POOLS)


def track_pool(pool: MeasuredPool) -> AcquireTimer:
    """Count `pool` in the pool gauges while it lives; returns its bound acquire timer."""
    POOLS.track(pool)
    return AcquireTimer(pool.name)
