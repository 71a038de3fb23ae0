"""The router's health loop: the primary's WAL position and each replica's replayed position,
sampled every interval, one cheap query each; a replica further behind than the limit, unreachable,
or no longer in recovery leaves the rotation, and comes back when a check finds it well.

Each server has a loop of its own, so a slow or frozen replica delays nobody's samples.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Final

from coherence_sql.db import PoolSettings, create_pool
from coherence_sql.errors import PoolTimeoutError
from coherence_sql.replicas.positions import PrimarySample
from coherence_sql.replicas.router import ReadRouter, Replica
from coherence_sql.sql import replicas as replicas_sql

__all__ = ["check_replica", "open_replica_pool", "sample_primary", "stop", "watch"]

log = logging.getLogger(__name__)

_REOPEN_EVERY_S: Final = 1.0  # a replica whose pool could not be opened is tried again this often


def check_timeout(router: ReadRouter) -> float:
    """The longest one check may take before the server counts as unreachable."""
    return max(1.0, 5 * router.settings.check_interval_s)


async def sample_primary(router: ReadRouter) -> None:
    """One sample of the primary's WAL insert position (skipped when the primary does not answer:
    callers with unresolved writes then keep reading from the primary, which is right)."""
    started = monotonic()
    try:
        async with asyncio.timeout(check_timeout(router)):  # not wait_for: on 3.11 it can swallow a cancel
            position = await replicas_sql.primary_wal_position(router.primary)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("primary WAL position not sampled: %s", type(exc).__name__)
        return
    if position is not None:
        router.clock.record(PrimarySample(started, position))


async def check_replica(router: ReadRouter, replica: Replica) -> None:
    """Ask one replica how far it has replayed; put it in or out of the rotation."""
    if replica.pool is None:
        return
    try:
        async with asyncio.timeout(check_timeout(router)):
            row = await replicas_sql.replica_replay_position(replica.pool)
    except asyncio.CancelledError:
        raise
    except PoolTimeoutError as exc:
        _saturated(router, replica, exc)
        return
    except Exception as exc:
        _take_out(replica, f"unreachable: {type(exc).__name__}: {exc}")
        return
    replica.busy_since = None
    if row is None or not row.in_recovery or row.replayed is None:
        _take_out(replica, "not in recovery (a primary, or a promoted replica): it may hold writes the primary lacks")
        return
    replica.replayed = row.replayed
    replica.delay_s = router.clock.delay(row.replayed, monotonic())
    if replica.delay_s > router.settings.max_lag_s:
        _take_out(replica, f"{replica.delay_s:.1f}s behind the primary (limit {router.settings.max_lag_s:g}s)")
        replica.replayed = row.replayed  # still true, and harmless: it is out of rotation
        return
    if not replica.in_rotation:
        log.info("replica %s back in rotation", replica.name)
    replica.in_rotation = True
    replica.problem = None


def _saturated(router: ReadRouter, replica: Replica, exc: PoolTimeoutError) -> None:
    """Every connection of the replica's pool is busy: a saturated replica, not a down one (its
    callers wait their bound as on the primary). Only a pool that stays full longer than the lag
    limit leaves the rotation: then its connections may be stuck on a frozen server."""
    now = monotonic()
    if replica.busy_since is None:
        replica.busy_since = now
    busy_s = now - replica.busy_since
    if busy_s > router.settings.max_lag_s:
        _take_out(replica, f"no free connection for {busy_s:.1f}s (limit {router.settings.max_lag_s:g}s): {exc}")


def _take_out(replica: Replica, problem: str) -> None:
    if replica.in_rotation:
        log.warning("replica %s out of rotation: %s", replica.name, problem)
    replica.take_out(problem)


async def open_replica_pool(replica: Replica, settings: PoolSettings) -> None:
    """Open the replica's pool; on failure it stays out of rotation, saying why."""
    try:
        replica.pool = await create_pool(replica.url, settings, name=replica.name)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a typed DatabaseUnavailableError, already redacted
        _take_out(replica, f"cannot open its pool: {exc}")


async def _primary_loop(router: ReadRouter) -> None:
    while not router.closing:
        await sample_primary(router)
        await asyncio.sleep(router.settings.check_interval_s)


async def _replica_loop(router: ReadRouter, replica: Replica, pool_settings: PoolSettings) -> None:
    next_open = monotonic() + _REOPEN_EVERY_S
    while not router.closing:
        if replica.pool is None and monotonic() >= next_open:
            next_open = monotonic() + _REOPEN_EVERY_S
            await open_replica_pool(replica, pool_settings)
        await check_replica(router, replica)
        await asyncio.sleep(router.settings.check_interval_s)


def watch(router: ReadRouter, pool_settings: PoolSettings) -> list[asyncio.Task[None]]:
    """Start the loops (one for the primary, one per replica); `stop` ends them."""
    tasks = [asyncio.create_task(_primary_loop(router), name="coherence_sql primary WAL position")]
    for replica in router.replicas:
        tasks.append(
            asyncio.create_task(_replica_loop(router, replica, pool_settings), name=f"coherence_sql {replica.name}")
        )
    return tasks


async def stop(router: ReadRouter, tasks: list[asyncio.Task[None]]) -> None:
    """End the loops: each sees `closing` at its next turn, and is cancelled meanwhile (again, if a
    cancellation was lost in a race with a finishing query)."""
    router.closing = True
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
