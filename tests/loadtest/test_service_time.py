"""The service-time view: each request's own cost (began -> finished, without its wait for a slot)
per operation, for the run and per timeline interval, so a run that falls behind says which
operation's cost grew. No database and no timed assertion: the operations are the test's own
coroutines, and the checks are structure and consistency (service never exceeds latency)."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coherence_sql.loadtest import scheduler
from coherence_sql.loadtest.latency import PERCENTILES, LatencySummary
from coherence_sql.loadtest.report import open_loop_dict, service_growth
from coherence_sql.loadtest.scheduler import OpenLoopSettings, Request, run_open_loop


async def _nothing() -> None:
    return None


def _sleeper(seconds: float) -> Request:
    return "slow", lambda: asyncio.sleep(seconds)


async def test_service_time_leaves_out_the_wait_for_a_slot_that_latency_counts() -> None:
    # One slot, 100 req/s, each request sleeps 20 ms (or longer on a busy machine): request i, due
    # i x 10 ms after the first, cannot begin before the i earlier ones have run, so it waits at
    # least i x (service - 10 ms) whatever the machine's speed, while its service is its own sleep.
    # Over 20 requests the mean wait is at least 9.5 x (service - 10 ms), more than one service.
    result = await run_open_loop(lambda i: _sleeper(0.02), OpenLoopSettings(rate=100, duration_s=0.2, concurrency=1))
    service = LatencySummary.of(result.service.by_operation["slow"])
    latency = LatencySummary.of(result.latency.by_operation["slow"])
    assert service.count == latency.count == 20
    assert (
        service.p50_ms >= 19
    )  # asyncio.sleep(0.02) returns no earlier than its deadline (less the clock's resolution)
    assert 2 * service.mean_ms <= latency.mean_ms
    data = open_loop_dict(result)
    assert data["service_ms_by_operation"]["slow"]["count"] == 20
    assert data["service_ms_by_operation"]["slow"]["p50"] == service.p50_ms


async def test_each_percentile_of_service_is_at_most_the_same_percentile_of_latency() -> None:
    # Each request's service is part of its latency, so every order statistic of the one is at
    # most the same one of the other, per operation and overall.
    def pick(i: int) -> Request:
        return _sleeper(0.002 * (i % 3)) if i % 2 else ("fast", _nothing)

    result = await run_open_loop(pick, OpenLoopSettings(rate=400, duration_s=0.5, concurrency=2))
    assert set(result.service.by_operation) == set(result.latency.by_operation) == {"slow", "fast"}
    for name, histogram in result.service.by_operation.items():
        latency = result.latency.by_operation[name]
        assert histogram.get_total_count() == latency.get_total_count()
        for p in (*PERCENTILES, 100.0):
            assert histogram.get_value_at_percentile(p) <= latency.get_value_at_percentile(p), (name, p)
    assert result.service.overall.get_total_count() == result.completed == 200


async def test_the_timeline_splits_service_time_by_operation_in_every_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Intervals of 0.1 s instead of 10 s, so a sub-second run has several.
    monkeypatch.setattr(scheduler, "TIMELINE_INTERVAL_S", 0.1)
    seen: list[str] = []

    def pick(i: int) -> Request:
        return _sleeper(0.004) if i % 4 == 0 else ("fast", _nothing)

    result = await run_open_loop(
        pick,
        OpenLoopSettings(rate=400, duration_s=0.6, concurrency=8),
        progress=lambda s: seen.append(s.costliest),
        progress_interval_s=0.05,
    )
    timeline = result.timeline
    assert len(timeline) >= 5
    starts = [interval.start_s for interval in timeline]
    assert starts == sorted(set(starts))
    assert sum(interval.completed for interval in timeline) == result.completed == 240
    for interval in timeline:
        by_operation = interval.service_by_operation
        assert sum(figures.count for figures in by_operation.values()) == interval.completed
        assert interval.service_p50_ms <= interval.p50_ms
        assert interval.service_p99_ms <= interval.p99_ms
        for figures in by_operation.values():
            assert figures.p50_ms <= figures.p99_ms <= figures.max_ms
            assert figures.mean_ms <= figures.max_ms
    slow_total = sum(i.service_by_operation["slow"].count for i in timeline if "slow" in i.service_by_operation)
    assert slow_total == result.service.by_operation["slow"].get_total_count() == 60
    assert "slow" in seen  # the live line names the costliest operation of the last closed interval
    document = json.loads(json.dumps(open_loop_dict(result)))
    assert set(document["timeline"][0]["service_by_operation"]["fast"]) == {
        "count",
        "p50_ms",
        "p99_ms",
        "mean_ms",
        "max_ms",
    }


def _interval(start_s: float, **means: tuple[int, float]) -> dict[str, object]:
    return {
        "start_s": start_s,
        "service_by_operation": {name: {"count": c, "mean_ms": m} for name, (c, m) in means.items()},
    }


def test_growth_compares_the_first_minute_with_the_last_costliest_first() -> None:
    timeline = [_interval(10.0 * k, search=(100, 2.0), list_tasks=(50, 1.0 + k)) for k in range(30)]
    result = {
        "timeline": timeline,
        "service_ms_by_operation": {"search": {"count": 3000}, "list_tasks": {"count": 1500}},
    }
    growth = service_growth(result)
    assert [g.operation for g in growth] == ["list_tasks", "search"]
    tasks, search = growth
    assert (tasks.count, tasks.first_mean_ms, tasks.last_mean_ms) == (1500, 3.5, 27.5)  # means of k=0..5, 24..29
    assert tasks.ratio == pytest.approx(27.5 / 3.5)
    assert (search.first_mean_ms, search.last_mean_ms, search.ratio) == (2.0, 2.0, 1.0)


def test_a_run_of_one_interval_compares_it_with_itself_and_an_empty_one_has_no_growth() -> None:
    result = {"timeline": [_interval(0.0, get_task=(10, 0.5))], "service_ms_by_operation": {"get_task": {"count": 10}}}
    (only,) = service_growth(result)
    assert (only.first_mean_ms, only.last_mean_ms, only.ratio) == (0.5, 0.5, 1.0)
    assert service_growth({"timeline": [], "service_ms_by_operation": {}}) == []


@given(st.lists(st.tuples(st.integers(1, 1000), st.floats(0.001, 1000.0)), min_size=1, max_size=40))
def test_a_windows_mean_is_weighted_by_count_and_lies_within_its_intervals_means(
    figures: list[tuple[int, float]],
) -> None:
    timeline = [_interval(10.0 * k, op=pair) for k, pair in enumerate(figures)]
    (growth,) = service_growth({"timeline": timeline, "service_ms_by_operation": {"op": {"count": 1}}})
    spans = max(1, min(6, len(figures) // 2))
    for window, mean in ((figures[:spans], growth.first_mean_ms), (figures[-spans:], growth.last_mean_ms)):
        expected = sum(c * m for c, m in window) / sum(c for c, _ in window)
        assert mean == pytest.approx(expected, abs=1e-3)
        assert min(m for _, m in window) - 1e-3 <= mean <= max(m for _, m in window) + 1e-3
