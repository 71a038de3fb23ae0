"""Network faults between the cut-over stores and PostgreSQL, under concurrent dual-write traffic.

Through the loopback proxy: new connections refused (at accept, or nothing listening), every
connection reset again and again, everything stalled, everything slowed past the budget. For each:
no caller fails, no call waits past the budget (plus a margin), and after the fault is lifted and
the journal replayed, memory and PostgreSQL are identical and verify is clean at threshold zero.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from coherence_sql.cutover.service import open_cutover_stores
from tests.faults.checks import broken_promises
from tests.faults.proxy import FaultProxy, Refusal
from tests.faults.server import PrivateServer
from tests.faults.traffic import dual_write_settings, run_through_fault

SLOW_CHUNK_S = 0.4  # a round trip is two chunks at least: 0.8 s, past the 0.5 s budget
RESET_EVERY_S = 0.1  # a flapping network: every connection is cut again and again


def faults(proxy: FaultProxy) -> dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]]:
    flapping: list[asyncio.Task[None]] = []

    async def refuse_at_accept() -> None:
        await proxy.refuse(Refusal.CLOSE_AT_ACCEPT)
        proxy.reset_all()  # and the pool's current connections die: the server is unreachable

    async def refuse_not_listening() -> None:
        await proxy.refuse(Refusal.NOT_LISTENING)
        proxy.reset_all()

    async def keep_resetting() -> None:
        while True:
            proxy.reset_all()
            await asyncio.sleep(RESET_EVERY_S)

    async def start_resetting() -> None:
        flapping.append(asyncio.ensure_future(keep_resetting()))

    async def stop_resetting() -> None:
        for task in flapping:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stall() -> None:
        proxy.stall()

    async def slow() -> None:
        proxy.slow(SLOW_CHUNK_S)

    return {
        "refuse-at-accept": (refuse_at_accept, proxy.pass_through),
        "refuse-not-listening": (refuse_not_listening, proxy.pass_through),
        "reset": (start_resetting, stop_resetting),
        "stall": (stall, proxy.pass_through),
        "slow": (slow, proxy.pass_through),
    }


@pytest.mark.parametrize("fault", ["refuse-at-accept", "refuse-not-listening", "reset", "stall", "slow"])
async def test_a_network_fault_mid_dual_write_fails_no_caller_and_loses_nothing(
    fault: str, server: PrivateServer, database: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    inject, lift = faults(proxy)[fault]
    settings = dual_write_settings(proxy.dsn(database), tmp_path / "journal.jsonl")
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        try:
            traffic = await run_through_fault(stores, inject, lift, seed=len(fault))
        finally:
            await lift()  # idempotent; a failed run must not leave the proxy broken for the exit
            await proxy.pass_through()
        assert traffic.writes_before >= 40
        assert traffic.writes_after >= 40
        assert await broken_promises(stores, traffic, server.admin_dsn(database)) == []
