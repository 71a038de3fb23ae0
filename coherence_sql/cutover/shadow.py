"""Shadow reads, in the manner of GitHub's Scientist but asyncio-native.

A sampled share of the reads that memory serves is read again from PostgreSQL in a background
task, timed and compared; the caller never waits on it and never sees its failures. Every
mismatch is counted and kept with both values (the newest in memory, all of them through an
optional recorder, e.g. a PostgreSQL table).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic_core import to_jsonable_python

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mismatch:
    operation: str
    key: str | None
    control: Any
    candidate: Any
    control_ms: float
    candidate_ms: float | None
    error: str | None
    observed_at: datetime
    control_side: str = "memory"  # the store that served the read; the other was read in the shadow

    def as_json(self) -> dict[str, Any]:
        return dict(to_jsonable_python(asdict(self)))


class MismatchRecorder(Protocol):
    async def record(self, mismatch: Mismatch) -> None: ...


@dataclass(slots=True)
class ShadowStats:
    compared: int = 0
    matched: int = 0
    mismatched: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped: int = 0
    control_ms: float = 0.0
    candidate_ms: float = 0.0
    # By operation (the store method), for the metrics; the totals above stay the status payload.
    compared_by_operation: Counter[str] = field(default_factory=Counter)
    mismatched_by_operation: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "matched": self.matched,
            "mismatched": self.mismatched,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "skipped": self.skipped,
            "mean_control_ms": round(self.control_ms / self.compared, 3) if self.compared else None,
            "mean_candidate_ms": round(self.candidate_ms / self.compared, 3) if self.compared else None,
        }


@dataclass
class ShadowReader:
    """Samples reads and compares PostgreSQL's answer with memory's, off the caller's path."""

    percent: int
    timeout_s: float = 2.0
    max_in_flight: int = 64
    recorder: MismatchRecorder | None = None
    draw: Callable[[], float] = random.random
    keep_last: int = 1000
    stats: ShadowStats = field(default_factory=ShadowStats)
    recent: deque[Mismatch] = field(init=False)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.keep_last)

    def sampled(self) -> bool:
        return self.percent > 0 and (self.percent >= 100 or self.draw() * 100 < self.percent)

    def compare(
        self,
        operation: str,
        key: str | None,
        control: Any,
        control_ms: float,
        candidate: Callable[[], Awaitable[Any]],
        control_side: str = "memory",
    ) -> None:
        """Schedule the comparison if this read is sampled; returns at once either way.

        `control` is what the caller got, from `control_side`; `candidate` reads the other store."""
        if not self.sampled():
            return
        if len(self._in_flight) >= self.max_in_flight:
            self.stats.skipped += 1  # never queue behind a slow PostgreSQL
            return
        task = asyncio.get_running_loop().create_task(
            self._run(operation, key, control, control_ms, candidate, control_side)
        )
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _run(
        self,
        operation: str,
        key: str | None,
        control: Any,
        control_ms: float,
        candidate: Callable[[], Awaitable[Any]],
        control_side: str,
    ) -> None:
        started = time.perf_counter()
        error: str | None = None
        value: Any = None
        try:
            value = await asyncio.wait_for(candidate(), self.timeout_s)
        except TimeoutError:
            self.stats.timeouts += 1
            error = f"timed out after {self.timeout_s:g}s"
        except Exception as exc:  # a shadow read must never surface
            self.stats.errors += 1
            error = f"{type(exc).__name__}: {exc}"
        candidate_ms = (time.perf_counter() - started) * 1000
        self.stats.compared += 1
        self.stats.compared_by_operation[operation] += 1
        self.stats.control_ms += control_ms
        self.stats.candidate_ms += candidate_ms
        if error is None and value == control:
            self.stats.matched += 1
            return
        if error is None:
            self.stats.mismatched += 1
            self.stats.mismatched_by_operation[operation] += 1
        mismatch = Mismatch(
            operation=operation,
            key=key,
            control=to_jsonable_python(control),
            candidate=to_jsonable_python(value),
            control_ms=round(control_ms, 3),
            candidate_ms=round(candidate_ms, 3) if error is None else None,
            error=error,
            observed_at=datetime.now(UTC),
            control_side=control_side,
        )
        self.recent.append(mismatch)
        if self.recorder is not None:
            try:
                await self.recorder.record(mismatch)
            except Exception as exc:
                log.warning("could not record a shadow mismatch for %s: %s", operation, exc)

    async def drain(self) -> None:
        """Wait for every comparison under way (shutdown and tests)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
