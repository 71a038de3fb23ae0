"""Server faults under concurrent dual-write traffic, the stores connected as the application's
own password-checked role: stopped, killed -9 (crash recovery), frozen (SIGSTOP of every process),
restarted, made read-only (a failover), closed to connections, password rotated, and two the issue
names beyond those: the role's grants revoked, the database renamed away.

For each: no caller fails, no call waits past the budget (plus a margin), and once the fault is
lifted and the journal replayed, memory and PostgreSQL are identical and verify is clean at zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from coherence_sql.cutover.service import open_cutover_stores
from tests.faults.checks import broken_promises
from tests.faults.server import PrivateServer
from tests.faults.traffic import FAULT_HOLD_S, dual_write_settings, run_through_fault

Step = Callable[[], Awaitable[None]]


def faults(server: PrivateServer, database: str) -> dict[str, tuple[Step, Step]]:
    restarting: list[asyncio.Future[None]] = []

    async def stop() -> None:
        await asyncio.to_thread(server.stop)

    async def start() -> None:
        await asyncio.to_thread(server.start)

    async def kill9() -> None:
        await asyncio.to_thread(server.kill9)

    async def freeze() -> None:
        server.freeze()

    async def thaw() -> None:
        server.thaw()

    async def restart() -> None:
        # The restart runs while traffic goes on; lifting the fault is waiting for it to finish.
        restarting.append(asyncio.ensure_future(asyncio.to_thread(server.restart)))

    async def restarted() -> None:
        for task in restarting:
            await task

    async def read_only() -> None:
        await server.set_read_only(True)

    async def writable() -> None:
        await server.set_read_only(False)

    async def close() -> None:
        await server.set_allow_connections(database, False)

    async def open_() -> None:
        await server.set_allow_connections(database, True)

    async def revoke() -> None:
        await server.revoke_grants(database)

    async def grant() -> None:
        await server.restore_grants(database)

    async def rename() -> None:
        await server.rename_database(database)

    async def rename_back() -> None:
        await server.restore_database_name(database)

    return {
        "stop": (stop, start),
        "kill-9": (kill9, start),
        "sigstop": (freeze, thaw),
        "restart": (restart, restarted),
        "read-only": (read_only, writable),
        "closed-to-connections": (close, open_),
        "password-rotated": (server.rotate_password, server.restore_password),
        "grants-revoked": (revoke, grant),
        "database-renamed": (rename, rename_back),
    }


HOLD_S = {"restart": 0.0}  # a restart ends by itself; the others are held 1.5 s
# Faults of the server's answers, not of its process: injected between calls, so that the stores
# meet the fault's own error first (see run_through_fault), as the reproductions did.
BETWEEN_CALLS = {"read-only", "closed-to-connections", "password-rotated", "grants-revoked", "database-renamed"}


@pytest.mark.parametrize(
    "fault",
    [
        "stop",
        "kill-9",
        "sigstop",
        "restart",
        "read-only",
        "closed-to-connections",
        "password-rotated",
        "grants-revoked",
        "database-renamed",
    ],
)
async def test_a_server_fault_mid_dual_write_fails_no_caller_and_loses_nothing(
    fault: str, server: PrivateServer, database: str, tmp_path: Path
) -> None:
    inject, lift = faults(server, database)[fault]
    settings = dual_write_settings(server.app_dsn(database), tmp_path / "journal.jsonl")
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        try:
            traffic = await run_through_fault(
                stores,
                inject,
                lift,
                seed=len(fault),
                hold_s=HOLD_S.get(fault, FAULT_HOLD_S),
                between_calls=fault in BETWEEN_CALLS,
            )
        finally:
            await server.heal()  # a failed run must not leave the server broken for the exit
        assert traffic.writes_before >= 40
        assert traffic.writes_after >= 40
        assert await broken_promises(stores, traffic, server.admin_dsn(database)) == []
