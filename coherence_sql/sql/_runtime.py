"""What every generated accessor in `coherence_sql/sql/` shares (hand-written, not generated).

`Executor` is what an accessor runs on (an asyncpg Connection, a pool, or a pool's connection);
`rowcount` parses a command status string. What an accessor catches and how it is translated
live in `coherence_sql.errors` (`DRIVER_FAILURES`, `translate`). Rows need no
helper: a row class is an asyncpg Record subclass the driver builds (`record_class=`), or, for
rows with enum columns, a NamedTuple built by the module's own converter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar, overload

from asyncpg import Record

__all__ = ["Executor", "rowcount"]

RecordT = TypeVar("RecordT", bound=Record)


class Executor(Protocol):
    """The asyncpg calls the accessors make; `asyncpg.Connection`, `asyncpg.Pool` and a pool's
    connection (`PoolConnectionProxy`) satisfy it.

    `fetch`/`fetchrow` with `record_class=` return that Record subclass, as asyncpg's own
    overloads say. A pool runs each call on a connection of its own: for a transaction, acquire
    a connection and pass that (`async with pool.acquire() as c, c.transaction(): await get_x(c, ...)`).
    """

    async def execute(self, query: str, *args: object) -> str: ...

    async def executemany(self, command: str, args: Iterable[Sequence[object]]) -> None: ...

    @overload
    async def fetch(self, query: str, *args: object) -> list[Record]: ...

    @overload
    async def fetch(self, query: str, *args: object, record_class: type[RecordT]) -> list[RecordT]: ...

    @overload
    async def fetchrow(self, query: str, *args: object) -> Record | None: ...

    @overload
    async def fetchrow(self, query: str, *args: object, record_class: type[RecordT]) -> RecordT | None: ...

    async def fetchval(self, query: str, *args: object, column: int = ...) -> Any: ...


def rowcount(status: str) -> int:
    """The affected-row count in a command status string ('UPDATE 3', 'INSERT 0 1'); 0 if none."""
    _, _, last = status.rpartition(" ")
    return int(last) if last.isdigit() else 0
