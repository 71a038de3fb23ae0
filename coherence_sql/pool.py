"""An asyncpg pool whose every wait for a connection is bounded, and whose failures to hand one out
are typed as unavailability.

asyncpg waits without limit by default: for a free connection (8 callers on a pool of 2 queued for
5, 10, 15, 20 s), for a new one to a frozen server, and, once a query was cancelled, for the
cancellation to be acknowledged when the connection is released (a SIGSTOPped server held a
cancelled caller forever). `BoundedPool` applies one bound to all three: asyncpg uses the acquire
timeout for the release of the same connection, and a release that runs out terminates it.
Every pool is named ("primary" unless told) and measured (coherence_sql.metrics.pools): callers
waiting and the time each waited are recorded here; the sizes are read when scraped.

A released connection is not reset: asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN,
RESET ALL) is one more round trip per release, ~40% of a point read, for session state nothing on
the stores' paths ever changes (docs/decisions.md "Speed"). An open transaction is still rolled
back (asyncpg does that before any reset hook). Whoever changes session state on a pooled
connection (SET, set_config(..., false), temporary tables, session advisory locks, LISTEN, WITH
HOLD cursors) calls `mark_session_changed(conn)`, and that connection gets the full reset on release.

A single statement on the pool (`pool.fetchrow(...)`, what every single-statement store call makes)
runs on an idle connection directly when one is free and nobody waits, and a connection's idle
lifetime is kept by one timer that checks when it fires instead of one cancelled and armed again on
every use (docs/decisions.md "Speed, round three").
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg

from coherence_sql.errors import CoherenceSQLError, DatabaseUnavailableError, PoolTimeoutError, translate
from coherence_sql.metrics.pools import track_pool

if TYPE_CHECKING:  # generic in the stubs only
    _PoolBase = asyncpg.Pool[asyncpg.Record]
else:
    _PoolBase = asyncpg.Pool


_T = TypeVar("_T")

# The connections (asyncpg.Connection, never the pool's proxy) some caller left session state on.
_CHANGED_SESSIONS: weakref.WeakSet[Any] = weakref.WeakSet()
# asyncpg's reset query, plus the temporary tables it leaves (a backfill's staging tables).
_FULL_RESET_EXTRA = "DISCARD TEMP;"


def mark_session_changed(conn: Any) -> None:
    """`conn` (a pooled connection or the proxy `pool.acquire()` gave) now carries session state
    a later caller must not inherit: the pool runs the full reset when it is released."""
    # The proxy is handed out once per acquire; the connection behind it is what the hook sees.
    raw = cast(Any, conn)._con if isinstance(conn, asyncpg.pool.PoolConnectionProxy) else conn
    _CHANGED_SESSIONS.add(raw)


async def reset_changed_session(conn: Any) -> None:
    """The pool's reset hook: nothing for a clean session (asyncpg has already rolled back an open
    transaction); the full reset for one marked by `mark_session_changed`. A failure here makes
    asyncpg terminate the connection rather than hand it out again."""
    if conn not in _CHANGED_SESSIONS:
        return
    _CHANGED_SESSIONS.discard(conn)
    await conn.execute(f"{conn.get_reset_query()}\n{_FULL_RESET_EXTRA}")


def _clean_after_statement(pool: Any, holder: Any, conn: Any) -> bool:
    """Whether giving `holder` back after a statement cannot suspend: an open connection of this
    pool's generation, no cancellation pending, no transaction, no session state to reset, not due
    for recycling, the pool's own reset hook."""
    return (
        conn is not None
        and pool._reset is reset_changed_session
        and not conn.is_closed()
        and not conn._protocol._is_cancelling()
        and not conn.is_in_transaction()
        and conn._top_xact is None
        and conn not in _CHANGED_SESSIONS
        and conn._protocol.queries_count < holder._max_queries
        and holder._generation == pool._generation
    )


def _returns_without_suspending(pool: Any, proxy: Any) -> bool:
    """Whether asyncpg's release of `proxy` runs to its end without ever suspending: an open
    connection of this pool's generation, no cancellation pending, no transaction to roll back, no
    session state to reset, not due for recycling (closing would suspend), the pool's own reset hook."""
    if type(proxy) is not asyncpg.pool.PoolConnectionProxy:
        return False
    holder, conn = cast(Any, proxy)._holder, cast(Any, proxy)._con  # asyncpg's internals, checked by tests
    return holder._pool is pool and _clean_after_statement(pool, holder, conn)


def _take_idle_holder(pool: Any, timeout: float) -> Any:
    """The holder of the next idle connection in `pool`'s queue, checked out, when handing it out
    cannot suspend (open, of the pool's generation, no setup hook), taken as asyncpg's own acquire
    would take it; None when the queue is empty or its head would have to connect or run a hook."""
    queue = pool._queue  # asyncpg's internals, checked by tests/stores/test_pool_sessions.py
    if queue.empty():
        return None
    pool._check_init()
    holder = queue.get_nowait()  # the one asyncpg's acquire would take (its queue is LIFO)
    conn = holder._con
    if conn is None or conn.is_closed() or holder._generation != pool._generation or holder._setup is not None:
        # Back where it was (nobody is waiting to be woken by it): asyncpg's path connects it.
        queue.put_nowait(holder)
        return None
    # PoolConnectionHolder.acquire's steps for a connection that needs nothing first, but the idle
    # timer: one of ours stays armed (it checks when it fires, below); asyncpg's is cancelled.
    timer = holder._inactive_callback
    if timer is not None and pool._idle_timers.get(holder) is not timer:
        timer.cancel()
        holder._inactive_callback = None
    holder._in_use = pool._loop.create_future()
    holder._timeout = timeout  # asyncpg bounds the release of this connection by it
    return holder


def _arm_idle_timer(pool: Any, holder: Any) -> None:
    """After a lean release: the holder's idle time starts now. Rather than asyncpg's timer
    cancelled at every acquire and armed again at every release (~10 µs a call, a point read's
    tenth), one timer of ours stays armed and, when it fires, checks how long the connection has
    really been idle."""
    pool._returned_at[holder] = pool._loop.time()
    if holder._inactive_callback is None and holder._max_inactive_time:
        _arm(pool, holder, holder._max_inactive_time)


def _arm(pool: Any, holder: Any, delay: float) -> None:
    # Ours are known by identity (a TimerHandle says nothing of its callback under uvloop).
    timer = pool._loop.call_later(delay, _idle_timer_fired, pool, holder)
    holder._inactive_callback = pool._idle_timers[holder] = timer


def _idle_timer_fired(pool: Any, holder: Any) -> None:
    """asyncpg's idle-lifetime check (`max_inactive_connection_lifetime`), for our timer: a
    connection idle that long is closed (asyncpg opens a new one when it is next needed); one in
    use, or used since the timer was armed, gets a timer for the rest of its idle time."""
    holder._inactive_callback = None
    if holder._in_use is not None:
        return  # its release arms a timer again
    idle_for = pool._loop.time() - pool._returned_at.get(holder, float("-inf"))
    if idle_for < holder._max_inactive_time:
        _arm(pool, holder, holder._max_inactive_time - idle_for)
        return
    holder._deactivate_inactive_connection()


class BoundedPool(_PoolBase):
    """`asyncpg.Pool` with a default acquire timeout (`acquire_timeout_s`) on every acquire,
    including those `pool.fetch*`/`execute` make for themselves.

    `name` labels its metrics (`pool="primary"`; a replica's pool says e.g. "replica-1");
    `waiting` is how many callers are inside an acquire now."""

    __slots__ = (
        "__weakref__",
        "_acquire_timer",
        "_idle_timers",
        "_name",
        "_returned_at",
        "acquire_timeout_s",
        "waiting",
    )

    def __init__(self, *args: Any, acquire_timeout_s: float, name: str = "primary", **kwargs: Any) -> None:
        self.acquire_timeout_s = acquire_timeout_s
        self._name = name
        self.waiting = 0
        self._returned_at: dict[Any, float] = {}  # holder -> when a lean release gave it back
        self._idle_timers: dict[Any, Any] = {}  # holder -> the idle timer of ours last armed for it
        kwargs.setdefault("reset", reset_changed_session)
        super().__init__(*args, **kwargs)
        self._acquire_timer = track_pool(self)

    @property
    def name(self) -> str:
        """The `pool` label of its metrics."""
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        # Renaming after create_pool (a replica's pool) moves its acquire metrics to the new label too.
        self._name = name
        self._acquire_timer = track_pool(self)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 (asyncpg's signature)
        """asyncpg's release, without the task its `asyncio.shield` costs (~35 µs of CPU a call)
        when nothing in it can suspend: then no cancellation can interrupt it, which is all the
        shield guards against. Anything else takes asyncpg's own path."""
        if not _returns_without_suspending(self, connection):
            if type(connection) is asyncpg.pool.PoolConnectionProxy and connection._holder._pool is self:
                # asyncpg's release arms its own idle timer, and refuses to while ours is armed.
                cast(Any, connection._holder)._maybe_cancel_inactive_callback()
            await super().release(connection, timeout=timeout)
            return
        self._check_init()  # type: ignore[attr-defined]
        conn, holder = connection._con, connection._holder
        conn._on_release()
        # PoolConnectionHolder.release's steps for a clean connection, without the timeout context
        # around its reset (a timer armed and cancelled per release): nothing in them can suspend,
        # `_reset` only clears listeners when no transaction is open, and our reset hook sends
        # nothing for an unmarked session (both checked by _returns_without_suspending).
        holder._timeout = None
        await conn._reset()
        await self._back_in_queue(holder)

    async def _back_in_queue(self, holder: Any) -> None:
        """A clean, checked-out holder back in the queue, idle from now."""
        holder._release()
        _arm_idle_timer(self, holder)
        if self.waiting:
            # The connection is back and the first waiter woken; without this yield a caller that
            # acquires again at once would take it first, and the woken waiter would go to the end
            # of the queue (asyncio.Queue re-queues it): at 64 callers on 20 connections some
            # waited past the 5 s bound. asyncpg's shielded release yields here by its nature.
            await asyncio.sleep(0)

    # -- one statement on an idle connection ---------------------------------------------------
    # `pool.fetchrow(...)` and the like, which every single-statement store call makes, run on an
    # idle connection's holder directly when one is free and nobody waits: no acquire context, no
    # proxy, no method wrapper (the caller never holds the connection, so it can leave no listener
    # or session state on it). Anything else takes asyncpg's path, bounded as above.

    def _idle_holder(self, bound: float) -> Any:
        """An idle connection's holder, checked out, when no caller is queued ahead (a woken waiter
        is still counted in `waiting` until it has its connection, so this never takes one it was
        handed) and handing it out cannot suspend; else None, for asyncpg's bounded path."""
        if self.waiting or self._closing:  # type: ignore[attr-defined]
            return None
        started = perf_counter()
        holder = _take_idle_holder(self, bound)
        if holder is not None:
            self._acquire_timer.observe(started)
        return holder

    async def _statement_done(self, holder: Any) -> None:
        """Give back the holder a single statement ran on, however the statement ended."""
        if holder._in_use is None:
            return  # the connection closed under the statement and asyncpg already took it back
        conn = holder._con
        if _clean_after_statement(self, holder, conn):
            conn._pool_release_ctr += 1  # what Connection._on_release counts; no listener can be on it
            holder._timeout = None
            await self._back_in_queue(holder)
            return
        # A cancelled statement, a closed connection, a recycle due: asyncpg's release, shielded,
        # through a proxy as it expects.
        holder._proxy = proxy = asyncpg.pool.PoolConnectionProxy(holder, conn)
        await self.release(proxy)

    async def _on_holder(self, holder: Any, statement: Awaitable[_T]) -> _T:
        try:
            return await statement
        finally:
            await self._statement_done(holder)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        holder = self._idle_holder(self.acquire_timeout_s)
        if holder is None:
            return await super().fetchrow(query, *args, timeout=timeout, record_class=record_class)
        return await self._on_holder(
            holder, holder._con.fetchrow(query, *args, timeout=timeout, record_class=record_class)
        )

    async def fetch(self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        holder = self._idle_holder(self.acquire_timeout_s)
        if holder is None:
            return await super().fetch(query, *args, timeout=timeout, record_class=record_class)
        return await self._on_holder(
            holder, holder._con.fetch(query, *args, timeout=timeout, record_class=record_class)
        )

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        holder = self._idle_holder(self.acquire_timeout_s)
        if holder is None:
            return await super().fetchval(query, *args, column=column, timeout=timeout)
        return await self._on_holder(holder, holder._con.fetchval(query, *args, column=column, timeout=timeout))

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109 (asyncpg's signature)
        holder = self._idle_holder(self.acquire_timeout_s)
        if holder is None:
            return await super().execute(query, *args, timeout=timeout)
        return cast(str, await self._on_holder(holder, holder._con.execute(query, *args, timeout=timeout)))

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's own signature)
        bound = self.acquire_timeout_s if timeout is None else timeout
        # A free connection with nobody queued ahead is handed out without asyncpg's wait_for task,
        # which costs more than a point read's query; anything else (a wait, a connect, a setup
        # hook) takes asyncpg's bounded path.
        holder = self._idle_holder(bound)
        if holder is not None:
            holder._proxy = proxy = asyncpg.pool.PoolConnectionProxy(holder, holder._con)
            return proxy
        started = perf_counter()
        self.waiting += 1
        try:
            connection = await super()._acquire(bound)  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self._acquire_timer.timed_out()
            raise PoolTimeoutError(
                f"no PostgreSQL connection within {bound:g}s (pool of {self.get_max_size()}, "
                f"{self.get_size() - self.get_idle_size()} in use): the server is slow, away, or the pool too small"
            ) from None
        except CoherenceSQLError:
            raise
        except Exception as exc:
            # Whatever the server answered while we connected (a password refused, a database
            # dropped or closed to connections, a server starting up), no statement of ours ran:
            # for a caller it is unavailability, never a verdict on its data.
            raise DatabaseUnavailableError(f"cannot get a PostgreSQL connection: {translate(exc)}") from None
        finally:
            self.waiting -= 1
        self._acquire_timer.observe(started)
        return connection
