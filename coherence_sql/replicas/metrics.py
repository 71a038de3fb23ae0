"""The read router's metrics, read from the live routers when scraped (no cost on the read path).

- `coherence_sql_replica_in_rotation{replica}`: 1 while the replica serves reads, 0 when taken out;
- `coherence_sql_replica_replay_delay_seconds{replica}`: how far behind the primary the health loop
  last found it (an upper bound, at most one check interval above the true delay);
- `coherence_sql_replica_reads_total{replica}`: reads it answered; `replica="primary"` counts reads
  the router sent to the primary (none eligible, or a replica failed them).
Routers that share a replica name are added together.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coherence_sql.metrics.registry import REGISTRY

if TYPE_CHECKING:
    from coherence_sql.replicas.router import ReadRouter

__all__ = ["ROUTERS", "track_router"]

_IN_ROTATION: Final = ("coherence_sql_replica_in_rotation", "1 while the replica serves reads, 0 when taken out.")
_DELAY: Final = ("coherence_sql_replica_replay_delay_seconds", "How far the replica's replay is behind the primary.")
_READS: Final = ("coherence_sql_replica_reads", "Reads the router sent to the replica (\"primary\": fell back).")


class RouterCollector(Collector):
    """The replica families of every live read router."""

    def __init__(self) -> None:
        self._routers: weakref.WeakSet[ReadRouter] = weakref.WeakSet()

    def track(self, router: ReadRouter) -> None:
        self._routers.add(router)

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(*_IN_ROTATION, labels=["replica"])
        yield GaugeMetricFamily(*_DELAY, labels=["replica"])
        yield CounterMetricFamily(*_READS, labels=["replica"])

    def collect(self) -> Iterator[Metric]:
        in_rotation: dict[str, float] = {}
        delay: dict[str, float] = {}
        reads: dict[str, float] = {}
        for router in list(self._routers):
            reads["primary"] = reads.get("primary", 0) + router.primary_reads
            for replica in router.replicas:
                in_rotation[replica.name] = in_rotation.get(replica.name, 0) + int(replica.in_rotation)
                delay[replica.name] = max(delay.get(replica.name, 0.0), replica.delay_s)
                reads[replica.name] = reads.get(replica.name, 0) + replica.reads
        families: list[tuple[Metric, dict[str, float]]] = [
            (GaugeMetricFamily(*_IN_ROTATION, labels=["replica"]), in_rotation),
            (GaugeMetricFamily(*_DELAY, labels=["replica"]), delay),
            (CounterMetricFamily(*_READS, labels=["replica"]), reads),
        ]
        for family, values in families:
            for name in sorted(values):
                family.add_metric([name], values[name])  # type: ignore[attr-defined]
            yield family


ROUTERS: Final = RouterCollector()
REGISTRY.register(ROUTERS)


def track_router(router: ReadRouter) -> None:
    """Count `router` in the replica families while it lives."""
    ROUTERS.track(router)
