"""A loopback TCP proxy that injects network faults between the stores and PostgreSQL.

It listens on 127.0.0.1 (an ephemeral port) and forwards every connection to one upstream (a
host and port, or a PostgreSQL unix socket). On command, mid-traffic, it passes through, refuses
new connections, resets every current connection (RST), stalls (sockets stay open, nothing is
forwarded) or slows every chunk down. `close()` ends everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

CHUNK = 65536


class Refusal(str, Enum):
    CLOSE_AT_ACCEPT = "close-at-accept"  # the port still listens; each new connection is reset at once
    NOT_LISTENING = "not-listening"  # the port is closed: connect() itself is refused


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN: SO_LINGER on, timeout 0, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)
        for pump in self.pumps:
            pump.cancel()


class FaultProxy:
    """Forwards 127.0.0.1:`port` to the upstream; see the module docstring for the faults."""

    def __init__(self, *, upstream_unix: Path | None = None, upstream_tcp: tuple[str, int] | None = None) -> None:
        if (upstream_unix is None) == (upstream_tcp is None):
            raise ValueError("give exactly one upstream: a unix socket path or a (host, port)")
        self._upstream_unix = upstream_unix
        self._upstream_tcp = upstream_tcp
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()  # cleared while stalled
        self._flowing.set()
        self._refusal: Refusal | None = None
        self.latency_s = 0.0
        self.port = 0
        self.accepted = 0  # connections the proxy took (refused ones included)
        self.refused = 0

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> FaultProxy:
        await self._listen()
        return self

    async def _listen(self) -> None:
        # The port is kept across refuse/accept so DSNs stay valid; SO_REUSEADDR lets it rebind.
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True, limit=CHUNK)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def close(self) -> None:
        """Stop listening, reset every connection and end every task the proxy started."""
        await self._unlisten()
        self._flowing.set()
        self.reset_all()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    def dsn(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    # -- faults ----------------------------------------------------------------------------------
    async def pass_through(self) -> None:
        """Undo every fault: listen, accept, forward at full speed."""
        self._refusal = None
        self.latency_s = 0.0
        self._flowing.set()
        if self._server is None:
            await self._listen()

    async def refuse(self, how: Refusal = Refusal.CLOSE_AT_ACCEPT) -> None:
        """New connections fail; current ones keep working."""
        self._refusal = how
        if how is Refusal.NOT_LISTENING:
            await self._unlisten()

    def reset_all(self) -> int:
        """RST every current connection (both sides); returns how many there were."""
        links = list(self._links)
        for link in links:
            link.reset()
        self._links.clear()
        return len(links)

    def stall(self) -> None:
        """Keep every socket open and forward nothing, in either direction, new connections too."""
        self._flowing.clear()

    def unstall(self) -> None:
        self._flowing.set()

    def slow(self, latency_s: float) -> None:
        """Hold every chunk `latency_s` before forwarding it (0 for full speed)."""
        self.latency_s = latency_s

    @property
    def connections(self) -> int:
        return len(self._links)

    # -- forwarding ------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        link = _Link(client=writer)
        try:
            if self._refusal is not None:
                self.refused += 1
                _reset(writer)
                return
            self._links.add(link)
            await self._flowing.wait()  # a stalled proxy does not even reach the server
            if self._upstream_unix is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(str(self._upstream_unix), limit=CHUNK)
            else:
                assert self._upstream_tcp is not None
                host, port = self._upstream_tcp
                up_reader, up_writer = await asyncio.open_connection(host, port, limit=CHUNK)
            link.upstream = up_writer
            if link not in self._links:  # reset while connecting
                _reset(up_writer)
                return
            link.pumps = [
                asyncio.ensure_future(self._pump(reader, up_writer)),
                asyncio.ensure_future(self._pump(up_reader, writer)),
            ]
            # Either direction ending (EOF, error, reset) ends the link.
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the upstream is down: the client sees its connection close
        except asyncio.CancelledError:
            # close() ends it; asyncio's stream callback (3.11) would log a cancelled handler task.
            pass
        finally:
            self._links.discard(link)
            for pump in link.pumps:
                pump.cancel()
            await asyncio.gather(*link.pumps, return_exceptions=True)
            writer.transport.abort()
            if link.upstream is not None:
                link.upstream.transport.abort()
            self._handlers.discard(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                chunk = await source.read(CHUNK)
                if not chunk:
                    return
                await self._flowing.wait()
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                    await self._flowing.wait()  # a stall may have begun meanwhile
                sink.write(chunk)
                await sink.drain()
