"""The open-loop scheduler's accounting: requests due at start + i/rate, latency from the due time
(a stall shows in every request due during it), the concurrency bound's queue, drops, the drain,
errors by type. No database: the operations are coroutines of the test's own."""

from __future__ import annotations

import asyncio
import time

import pytest

from coherence_sql.errors import InvalidValueError
from coherence_sql.loadtest.latency import LatencySummary
from coherence_sql.loadtest.scheduler import OpenLoopSettings, Request, run_open_loop


async def _nothing() -> None:
    return None


def test_request_i_is_due_at_start_plus_i_over_rate() -> None:
    settings = OpenLoopSettings(rate=250, duration_s=2, concurrency=4)
    assert settings.planned == 500
    assert settings.due_at(10.0, 0) == 10.0
    assert settings.due_at(10.0, 125) == pytest.approx(10.5)
    assert settings.due_at(10.0, 499) == pytest.approx(11.996)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be positive"),
        ({"duration_s": -1}, "duration must be positive"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"max_queue": -1}, "max_queue must be 0 or more"),
    ],
)
def test_bad_settings_are_refused_with_what_was_wrong(kwargs: dict[str, float], message: str) -> None:
    values: dict[str, float] = {"rate": 10, "duration_s": 1, "concurrency": 1, **kwargs}
    with pytest.raises(InvalidValueError, match=message):
        OpenLoopSettings(**values)  # type: ignore[arg-type]


async def test_a_stalled_event_loop_shows_in_the_latency_of_every_request_due_during_it() -> None:
    # 200 req/s for 1 s; request 40 (due at 0.2 s) blocks the whole loop for 0.3 s, as a GC pause
    # or a synchronous call would. Requests due from 0.2 s to 0.5 s cannot start until 0.5 s, so
    # those due before 0.4 s (about 40 of 200, 20%) wait 100 ms or more: p80 is at least 100 ms.
    # A closed-loop generator would have sent none of them during the stall and shown one slow request.
    def pick(i: int) -> Request:
        if i == 40:

            async def stall() -> None:
                time.sleep(0.3)  # noqa: ASYNC251  (the point: a blocked loop)

            return "stall", stall
        return "fast", _nothing

    result = await run_open_loop(pick, OpenLoopSettings(rate=200, duration_s=1.0, concurrency=8))
    assert result.completed == 200
    fast = result.latency.by_operation["fast"]
    assert fast.get_value_at_percentile(80) >= 95_000  # µs
    assert fast.get_max_value() >= 250_000
    assert LatencySummary.of(result.dispatch_lag).max_ms >= 250
    assert any("fell behind its schedule" in w for w in result.warnings())


async def test_requests_past_the_concurrency_bound_wait_in_order_and_their_wait_counts() -> None:
    # One slot, 100 req/s, each request takes 20 ms: the queue grows by one every 20 ms, and the
    # last of 40 requests (due at 0.39 s) starts only after 39 x 20 ms = 0.78 s.
    started: list[int] = []

    def pick(i: int) -> Request:
        async def work() -> None:
            started.append(i)
            await asyncio.sleep(0.02)

        return "slow", work

    result = await run_open_loop(pick, OpenLoopSettings(rate=100, duration_s=0.4, concurrency=1))
    assert result.completed == 40
    assert result.error_count == 0
    assert started == list(range(40))  # first due, first served
    assert result.delayed >= 30
    assert LatencySummary.of(result.latency.overall).max_ms >= 350
    assert LatencySummary.of(result.start_lag).max_ms >= 300
    assert any("waited for one of the 1 slots" in w for w in result.warnings())
    assert any("below the target" in w for w in result.warnings())


async def test_requests_past_the_wait_queue_are_dropped_and_counted() -> None:
    result = await run_open_loop(
        lambda i: ("slow", lambda: asyncio.sleep(0.1)),
        OpenLoopSettings(rate=100, duration_s=0.3, concurrency=1, max_queue=2),
    )
    assert result.dropped > 20
    assert result.completed + result.dropped == 30
    assert any("dropped" in w for w in result.warnings())


async def test_requests_unfinished_at_the_drain_timeout_are_counted_with_their_wait() -> None:
    never = asyncio.Event()
    result = await run_open_loop(
        lambda i: ("stuck", never.wait),
        OpenLoopSettings(rate=50, duration_s=0.2, concurrency=2, drain_timeout_s=0.2),
    )
    assert result.unfinished == 10
    assert result.completed == 0
    assert result.latency.overall.get_total_count() == 10  # every scheduled request counts, none hides
    assert LatencySummary.of(result.latency.overall).max_ms >= 190


async def test_failures_are_counted_by_type_and_operation_and_the_run_goes_on() -> None:
    def pick(i: int) -> Request:
        if i % 2:

            async def refused() -> None:
                raise InvalidValueError(f"bad {i}")

            return "write", refused
        return "read", _nothing

    result = await run_open_loop(pick, OpenLoopSettings(rate=100, duration_s=0.2, concurrency=4))
    assert result.completed == 20
    assert dict(result.errors) == {"InvalidValueError": 10}
    assert {k: dict(v) for k, v in result.errors_by_operation.items()} == {"write": {"InvalidValueError": 10}}
    assert result.error_examples["InvalidValueError"].startswith("bad ")
    ((only,),) = [result.timeline]  # one 10-second interval of completions
    assert (only.start_s, only.completed, only.errors) == (0.0, 20, 10)


async def test_the_progress_callback_sees_the_run_and_its_end() -> None:
    seen: list[tuple[int, int]] = []
    result = await run_open_loop(
        lambda i: ("noop", _nothing),
        OpenLoopSettings(rate=100, duration_s=0.5, concurrency=2),
        progress=lambda s: seen.append((s.completed, s.planned)),
        progress_interval_s=0.1,
    )
    assert len(seen) >= 3
    assert seen[-1] == (result.completed, 50) == (50, 50)
