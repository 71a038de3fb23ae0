"""Write ordering for dual-writes: PostgreSQL applies conflicting writes in memory's order.

Each write names the entity keys it touches (its own id, the parents it refers to, its unique
values). It holds a lock on each, taken in sorted order, from before the memory write until its
PostgreSQL write (or journal entry) is done. Writes that share a key therefore reach PostgreSQL in
the order they reached memory; writes that share none commute. `exclusive()` waits for every
write under way and holds new ones back (for `clear`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager


class WriteOrder:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._gate = asyncio.Lock()  # held by an exclusive writer; shared writers pass through it
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def _key(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # nobody waits on it: forget it, so the table stays small
                del self._users[key]
                del self._locks[key]

    @asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold every key (sorted, so two writers can never wait on each other in a cycle)."""
        async with self._gate:
            self._active += 1
            self._idle.clear()
        try:
            async with AsyncExitStack() as stack:
                for key in sorted(set(keys)):
                    await stack.enter_async_context(self._key(key))
                yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    @asynccontextmanager
    async def also(self, key: str) -> AsyncIterator[None]:
        """One more key for a writer that learns it late (a claim learns its task from memory);
        callers take it after every key that sorts before it, as `hold` would."""
        async with self._key(key):
            yield

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._gate:
            await self._idle.wait()
            yield

    @property
    def keys_held(self) -> int:
        return len(self._locks)
