"""One statement on the pool (`pool.fetchrow(...)` and the like, every single-statement store call)
runs on an idle connection directly, and the pool stays what asyncpg's is: a connection closed
under a statement is replaced, a cancelled one is given back through asyncpg's release, the pool
closes only after its statements end, and a connection idle past
`max_inactive_connection_lifetime` is closed while one in use never is (docs/decisions.md
"Speed, round three")."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from coherence_sql.db import PoolSettings, create_pool

pytestmark = pytest.mark.asyncio


async def test_each_statement_method_runs_on_the_idle_connection_without_a_proxy(
    clean_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[object] = []
    real_proxy = asyncpg.pool.PoolConnectionProxy

    def counting_proxy(*args: Any) -> Any:
        made.append(args)
        return real_proxy(*args)

    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    try:
        monkeypatch.setattr(asyncpg.pool, "PoolConnectionProxy", counting_proxy)
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        row = await pool.fetchrow("SELECT pg_backend_pid() AS pid")
        assert row is not None
        assert row["pid"] == pid
        assert [r["pid"] for r in await pool.fetch("SELECT pg_backend_pid() AS pid")] == [pid]
        assert await pool.execute("SELECT 1") == "SELECT 1"
        assert await pool.fetchval("SELECT $1::int, $2::text", 7, "x", column=1) == "x"
        assert made == []
        assert pool.get_idle_size() == 1
        holder = pool._holders[0]  # type: ignore[attr-defined]
        assert holder._in_use is None
        assert holder._proxy is None
    finally:
        await pool.close()


async def test_a_statement_error_gives_the_connection_back_usable(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await pool.fetchval("SELECT 1 / 0")
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await pool.execute("SELEC 1")
        assert await pool.fetchval("SELECT pg_backend_pid()") == pid
        assert pool.get_idle_size() == 1
    finally:
        await pool.close()


async def test_a_connection_terminated_under_a_statement_is_replaced(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    killer = await asyncpg.connect(clean_dsn)
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        sleeper = asyncio.ensure_future(pool.fetchval("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.3)
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid) is True
        with pytest.raises((asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError)):
            await asyncio.wait_for(sleeper, 10)
        new_pid = await asyncio.wait_for(pool.fetchval("SELECT pg_backend_pid()"), 10)
        assert new_pid != pid
        assert pool.get_idle_size() == 1
    finally:
        await killer.close()
        await pool.close()


async def test_a_cancelled_statement_goes_back_through_asyncpg_s_release(clean_dsn: str) -> None:
    """The server is told to cancel, the connection is returned once the cancellation is through,
    and the next caller on the one connection gets it clean (not mid-cancellation)."""
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.fetchval("SELECT pg_sleep(30)"), 0.2)
            assert await asyncio.wait_for(pool.fetchval("SELECT pg_backend_pid()"), 10) == pid
        assert pool.get_idle_size() == 1
    finally:
        await pool.close()


async def test_closing_the_pool_waits_for_a_statement_in_flight(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    statement = asyncio.ensure_future(pool.fetchval("SELECT pg_sleep(0.5)::text || 'done'"))
    await asyncio.sleep(0.1)
    await asyncio.wait_for(pool.close(), 10)
    assert statement.done()
    assert statement.result() == "done"


async def test_an_idle_connection_is_closed_after_its_lifetime_and_a_busy_one_never(clean_dsn: str) -> None:
    """max_inactive_connection_lifetime, as asyncpg applies it, with the lean path's one timer."""
    lifetime = 0.4
    # min_size 0: asyncpg would otherwise open a new connection at once in place of the closed one.
    pool = await create_pool(clean_dsn, PoolSettings(min_size=0, max_size=1, max_inactive_connection_lifetime=lifetime))
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        # Used every 0.1 s for 3 lifetimes: never idle for a whole lifetime, never closed.
        loop = asyncio.get_running_loop()
        until = loop.time() + 3 * lifetime
        while loop.time() < until:
            assert await pool.fetchval("SELECT pg_backend_pid()") == pid
            await asyncio.sleep(0.1)
        # A statement longer than the lifetime: in use is not idle.
        assert await pool.fetchval("SELECT pg_backend_pid() FROM pg_sleep($1)", 2 * lifetime) == pid
        # Idle for more than a lifetime: closed, and the next statement opens a new connection.
        await asyncio.sleep(3 * lifetime)
        holder = pool._holders[0]  # type: ignore[attr-defined]
        assert holder._con is None
        assert await pool.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await pool.close()


async def test_no_idle_timer_when_the_lifetime_is_off(clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1, max_inactive_connection_lifetime=0))
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        holder = pool._holders[0]  # type: ignore[attr-defined]
        assert holder._inactive_callback is None
        assert await pool.fetchval("SELECT pg_backend_pid()") == pid
    finally:
        await pool.close()


async def test_the_lean_and_asyncpg_s_paths_share_one_idle_timer(clean_dsn: str) -> None:
    """A connection given back by asyncpg's release (a transaction left open) after the lean path
    armed our timer: asyncpg refuses to arm a second one, so ours must be gone first."""
    pool = await create_pool(clean_dsn, PoolSettings(min_size=1, max_size=1))
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")  # lean: our timer armed
        async with pool.acquire() as conn:  # the acquire fast path keeps our timer armed
            await conn.execute("BEGIN")  # left open: asyncpg's release rolls it back
        assert await pool.fetchval("SELECT pg_backend_pid()") == pid
        holder = pool._holders[0]  # type: ignore[attr-defined]
        assert holder._inactive_callback is not None
        assert not holder._inactive_callback.cancelled()
    finally:
        await pool.close()
