"""The lock-free latency histogram: Prometheus' `le` semantics, and exact counts from many threads."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from coherence_sql.metrics.histogram import HistogramFamily
from tests.metrics.scrape import labelled, scrape, value

BOUNDS = (0.001, 0.01, 0.1)


def family(registry: CollectorRegistry) -> HistogramFamily:
    histogram = HistogramFamily("test_seconds", "A test histogram.", ["query"], BOUNDS)
    registry.register(histogram)
    return histogram


def test_a_value_on_a_bound_counts_in_that_bucket_and_the_buckets_are_cumulative() -> None:
    registry = CollectorRegistry()
    child = family(registry).child("q")
    for amount in (0.0005, 0.001, 0.002, 0.1, 30.0):
        child.observe(amount)
    names, samples = scrape(registry)
    assert names == {"test_seconds"}
    assert labelled(samples, "test_seconds_bucket") == {
        (("le", "0.001"), ("query", "q")): 2,
        (("le", "0.01"), ("query", "q")): 3,
        (("le", "0.1"), ("query", "q")): 4,
        (("le", "+Inf"), ("query", "q")): 5,
    }
    assert value(samples, "test_seconds_count", query="q") == 5
    assert value(samples, "test_seconds_sum", query="q") == 0.0005 + 0.001 + 0.002 + 0.1 + 30.0


def test_observations_from_many_threads_are_all_counted() -> None:
    registry = CollectorRegistry()
    child = family(registry).child("q")

    def observe_many() -> None:
        for _ in range(20_000):
            child.observe(0.005)

    threads = [threading.Thread(target=observe_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, samples = scrape(registry)
    assert value(samples, "test_seconds_count", query="q") == 80_000
    assert value(samples, "test_seconds_bucket", query="q", le="0.001") == 0
    assert value(samples, "test_seconds_bucket", query="q", le="0.01") == 80_000


def test_a_family_without_calls_is_still_exposed() -> None:
    registry = CollectorRegistry()
    family(registry)
    names, samples = scrape(registry)
    assert names == {"test_seconds"}
    assert samples == {}
