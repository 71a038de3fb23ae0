"""WAL positions: what a caller must see after its writes, what the primary had written when, and
how far behind a replica is, all without a round trip on the caller's path.

A write only notes the moment it finished. The router's health loop samples the primary's WAL
insert position every interval; a sample that began after a caller's last write covers that write
(every commit before the sample began ends at or below it), so it becomes the position a replica
must have replayed before it may serve that caller. Until such a sample exists, the caller reads
from the primary. docs/decisions.md ("Replicas and PgBouncer") says why not a round trip per write.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final

__all__ = ["CallerPosition", "PrimaryClock", "PrimarySample", "read_your_writes"]


@dataclass(frozen=True, slots=True)
class PrimarySample:
    """The primary's WAL insert position (`lsn`, a byte offset), asked at `started` (monotonic)."""

    started: float
    lsn: int


@dataclass(slots=True)
class CallerPosition:
    """What one caller (or, unscoped, every caller of the process) has written.

    `lsn`: a position every write of the caller ends at or below; `pending_since`: when its latest
    write not yet covered by a primary sample finished (None when all are covered)."""

    lsn: int = 0
    pending_since: float | None = None

    def wrote(self, finished: float) -> None:
        if self.pending_since is None or finished > self.pending_since:
            self.pending_since = finished

    def required(self, latest: PrimarySample | None) -> int | None:
        """The position a replica must have replayed to serve this caller, or None when no sample
        covers its latest write yet (then only the primary may)."""
        if self.pending_since is not None:
            if latest is None or latest.started <= self.pending_since:
                return None
            self.lsn = max(self.lsn, latest.lsn)
            self.pending_since = None
        return self.lsn


# The caller's scope: one CallerPosition per router, shared by every task the caller starts inside it.
_SCOPE: ContextVar[dict[int, CallerPosition] | None] = ContextVar("coherence_sql_read_your_writes", default=None)


@contextmanager
def read_your_writes() -> Iterator[None]:
    """One caller's scope (an API request, a session): its reads wait only for its own writes.

    Outside any scope, a read waits for every write of the process (exact, but replicas then serve
    fewer reads under a steady write load). Tasks started inside the scope share it."""
    token = _SCOPE.set({})
    try:
        yield
    finally:
        _SCOPE.reset(token)


def scoped_position(router_key: int) -> CallerPosition | None:
    """The current scope's position for one router, None outside any scope."""
    scope = _SCOPE.get()
    if scope is None:
        return None
    position = scope.get(router_key)
    if position is None:
        position = scope[router_key] = CallerPosition()
    return position


_MIN_HISTORY: Final = 4


@dataclass(slots=True)
class PrimaryClock:
    """The primary's recent samples, enough to say how stale a replayed position is.

    `history_s` bounds what is kept: a replica further behind than that reads as `history_s` behind."""

    history_s: float
    _samples: deque[PrimarySample] = field(default_factory=deque)

    def record(self, sample: PrimarySample) -> None:
        self._samples.append(sample)
        while len(self._samples) > _MIN_HISTORY and sample.started - self._samples[0].started > self.history_s:
            self._samples.popleft()

    @property
    def latest(self) -> PrimarySample | None:
        return self._samples[-1] if self._samples else None

    def delay(self, replayed: int, now: float) -> float:
        """How long ago the primary was last known to be no further than `replayed`: 0 when it
        has replayed the latest sample; at most one sampling interval more than the true delay."""
        if not self._samples:
            return 0.0
        if replayed >= self._samples[-1].lsn:
            return 0.0
        positions = [s.lsn for s in self._samples]  # nondecreasing: the insert position only grows
        index = bisect.bisect_right(positions, replayed) - 1
        if index < 0:  # behind everything kept: at least this far (history_s and more once it is full)
            return max(0.0, now - self._samples[0].started)
        return max(0.0, now - self._samples[index].started)
