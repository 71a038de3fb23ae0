"""What every generated accessor in `coherence_sql/sql/` shares (hand-written, not generated).

`Executor` is what an accessor runs on (an asyncpg Connection, a pool, or a pool's connection);
the helpers build rows, parse status strings and name the failures the accessors translate.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any, Final, Protocol, TypeVar

from asyncpg import Record

from coherence_sql.errors import translate

__all__ = ["FAILURES", "Executor", "make_rows", "rowcount", "translate"]

RowT = TypeVar("RowT", bound=tuple[Any, ...])

# What a driver call can raise: every Exception (asyncpg, OSError, timeouts, codec errors) plus a
# cancellation, which `translate` turns into QueryCancelledError (still an asyncio.CancelledError).
FAILURES: Final[tuple[type[BaseException], ...]] = (Exception, asyncio.CancelledError)

_tuple_new: Final = tuple.__new__


class Executor(Protocol):
    """The asyncpg calls the accessors make; `asyncpg.Connection` and `asyncpg.Pool` satisfy it.

    A pool runs each call on a connection of its own: for a transaction, acquire a connection and
    pass that (`async with pool.acquire() as c, c.transaction(): await get_x(c, ...)`).
    """

    async def execute(self, query: str, *args: object) -> str: ...

    async def executemany(self, command: str, args: Iterable[Sequence[object]]) -> None: ...

    async def fetch(self, query: str, *args: object) -> list[Record]: ...

    async def fetchrow(self, query: str, *args: object) -> Record | None: ...

    async def fetchval(self, query: str, *args: object, column: int = ...) -> Any: ...


def make_rows(row_class: type[RowT], records: list[Record]) -> list[RowT]:
    """Records to NamedTuple rows at C speed.

    `tuple.__new__` mapped over the records runs no Python frame per row, and the collector is
    paused for the loop: each new row is a tracked object, and collections triggered by a thousand
    of them cost more than building them (docs/benchmarks.md). The loop is one C call, so no other
    coroutine or thread runs while the collector is off.
    """
    if records and len(records[0]) != len(row_class._fields):  # type: ignore[attr-defined]
        raise TypeError(f"{row_class.__name__} expects {len(row_class._fields)} columns, got {len(records[0])}")  # type: ignore[attr-defined]
    if not gc.isenabled():
        return list(map(_tuple_new, repeat(row_class, len(records)), records))
    gc.disable()
    try:
        return list(map(_tuple_new, repeat(row_class, len(records)), records))
    finally:
        gc.enable()


def rowcount(status: str) -> int:
    """The affected-row count in a command status string ('UPDATE 3', 'INSERT 0 1'); 0 if none."""
    _, _, last = status.rpartition(" ")
    return int(last) if last.isdigit() else 0
