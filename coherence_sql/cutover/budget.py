"""A PostgreSQL call run in its caller's task until it is done or its budget has run out.

The PostgreSQL leg of a dual-write (or of a routed read) must never keep its caller past the
budget, nor make it wait for the call's clean-up after a cancellation (against a frozen server that
clean-up lasts until the pool's timeout). A task per call gave both, at the price of three more
turns of the event loop and a Task per write (docs/decisions.md "Dual-write, round three").

Here the call's coroutine is driven step by step in the caller's own task, so the futures it waits
on are the caller's and its answer reaches the caller in the same turn. At the deadline the
caller's task is cancelled, as `asyncio.timeout` does, by one timer shared by every call in flight
(`Deadlines`: a timer armed and cancelled per call cost more than the rest of the bookkeeping, its
cancelled handles piling up in the event loop's heap for a whole budget). A cancellation (the
deadline's, or the caller's own) is never thrown into the call inside the caller's task: the call
is handed, still suspended, to a task of its own, which throws the cancellation in there and lets
the call end as it would have in a task of its own all along (asyncpg cancels the statement, the
pool terminates a connection that does not answer), while the caller goes on at once.

The one thing this needs from the call: no `asyncio.timeout` of its own may expire while it runs in
the caller's task (such a timeout cancels the task that entered it, which would look like the
caller being cancelled). A PostgreSQL store's call enters one only around waiting for a pool
connection, for the pool's acquire timeout; so `CutoverCore` runs calls here only when the budget
is shorter than that timeout, and in a task of their own otherwise.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from coherence_sql.errors import DatabaseUnavailableError, QueryTimeoutError

T = TypeVar("T")


class BudgetExceededError(QueryTimeoutError):
    """The PostgreSQL leg ran past its budget; the write is journaled, the read served from memory."""


class Deadlines:
    """The deadlines of the calls in flight, under one timer armed for the earliest. A call that
    ends only leaves the table; when the timer fires it expires the calls that are due and arms
    itself for the next deadline, if any (so at one caller it fires about once per budget)."""

    __slots__ = ("_armed_for", "_calls", "_loop", "_timer")

    def __init__(self) -> None:
        self._calls: dict[InlineCall[Any], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, call: InlineCall[Any], deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        self._calls[call] = deadline
        if deadline < self._armed_for or loop is not self._loop:
            self._arm(deadline, loop)

    def discard(self, call: InlineCall[Any]) -> None:
        self._calls.pop(call, None)

    def _arm(self, when: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire)
        self._armed_for = when
        self._loop = loop

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer, self._armed_for = None, math.inf
        now = loop.time()
        for call in [call for call, deadline in self._calls.items() if deadline <= now]:
            del self._calls[call]
            if call._task.get_loop() is loop:  # one left by a loop that is gone is only forgotten
                call._expire()
        if self._calls:
            self._arm(min(self._calls.values()), loop)

    def __len__(self) -> int:
        return len(self._calls)


class InlineCall(Generic[T]):
    """`await InlineCall(call, budget_s, task, deadlines, handoff)` in `task`, which has no
    cancellation pending: the call's answer, or BudgetExceededError at the deadline. `handoff`
    receives the remainder of a call cut short (by the deadline or the caller's cancellation), to
    run in a task of its own, and whether the deadline cut it."""

    __slots__ = ("_budget_s", "_call", "_deadlines", "_expired", "_handoff", "_task")

    def __init__(
        self,
        call: Awaitable[T],
        budget_s: float,
        task: asyncio.Task[Any],
        deadlines: Deadlines,
        handoff: Callable[[Awaitable[Any], bool], None],
    ) -> None:
        self._call = call
        self._budget_s = budget_s
        self._task = task
        self._deadlines = deadlines
        self._handoff = handoff
        self._expired = False

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __await__(self) -> Generator[Any, None, T]:
        steps = self._call.__await__()
        task = self._task
        loop = task.get_loop()
        deadline = loop.time() + self._budget_s
        waiting = False
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    waited_on = steps.send(value) if error is None else steps.throw(error)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
                except asyncio.CancelledError as exc:
                    # Not the caller's cancellation (that never reaches the call here): something
                    # the call waited on was cancelled, e.g. its connection went away.
                    raise DatabaseUnavailableError(f"the PostgreSQL call was cancelled: {exc}") from None
                value = error = None
                if not waiting:  # the first suspension: most calls are answered after one
                    waiting = True
                    self._deadlines.add(self, deadline, loop)
                try:
                    value = yield waited_on
                except asyncio.CancelledError as exc:
                    if not task.cancelling():
                        # Nobody cancelled the caller (it had no cancellation pending when the call
                        # started): the future the call waited on was cancelled. The call gets the
                        # cancellation, as it would in a task of its own.
                        error = exc
                        continue
                    expired = self._expired and task.uncancel() == 0
                    self._handoff(_cancelled_remainder(steps), expired)
                    if expired:
                        raise BudgetExceededError(f"PostgreSQL did not answer within {self._budget_s:g}s") from None
                    raise  # the caller's own cancellation (perhaps at the deadline too): it goes on
                except GeneratorExit:
                    steps.close()
                    raise
                except BaseException as exc:  # asyncio throws only cancellations; pass anything else in
                    error = exc
        finally:
            if waiting:
                self._deadlines.discard(self)


async def _cancelled_remainder(steps: Generator[Any, None, Any]) -> Any:
    return await _Cancelled(steps)


class _Cancelled:
    """Go on with a suspended call in the current task, first throwing the cancellation into it
    (what a task of its own would have done when cancelled)."""

    __slots__ = ("_steps",)

    def __init__(self, steps: Generator[Any, None, Any]) -> None:
        self._steps = steps

    def __await__(self) -> Generator[Any, None, Any]:
        steps = self._steps
        value: Any = None
        error: BaseException | None = asyncio.CancelledError()
        while True:
            try:
                waited_on = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                return stop.value
            value = error = None
            try:
                value = yield waited_on
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:
                error = exc
