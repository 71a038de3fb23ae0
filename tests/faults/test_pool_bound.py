"""Waiting for a pooled connection is bounded: 8 callers on a pool of 2 against a stalled server
each get a typed error within the configured acquire bound (not after 5, 10, 15 and 20 s).

The PostgreSQL stores are used directly (no cut-over stores, no budget). The proxy resets the
pool's two connections and then stalls, so every caller is waiting to acquire: two of them for a
reconnect that never completes, six for those two.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from coherence_sql.db import PoolSettings
from coherence_sql.errors import CoherenceSQLError
from coherence_sql.models import Project
from coherence_sql.stores.postgres import connect
from tests.faults.proxy import FaultProxy
from tests.faults.server import APP_PASSWORD, APP_ROLE, PrivateServer

CALLERS = 8
POOL_SIZE = 2
ACQUIRE_BOUND_S = 1.0
MARGIN_S = 1.0  # event-loop lag on 2 shared cores and the pool's own bookkeeping; far below 5 s
GIVE_UP_S = 25.0  # past the old behaviour's 20 s: a caller still waiting then is reported, not hung on


def pool_settings(how: str, monkeypatch: pytest.MonkeyPatch) -> PoolSettings | None:
    if how == "env":
        monkeypatch.setenv("POSTGRES_POOL_SIZE", str(POOL_SIZE))
        monkeypatch.setenv("POSTGRES_MAX_OVERFLOW", "0")
        monkeypatch.setenv("POSTGRES_POOL_TIMEOUT", str(int(ACQUIRE_BOUND_S)))
        return None  # connect() reads them through PoolSettings.from_env()
    return PoolSettings(min_size=POOL_SIZE, max_size=POOL_SIZE, acquire_timeout_s=ACQUIRE_BOUND_S)


@pytest.mark.parametrize("how", ["env", "settings"])
async def test_callers_beyond_the_pool_get_a_typed_error_within_the_acquire_bound(
    how: str, server: PrivateServer, database: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pool_settings(how, monkeypatch)
    # As the application's password-checked role: no error message may carry its password.
    dsn = proxy.dsn(database, user=APP_ROLE, password=APP_PASSWORD)
    async with connect(dsn, settings=settings) as stores:
        assert stores.pool.get_max_size() == POOL_SIZE
        assert await stores.graph.count_projects() == 0  # healthy first
        proxy.reset_all()
        proxy.stall()
        await asyncio.sleep(0.2)  # the pool sees its two connections die (else a caller's query would)
        outcomes: list[tuple[float, BaseException | None]] = []

        async def caller(n: int) -> None:
            started = time.perf_counter()
            try:
                if n % 2:
                    await stores.graph.upsert_project(
                        Project(ecosystem="npm", name=f"p{n}", version="1", description="d")
                    )
                else:
                    await stores.graph.count_projects()
                outcomes.append((time.perf_counter() - started, None))
            except Exception as exc:
                outcomes.append((time.perf_counter() - started, exc))

        callers = [asyncio.ensure_future(caller(n)) for n in range(CALLERS)]
        try:
            _, waiting = await asyncio.wait(callers, timeout=GIVE_UP_S)
        finally:
            for task in callers:
                task.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            proxy.unstall()
        assert not waiting, f"{len(waiting)} of {CALLERS} callers still waiting after {GIVE_UP_S} s: {outcomes}"
        assert len(outcomes) == CALLERS
        untyped = [repr(exc) for _, exc in outcomes if not isinstance(exc, CoherenceSQLError)]
        assert untyped == [], f"callers got no error or an untyped one: {untyped}"
        kinds = sorted(type(exc).__name__ for _, exc in outcomes)
        assert kinds == ["PoolTimeoutError"] * CALLERS, [repr(exc) for _, exc in outcomes]
        durations = sorted(d for d, _ in outcomes)
        assert durations[-1] < ACQUIRE_BOUND_S + MARGIN_S, durations
        assert durations[0] >= ACQUIRE_BOUND_S * 0.9, durations  # the bound, not an instant refusal
        messages = [str(exc) for _, exc in outcomes]
        assert not [m for m in messages if APP_PASSWORD in m], "an error message carries the password"
