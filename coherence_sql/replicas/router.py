"""The read router: a pool-like object the stores are given as their pool, which sends a read-only
statement to a replica that has replayed the caller's writes, and everything else to the primary.

What the stores call on a pool, it offers: `fetch`, `fetchrow`, `fetchval`, `execute`,
`executemany` (each statement classified once by `statements.is_read_only`) and `acquire()`
(always the primary: a transaction, whatever it holds). A read that a replica fails to answer for
any reason but the statement's own fault is answered by the primary instead; the caller never
sees the replica's failure.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Final

import asyncpg

from coherence_sql.db import Pool
from coherence_sql.errors import PoolTimeoutError
from coherence_sql.redaction import scrub
from coherence_sql.replicas.positions import CallerPosition, PrimaryClock, scoped_position
from coherence_sql.replicas.settings import ReplicaSettings
from coherence_sql.replicas.statements import is_read_only

__all__ = ["ReadRouter", "Replica"]

# SQLSTATE classes that are the statement's own fault: the primary would refuse it the same way.
_STATEMENT_FAULTS: Final = ("22", "23", "42")
# ...and those that say the replica itself is unreachable, shutting down or out of resources.
_REPLICA_DOWN: Final = ("08", "57P", "53")


@dataclass(eq=False, slots=True)
class Replica:
    """One replica in the rotation: its pool (None until it could be opened) and what the health
    loop last learned of it."""

    name: str
    url: str = field(repr=False)
    pool: Pool | None = None
    in_rotation: bool = False
    replayed: int = 0  # a position it has replayed at least (0: unknown)
    delay_s: float = 0.0
    problem: str | None = None  # why it is out of rotation, redacted
    reads: int = 0
    busy_since: float | None = None  # when the health check first found no free connection

    def serves(self, required: int) -> bool:
        return self.in_rotation and self.replayed >= required

    def take_out(self, problem: str) -> None:
        """Out of rotation until a check finds it well again; what it had replayed is forgotten
        (a restarted replica may come back behind where it was)."""
        self.in_rotation = False
        self.replayed = 0
        self.problem = scrub(problem, self.url)  # a driver's message may quote the URL


def retry_on_primary(exc: BaseException) -> bool:
    """Whether a replica's failure of a read is the replica's, not the statement's."""
    if isinstance(exc, asyncpg.PostgresError):
        return not str(exc.sqlstate or "").startswith(_STATEMENT_FAULTS)
    return isinstance(exc, Exception)


def replica_is_down(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "").startswith(_REPLICA_DOWN)
    return True


class ReadRouter:
    """Reads to replicas that have replayed what the caller wrote; writes to the primary.

    The primary pool belongs to whoever opened it; the router owns only the replicas' pools (see
    `coherence_sql.replicas.service.open_read_router`, which also runs the health loop)."""

    def __init__(self, primary: Pool, replicas: Sequence[Replica], settings: ReplicaSettings) -> None:
        self.primary = primary
        self.replicas: tuple[Replica, ...] = tuple(replicas)
        self.settings = settings
        # A replica more than this far behind reads as this far behind (docs: the lag metric).
        self.clock = PrimaryClock(history_s=max(3 * settings.max_lag_s, 1.0))
        self.primary_reads = 0
        self.closing = False  # set when the router closes: the health loop ends
        self._unscoped = CallerPosition()
        self._key = id(self)
        self._turn = itertools.count()

    # -- what the stores call -----------------------------------------------------------------
    async def fetch(self, query: str, *args: object, **kwargs: Any) -> Any:
        if is_read_only(query):
            return await self._read("fetch", query, args, kwargs)
        try:
            return await self.primary.fetch(query, *args, **kwargs)
        finally:
            self.wrote()

    async def fetchrow(self, query: str, *args: object, **kwargs: Any) -> Any:
        if is_read_only(query):
            return await self._read("fetchrow", query, args, kwargs)
        try:
            return await self.primary.fetchrow(query, *args, **kwargs)
        finally:
            self.wrote()

    async def fetchval(self, query: str, *args: object, **kwargs: Any) -> Any:
        if is_read_only(query):
            return await self._read("fetchval", query, args, kwargs)
        try:
            return await self.primary.fetchval(query, *args, **kwargs)
        finally:
            self.wrote()

    async def execute(self, query: str, *args: object, **kwargs: Any) -> str:
        if is_read_only(query):
            status: str = await self._read("execute", query, args, kwargs)
            return status
        try:
            return await self.primary.execute(query, *args, **kwargs)
        finally:
            self.wrote()

    async def executemany(self, command: str, args: Iterable[Sequence[object]], **kwargs: Any) -> None:
        try:
            await self.primary.executemany(command, args, **kwargs)
        finally:
            self.wrote()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        """A primary connection (transactions never go to a replica); if anything it ran may
        have written, the caller's reads wait for it as for any write."""
        async with self.primary.acquire() as conn:
            tracked = _TrackedConnection(conn)
            try:
                yield tracked
            finally:
                if tracked.may_have_written:
                    self.wrote()

    # -- read-your-writes ---------------------------------------------------------------------
    def wrote(self) -> None:
        """A write finished (or failed: it may have committed all the same) in this caller's
        context: its reads, and every unscoped read, now wait for it."""
        finished = monotonic()
        self._unscoped.wrote(finished)
        scoped = scoped_position(self._key)
        if scoped is not None:
            scoped.wrote(finished)

    def required_position(self) -> int | None:
        """The position a replica must have replayed to serve the current caller (None: the primary only)."""
        scoped = scoped_position(self._key)
        position = self._unscoped if scoped is None else scoped
        return position.required(self.clock.latest)

    def choose(self) -> Replica | None:
        """A replica for the current caller's read, in turn among those that may serve it; None
        when none may (then the primary serves it)."""
        required = self.required_position()
        if required is None or not self.replicas:
            return None
        count = len(self.replicas)
        first = next(self._turn)
        for step in range(count):
            replica = self.replicas[(first + step) % count]
            if replica.serves(required):
                return replica
        return None

    async def _read(self, method: str, query: str, args: tuple[object, ...], kwargs: dict[str, Any]) -> Any:
        replica = self.choose()
        if replica is not None and replica.pool is not None:
            try:
                result = await getattr(replica.pool, method)(query, *args, **kwargs)
            except (asyncio.CancelledError, PoolTimeoutError):
                # A replica's pool that stayed full for the whole acquire timeout is saturated, not
                # down: the caller has waited its bound, and another wait on the primary would double it.
                raise
            except Exception as exc:
                if not retry_on_primary(exc):
                    raise
                if replica_is_down(exc):
                    replica.take_out(f"a read failed: {type(exc).__name__}: {exc}")
            else:
                replica.reads += 1
                return result
        self.primary_reads += 1
        return await getattr(self.primary, method)(query, *args, **kwargs)


# Connection attributes that run nothing that could write.
_HARMLESS: Final = frozenset({"transaction", "is_closed", "is_in_transaction", "get_server_pid", "get_settings"})


class _TrackedConnection:
    """A primary connection that remembers whether anything it ran may have written."""

    __slots__ = ("_conn", "may_have_written")

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.may_have_written = False

    def _note(self, query: str) -> None:
        if not is_read_only(query):
            self.may_have_written = True

    async def fetch(self, query: str, *args: object, **kwargs: Any) -> Any:
        self._note(query)
        return await self._conn.fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: object, **kwargs: Any) -> Any:
        self._note(query)
        return await self._conn.fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: object, **kwargs: Any) -> Any:
        self._note(query)
        return await self._conn.fetchval(query, *args, **kwargs)

    async def execute(self, query: str, *args: object, **kwargs: Any) -> Any:
        self._note(query)
        return await self._conn.execute(query, *args, **kwargs)

    async def executemany(self, command: str, args: Any, **kwargs: Any) -> Any:
        self.may_have_written = True
        return await self._conn.executemany(command, args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name not in _HARMLESS:  # copy_*, prepare, cursor...: whatever it does, assume a write
            self.may_have_written = True
        return getattr(self._conn, name)
