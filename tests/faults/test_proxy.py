"""The fault proxy itself, against a loopback echo server: each fault does what it says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.faults.proxy import FaultProxy, Refusal

QUIET_S = 0.3  # how long "nothing arrives" is watched


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo_proxy() -> AsyncIterator[FaultProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = await FaultProxy(upstream_tcp=("127.0.0.1", server.sockets[0].getsockname()[1])).start()
    try:
        yield proxy
    finally:
        await proxy.close()
        server.close()
        await server.wait_closed()


async def _round_trip(proxy: FaultProxy, payload: bytes = b"ping") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    return reader, writer


async def test_passes_through_and_closes_everything_it_opened(echo_proxy: FaultProxy) -> None:
    _, writer = await _round_trip(echo_proxy)
    assert echo_proxy.connections == 1
    await echo_proxy.close()
    assert echo_proxy.connections == 0
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", echo_proxy.port)
    writer.close()


async def test_refusing_at_accept_resets_new_connections_and_keeps_current_ones(echo_proxy: FaultProxy) -> None:
    reader, writer = await _round_trip(echo_proxy)
    await echo_proxy.refuse(Refusal.CLOSE_AT_ACCEPT)
    new_reader, _ = await asyncio.open_connection("127.0.0.1", echo_proxy.port)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(new_reader.readexactly(1), 5)
    assert echo_proxy.refused == 1
    writer.write(b"still")
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"still"
    await echo_proxy.pass_through()
    await _round_trip(echo_proxy)


async def test_not_listening_refuses_connect_and_listens_again_on_the_same_port(echo_proxy: FaultProxy) -> None:
    port = echo_proxy.port
    await echo_proxy.refuse(Refusal.NOT_LISTENING)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await echo_proxy.pass_through()
    assert echo_proxy.port == port
    await _round_trip(echo_proxy)


async def test_reset_sends_an_rst_to_every_current_connection(echo_proxy: FaultProxy) -> None:
    opened = [await _round_trip(echo_proxy) for _ in range(3)]  # kept: a collected writer closes
    assert echo_proxy.reset_all() == 3
    for reader, _ in opened:
        with pytest.raises(ConnectionResetError):  # an RST, not an orderly FIN (which reads as EOF)
            await asyncio.wait_for(reader.readexactly(1), 5)
    await _round_trip(echo_proxy)


async def test_a_stall_forwards_nothing_until_it_is_lifted(echo_proxy: FaultProxy) -> None:
    reader, writer = await _round_trip(echo_proxy)
    echo_proxy.stall()
    writer.write(b"held")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), QUIET_S)
    connecting = asyncio.ensure_future(_round_trip(echo_proxy, b"new"))  # new connections stall too
    await asyncio.sleep(QUIET_S)
    assert not connecting.done()
    echo_proxy.unstall()
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"held"
    await asyncio.wait_for(connecting, 5)


async def test_slow_adds_its_latency_to_every_chunk(echo_proxy: FaultProxy) -> None:
    reader, writer = await _round_trip(echo_proxy)
    echo_proxy.slow(0.2)
    started = time.perf_counter()
    writer.write(b"slow")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"slow"
    assert time.perf_counter() - started >= 0.4  # one chunk each way
    echo_proxy.slow(0)
    started = time.perf_counter()
    writer.write(b"fast")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"fast"
    assert time.perf_counter() - started < 0.2
