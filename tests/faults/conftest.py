"""Fixtures of the fault-injection suite: one private server for the package, healed before and
after every test; a fresh migrated database per test; a TCP proxy in front of the server.

Every fault is reversible, so the server is shared; the `server` fixture undoes whatever a test left
(thaw, start, writable, open, password back) even when the test failed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from coherence_sql.embedded import scratch_parent
from tests.faults.proxy import FaultProxy
from tests.faults.server import PrivateServer


@pytest.fixture(scope="package")
def _private_server() -> Iterator[PrivateServer]:
    parent = Path(tempfile.mkdtemp(prefix="coherence-sql-faults-", dir=scratch_parent()))
    server = PrivateServer(parent / "pg")
    try:
        yield server
    finally:
        server.destroy()  # thaws first: a frozen server would never stop
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="package")
async def _prepared_server(_private_server: PrivateServer) -> PrivateServer:
    await _private_server.prepare()
    return _private_server


@pytest.fixture
async def server(_prepared_server: PrivateServer) -> AsyncIterator[PrivateServer]:
    """The private server, healthy at the start and healed at the end of the test."""
    await _prepared_server.heal()
    try:
        yield _prepared_server
    finally:
        await _prepared_server.heal()


@pytest.fixture
async def database(server: PrivateServer) -> str:
    """The name of a fresh migrated database on the private server."""
    return await server.new_database()


@pytest.fixture
async def proxy(server: PrivateServer) -> AsyncIterator[FaultProxy]:
    """A loopback proxy to the private server's socket; closed (every connection reset) at teardown."""
    started = await FaultProxy(upstream_unix=server.socket_path).start()
    try:
        yield started
    finally:
        await started.close()
