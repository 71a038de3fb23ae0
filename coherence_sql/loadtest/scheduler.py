"""The open-loop scheduler: requests arrive at a fixed rate whatever the system under test does.

Request i is due at `start + i / rate`. Its latency runs from that scheduled moment, not from
when it actually began, so a stall (a slow store, a blocked event loop, a full concurrency bound)
shows in the latency of every request that was due during it: no coordinated omission. At most
`concurrency` requests run at once; a request due while all slots are busy waits in a FIFO queue
(its wait counts in its latency, and it is counted as delayed); past `max_queue` waiting requests
a new one is dropped and counted (docs/decisions.md "Load tests").

Beside that latency, each request's service time (began -> finished: its own cost, without the
wait for a slot) is kept per operation, for the run and per timeline interval, so a run that falls
behind says which operation's own cost grew rather than showing the same queueing in every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from hdrh.histogram import HdrHistogram

from coherence_sql.errors import InvalidValueError
from coherence_sql.loadtest.latency import (
    HIGHEST_US,
    LOWEST_US,
    LatencyBook,
    LatencySummary,
    new_histogram,
    record_us,
)
from coherence_sql.redaction import redact_text
from coherence_sql.replicas import read_your_writes

# A request: its operation's name, and a callable that starts it.
Request = tuple[str, Callable[[], Awaitable[object]]]
# Chooses request number i (called when it is due, so its cost is the generator's own).
Picker = Callable[[int], Request]

DEFAULT_MAX_QUEUE: Final = 100_000
DEFAULT_DRAIN_TIMEOUT_S: Final = 30.0
# The generator "fell behind" when its p99 dispatch lag (due -> handed to a slot or the queue)
# passes this: past it the arrival process is no longer the fixed rate it claims to be.
DISPATCH_LAG_LIMIT_MS: Final = 10.0
# ... or when fewer than this share of the target rate completed.
ACHIEVED_SHARE: Final = 0.95
# The timeline's interval: a long run says when it fell behind, not only that it did.
TIMELINE_INTERVAL_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class OpenLoopSettings:
    rate: float
    duration_s: float
    concurrency: int
    max_queue: int = DEFAULT_MAX_QUEUE
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise InvalidValueError(f"rate must be positive requests per second, got {self.rate!r}")
        if not self.duration_s > 0:
            raise InvalidValueError(f"duration must be positive seconds, got {self.duration_s!r}")
        if self.concurrency < 1:
            raise InvalidValueError(f"concurrency must be at least 1, got {self.concurrency!r}")
        if self.max_queue < 0:
            raise InvalidValueError(f"max_queue must be 0 or more, got {self.max_queue!r}")
        if not self.drain_timeout_s > 0:
            raise InvalidValueError(f"drain timeout must be positive seconds, got {self.drain_timeout_s!r}")

    @property
    def planned(self) -> int:
        """How many requests the run schedules: rate x duration, rounded."""
        return max(1, round(self.rate * self.duration_s))

    def due_at(self, start: float, index: int) -> float:
        return start + index / self.rate


@dataclass(slots=True)
class LiveStatus:
    """What the progress line shows, updated as the run goes."""

    elapsed_s: float = 0.0
    planned: int = 0
    dispatched: int = 0
    completed: int = 0
    errors: int = 0
    delayed: int = 0
    dropped: int = 0
    in_flight: int = 0
    queued: int = 0
    p99_ms: float = 0.0
    dispatch_lag_ms: float = 0.0  # how late the latest request was handed over
    # The operation with the highest mean service time in the last finished interval, and that mean.
    costliest: str = ""
    costliest_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ServiceFigures:
    """One operation's service times (began -> finished) in one interval."""

    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class IntervalFigures:
    """The requests that completed in one interval of the run (by completion time): their latency
    (from the scheduled start) and their service time (from when they began), overall and per
    operation."""

    start_s: float
    completed: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    service_p50_ms: float
    service_p99_ms: float
    service_by_operation: dict[str, ServiceFigures]


def _interval_histogram() -> HdrHistogram:
    # Two significant digits (~27 KiB): an interval's latency and service time overall.
    return HdrHistogram(LOWEST_US, HIGHEST_US, 2)


@dataclass(slots=True)
class _OperationService:
    """One operation's service times in one interval. One significant digit (~8 KiB, percentiles
    within ~5%): enough to see a cost grow, and ~15 of them per interval for the API mix. The
    mean is the exact sum over the count: the histogram's own mean walks every bucket in Python
    (~30 ms a histogram), and the live line reads it each interval."""

    histogram: HdrHistogram = field(default_factory=lambda: HdrHistogram(LOWEST_US, HIGHEST_US, 1))
    total_s: float = 0.0

    def record(self, seconds: float) -> None:
        record_us(self.histogram, seconds)
        self.total_s += seconds

    @property
    def mean_ms(self) -> float:
        count = self.histogram.get_total_count()
        return round(self.total_s / count * 1000, 3) if count else 0.0

    def figures(self) -> ServiceFigures:
        h = self.histogram
        return ServiceFigures(
            count=h.get_total_count(),
            p50_ms=h.get_value_at_percentile(50) / 1000,
            p99_ms=h.get_value_at_percentile(99) / 1000,
            mean_ms=self.mean_ms,
            max_ms=h.get_max_value() / 1000,
        )


@dataclass(slots=True)
class _Interval:
    histogram: HdrHistogram = field(default_factory=_interval_histogram)
    service: HdrHistogram = field(default_factory=_interval_histogram)
    service_by_operation: dict[str, _OperationService] = field(default_factory=dict)
    errors: int = 0

    def record_service(self, operation: str, seconds: float) -> None:
        by_operation = self.service_by_operation.get(operation)
        if by_operation is None:
            by_operation = self.service_by_operation[operation] = _OperationService()
        by_operation.record(seconds)
        record_us(self.service, seconds)

    def figures(self, start_s: float) -> IntervalFigures:
        h = self.histogram
        return IntervalFigures(
            start_s=start_s,
            completed=h.get_total_count(),
            errors=self.errors,
            p50_ms=h.get_value_at_percentile(50) / 1000,
            p99_ms=h.get_value_at_percentile(99) / 1000,
            max_ms=h.get_max_value() / 1000,
            service_p50_ms=self.service.get_value_at_percentile(50) / 1000,
            service_p99_ms=self.service.get_value_at_percentile(99) / 1000,
            service_by_operation={
                name: service.figures() for name, service in sorted(self.service_by_operation.items())
            },
        )


@dataclass(slots=True)
class OpenLoopResult:
    """What one open-loop run measured."""

    settings: OpenLoopSettings
    elapsed_s: float  # from the first request's due time to the last completion
    completed: int
    delayed: int  # waited for a free slot (the concurrency bound)
    dropped: int  # refused: the wait queue was full
    unfinished: int  # still queued or running when the drain timeout ran out
    errors: Counter[str]  # by error type
    errors_by_operation: dict[str, Counter[str]]
    error_examples: dict[str, str]  # one redacted message per error type
    latency: LatencyBook
    service: LatencyBook  # began -> finished, per operation: its own cost without the wait for a slot
    dispatch_lag: HdrHistogram  # due -> handed over: the generator's own lateness
    start_lag: HdrHistogram  # due -> began: dispatch lag plus the wait for a slot
    timeline: list[IntervalFigures] = field(default_factory=list)  # per TIMELINE_INTERVAL_S of completions

    @property
    def achieved_rate(self) -> float:
        """Completed requests per second over the whole run (the schedule plus the drain)."""
        return self.completed / max(self.elapsed_s, self.settings.duration_s)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def warnings(self) -> list[str]:
        """Why this run's figures are not what the target rate asked for (empty when they are)."""
        found: list[str] = []
        target = self.settings.rate
        if self.achieved_rate < ACHIEVED_SHARE * target:
            found.append(f"achieved {self.achieved_rate:,.0f} req/s, below the target {target:,.0f} req/s")
        lag = LatencySummary.of(self.dispatch_lag)
        if lag.p99_ms > DISPATCH_LAG_LIMIT_MS:
            found.append(
                f"the generator fell behind its schedule: dispatch lag p99 {lag.p99_ms:.1f} ms, "
                f"max {lag.max_ms:.1f} ms (limit {DISPATCH_LAG_LIMIT_MS:g} ms)"
            )
        if self.delayed:
            found.append(f"{self.delayed:,} requests waited for one of the {self.settings.concurrency} slots")
        if self.dropped:
            found.append(f"{self.dropped:,} requests dropped: more than {self.settings.max_queue:,} were waiting")
        if self.unfinished:
            found.append(f"{self.unfinished:,} requests unfinished after the {self.settings.drain_timeout_s:g} s drain")
        return found


@dataclass(slots=True)
class _Run:
    settings: OpenLoopSettings
    start: float
    latency: LatencyBook = field(default_factory=LatencyBook)
    service: LatencyBook = field(default_factory=LatencyBook)
    dispatch_lag: HdrHistogram = field(default_factory=new_histogram)
    start_lag: HdrHistogram = field(default_factory=new_histogram)
    waiting: deque[tuple[float, Request]] = field(default_factory=deque)
    errors: Counter[str] = field(default_factory=Counter)
    errors_by_operation: dict[str, Counter[str]] = field(default_factory=dict)
    error_examples: dict[str, str] = field(default_factory=dict)
    status: LiveStatus = field(default_factory=LiveStatus)
    last_completion: float = 0.0
    unfinished: int = 0
    open_key: int = 0
    open_interval: _Interval = field(default_factory=_Interval)
    closed: list[tuple[int, _Interval]] = field(default_factory=list)

    def _interval(self, at: float) -> _Interval:
        """The interval `at` falls in. Completions are recorded as they happen, so time only moves
        forward: a new interval closes the open one."""
        key = int((at - self.start) // TIMELINE_INTERVAL_S)
        if key > self.open_key:
            self.close_interval()
            self.open_key, self.open_interval = key, _Interval()
        return self.open_interval

    def close_interval(self) -> None:
        """Keep the open interval for the timeline and name its costliest operation. Its figures
        wait for the end of the run: their percentiles walk each histogram in Python (~10 ms an
        interval of the API mix), which here would stall the event loop the requests run on."""
        interval = self.open_interval
        if interval.histogram.get_total_count() or interval.errors:
            self.closed.append((self.open_key, interval))
            if interval.service_by_operation:
                name, costliest = max(interval.service_by_operation.items(), key=lambda item: item[1].mean_ms)
                self.status.costliest, self.status.costliest_ms = name, costliest.mean_ms

    def timeline(self) -> list[IntervalFigures]:
        return [interval.figures(key * TIMELINE_INTERVAL_S) for key, interval in self.closed]

    async def serve(self, due: float, request: Request) -> None:
        """Run this request, then whatever waits in the queue, until it is empty."""
        item: tuple[float, Request] | None = (due, request)
        while item is not None:
            await self.run_one(*item)
            item = self.waiting.popleft() if self.waiting else None
            self.status.queued = len(self.waiting)
        self.status.in_flight -= 1

    async def run_one(self, due: float, request: Request) -> None:
        name, start_request = request
        began = time.perf_counter()
        record_us(self.start_lag, began - due)
        try:
            # One request is one caller, as the API's middleware makes it: with replicas configured
            # its reads wait only for its own writes (without replicas this costs nothing).
            with read_your_writes():
                await start_request()
        except asyncio.CancelledError:  # the drain ran out: a lower bound of its latency still counts
            cancelled = time.perf_counter()
            self.latency.record(name, cancelled - due)
            self.service.record(name, cancelled - began)
            self.unfinished += 1
            raise
        except Exception as exc:  # every failure is counted by type; none stops the run
            kind = type(exc).__name__
            self.errors[kind] += 1
            self.errors_by_operation.setdefault(name, Counter())[kind] += 1
            self.error_examples.setdefault(kind, redact_text(str(exc))[:300])
            self.status.errors += 1
            self._interval(time.perf_counter()).errors += 1
        finished = time.perf_counter()
        self.latency.record(name, finished - due)
        self.service.record(name, finished - began)
        interval = self._interval(finished)
        record_us(interval.histogram, finished - due)
        interval.record_service(name, finished - began)
        self.last_completion = finished
        self.status.completed += 1


async def run_open_loop(
    pick: Picker,
    settings: OpenLoopSettings,
    *,
    progress: Callable[[LiveStatus], None] | None = None,
    progress_interval_s: float = 1.0,
) -> OpenLoopResult:
    """Issue `settings.planned` requests at `settings.rate`, at most `settings.concurrency` at once;
    wait for them (at most `drain_timeout_s` past the schedule) and return what was measured."""
    run = _Run(settings, start=time.perf_counter())
    run.status.planned = settings.planned
    workers: set[asyncio.Task[None]] = set()
    ticker = None if progress is None else asyncio.create_task(_tick(run, progress, progress_interval_s))
    try:
        await _dispatch(run, pick, workers)
        if workers:
            _done, pending = await asyncio.wait(set(workers), timeout=settings.drain_timeout_s)
            if pending:
                for due, (name, _) in run.waiting:  # never began: the time waited so far is a lower bound
                    run.latency.record(name, time.perf_counter() - due)
                run.unfinished += len(run.waiting)
                run.waiting.clear()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
    finally:
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            progress(_refreshed(run))  # type: ignore[misc]  # ticker is None when progress is
    run.close_interval()
    return OpenLoopResult(
        settings=settings,
        elapsed_s=max(run.last_completion, time.perf_counter() if run.unfinished else 0.0) - run.start,
        completed=run.status.completed,
        delayed=run.status.delayed,
        dropped=run.status.dropped,
        unfinished=run.unfinished,
        errors=run.errors,
        errors_by_operation=run.errors_by_operation,
        error_examples=run.error_examples,
        latency=run.latency,
        service=run.service,
        dispatch_lag=run.dispatch_lag,
        start_lag=run.start_lag,
        timeline=run.timeline(),
    )


async def _dispatch(run: _Run, pick: Picker, workers: set[asyncio.Task[None]]) -> None:
    settings, status, start = run.settings, run.status, run.start
    planned, rate = settings.planned, settings.rate
    index = 0
    while index < planned:
        now = time.perf_counter()
        due_count = min(planned, int((now - start) * rate) + 1)
        if due_count <= index:
            await asyncio.sleep(settings.due_at(start, index) - now)
            continue
        while index < due_count:
            due = settings.due_at(start, index)
            request = pick(index)
            handed = time.perf_counter()
            record_us(run.dispatch_lag, handed - due)
            status.dispatch_lag_ms = (handed - due) * 1000
            index += 1
            status.dispatched = index
            if status.in_flight < settings.concurrency:
                status.in_flight += 1
                task = asyncio.create_task(run.serve(due, request))
                workers.add(task)
                task.add_done_callback(workers.discard)
            elif len(run.waiting) < settings.max_queue:
                run.waiting.append((due, request))
                status.delayed += 1
                status.queued = len(run.waiting)
            else:
                status.dropped += 1
        await asyncio.sleep(0)  # behind or not, the requests just handed over get to run


async def _tick(run: _Run, progress: Callable[[LiveStatus], None], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        progress(_refreshed(run))


def _refreshed(run: _Run) -> LiveStatus:
    status = run.status
    status.elapsed_s = time.perf_counter() - run.start
    overall = run.latency.overall
    status.p99_ms = overall.get_value_at_percentile(99.0) / 1000 if overall.get_total_count() else 0.0
    return status
