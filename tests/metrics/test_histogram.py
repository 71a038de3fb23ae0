"""The lock-free latency histogram: Prometheus' `le` semantics, and exact counts from many threads."""

from __future__ import annotations

import threading

import pytest
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


def test_the_shards_of_threads_that_ended_are_folded_in_and_no_count_is_lost() -> None:
    # The API's sync stores run on worker threads that come and go (AnyIO ends a worker idle for
    # 10 s): a shard per thread ever seen would grow without end, and every scrape would walk them all.
    registry = CollectorRegistry()
    child = family(registry).child("q")
    seen: list[float] = []

    def observe_some() -> None:
        for _ in range(100):
            child.observe(0.005)

    for batch in range(5):
        threads = [threading.Thread(target=observe_some) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _, samples = scrape(registry)
        seen.append(value(samples, "test_seconds_count", query="q"))
        assert child.shard_count() <= 1, f"batch {batch}: {child.shard_count()} shards kept for ended threads"
    assert seen == [2_000, 4_000, 6_000, 8_000, 10_000]
    assert value(samples, "test_seconds_sum", query="q") == pytest.approx(10_000 * 0.005)


def test_counts_never_go_backwards_while_threads_end_during_scrapes() -> None:
    registry = CollectorRegistry()
    child = family(registry).child("q")
    stop = threading.Event()
    counts: list[float] = []

    def scrape_until_stopped() -> None:
        while not stop.is_set():
            counts.append(value(scrape(registry)[1], "test_seconds_count", query="q") or 0)

    def observe_some() -> None:
        for _ in range(2_000):
            child.observe(0.005)

    scraper = threading.Thread(target=scrape_until_stopped)
    scraper.start()
    for _ in range(10):
        threads = [threading.Thread(target=observe_some) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stop.set()
    scraper.join()
    assert counts == sorted(counts)
    assert value(scrape(registry)[1], "test_seconds_count", query="q") == 80_000
