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
"""

from __future__ import annotations

import asyncio
import weakref
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from coherence_sql.errors import CoherenceSQLError, DatabaseUnavailableError, PoolTimeoutError, translate
from coherence_sql.metrics.pools import track_pool

if TYPE_CHECKING:  # generic in the stubs only
    _PoolBase = asyncpg.Pool[asyncpg.Record]
else:
    _PoolBase = asyncpg.Pool


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


def _returns_without_suspending(pool: Any, proxy: Any) -> bool:
    """Whether asyncpg's release of `proxy` runs to its end without ever suspending: an open
    connection of this pool's generation, no cancellation pending, no transaction to roll back, no
    session state to reset, not due for recycling (closing would suspend), the pool's own reset hook."""
    if type(proxy) is not asyncpg.pool.PoolConnectionProxy:
        return False
    holder, conn = cast(Any, proxy)._holder, cast(Any, proxy)._con  # asyncpg's internals, checked by tests
    return (
        holder._pool is pool
        and conn is not None
        and pool._reset is reset_changed_session
        and not conn.is_closed()
        and not conn._protocol._is_cancelling()
        and not conn.is_in_transaction()
        and conn._top_xact is None
        and conn not in _CHANGED_SESSIONS
        and conn._protocol.queries_count < holder._max_queries
        and holder._generation == pool._generation
    )


def _take_idle(pool: Any, timeout: float) -> Any:
    """The proxy of the next idle connection in `pool`'s queue when handing it out cannot suspend
    (open, of the pool's generation, no setup hook), taken as asyncpg's own acquire would take it;
    None when the queue is empty or its head would have to connect or run a hook first."""
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
    # PoolConnectionHolder.acquire's steps for a connection that needs nothing first.
    holder._maybe_cancel_inactive_callback()
    holder._proxy = proxy = asyncpg.pool.PoolConnectionProxy(holder, conn)
    holder._in_use = pool._loop.create_future()
    holder._timeout = timeout  # asyncpg bounds the release of this connection by it
    return proxy


class BoundedPool(_PoolBase):
    """`asyncpg.Pool` with a default acquire timeout (`acquire_timeout_s`) on every acquire,
    including those `pool.fetch*`/`execute` make for themselves.

    `name` labels its metrics (`pool="primary"`; a replica's pool says e.g. "replica-1");
    `waiting` is how many callers are inside an acquire now."""

    __slots__ = ("__weakref__", "_acquire_timer", "_name", "acquire_timeout_s", "waiting")

    def __init__(self, *args: Any, acquire_timeout_s: float, name: str = "primary", **kwargs: Any) -> None:
        self.acquire_timeout_s = acquire_timeout_s
        self._name = name
        self.waiting = 0
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
        holder._release()
        holder._setup_inactive_callback()
        if self.waiting:
            # The connection is back and the first waiter woken; without this yield a caller that
            # acquires again at once would take it first, and the woken waiter would go to the end
            # of the queue (asyncio.Queue re-queues it): at 64 callers on 20 connections some
            # waited past the 5 s bound. asyncpg's shielded release yields here by its nature.
            await asyncio.sleep(0)

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's own signature)
        bound = self.acquire_timeout_s if timeout is None else timeout
        started = perf_counter()
        if not self.waiting and not self._closing:  # type: ignore[attr-defined]
            # No caller queued ahead (a woken waiter is still counted in `waiting` until it has its
            # connection, so this never takes one it was handed) and a free connection that needs
            # no suspension to hand out: take it without asyncpg's wait_for task, which costs more
            # than a point read's query. Anything else (a wait, a connect, a setup hook) is bounded.
            proxy = _take_idle(self, bound)
            if proxy is not None:
                self._acquire_timer.observe(started)
                return proxy
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
