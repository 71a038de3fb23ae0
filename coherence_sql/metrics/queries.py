"""Latency and failures of every generated accessor, one pre-bound timer per named query.

Each generated module creates a `QueryTimer` per query when it is imported, so a call costs one
`perf_counter()` pair and one histogram observe (histogram.py: a lock-free per-thread shard): no
label lookup, no dict.
"""

from __future__ import annotations

from time import perf_counter
from typing import Final

from prometheus_client import Counter

from coherence_sql.errors import CoherenceSQLError, translate
from coherence_sql.metrics.histogram import HistogramFamily
from coherence_sql.metrics.registry import LATENCY_BUCKETS, REGISTRY
from coherence_sql.metrics.switch import SWITCH

QUERY_DURATION: Final = HistogramFamily(
    "coherence_sql_query_duration_seconds",
    "Time of one generated accessor call (success or failure), by named query (<file>.<query>).",
    ["query"],
    LATENCY_BUCKETS,
)
REGISTRY.register(QUERY_DURATION)
QUERY_FAILURES: Final = Counter(
    "coherence_sql_query_failures_total",
    "Generated accessor calls that failed, by named query and coherence_sql error class.",
    ["query", "error"],
    registry=REGISTRY,
)


class QueryTimer:
    """The metrics of one named query ("contributors.get_contributor"), bound once.

    The generated accessor does `started = perf_counter()` before the driver call,
    `raise TIMER.failure(exc) from None` on a driver failure and `TIMER.observe(started)` in `finally`.
    """

    __slots__ = ("_duration", "_failures", "query")

    def __init__(self, query: str) -> None:
        self.query = query
        self._duration = QUERY_DURATION.child(query)
        self._failures: dict[str, Counter] = {}

    def observe(self, started: float) -> None:
        """Record one call that began at `started` (a `perf_counter()` reading)."""
        if SWITCH.on:
            self._duration.observe(perf_counter() - started)

    def failure(self, exc: BaseException) -> CoherenceSQLError:
        """The typed error for a driver failure (`errors.translate`), counted under its class name."""
        error = translate(exc, self.query)
        if SWITCH.on:
            name = type(error).__name__
            child = self._failures.get(name)
            if child is None:
                child = self._failures[name] = QUERY_FAILURES.labels(self.query, name)
            child.inc()
        return error
