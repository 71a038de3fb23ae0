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
from contextlib import asynccontextmanager


class WriteOrder:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._gate = asyncio.Lock()  # held by an exclusive writer; shared writers pass through it
        self._exclusive_wanted = 0  # exclusive writers holding or waiting for the gate
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _lock(self, key: str) -> asyncio.Lock:
        """The key's lock, counted as wanted by one more writer."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        return lock

    def _unwant(self, key: str) -> None:
        self._users[key] -= 1
        if self._users[key] == 0:  # nobody waits on it: forget it, so the table stays small
            del self._users[key]
            del self._locks[key]

    @asynccontextmanager
    async def _key(self, key: str) -> AsyncIterator[None]:
        lock = self._lock(key)
        try:
            async with lock:
                yield
        finally:
            self._unwant(key)

    def hold(self, keys: Iterable[str]) -> _Hold:
        """Hold every key (sorted, so two writers can never wait on each other in a cycle)."""
        return _Hold(self, sorted(set(keys)))

    async def _enter_shared(self) -> None:
        if self._exclusive_wanted:
            async with self._gate:  # wait for the exclusive writers before this one
                self._enter_now()
        else:
            # Nobody holds or wants the gate: passing through it would not wait, so count this
            # writer without the lock's three coroutines (on every write's path).
            self._enter_now()

    def _enter_now(self) -> None:
        self._active += 1
        self._idle.clear()

    def _leave_shared(self) -> None:
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
        self._exclusive_wanted += 1
        try:
            async with self._gate:
                await self._idle.wait()
                yield
        finally:
            self._exclusive_wanted -= 1

    @property
    def keys_held(self) -> int:
        return len(self._locks)


class _Hold:
    """`WriteOrder.hold(keys)`: on every write's path, so a plain class rather than generator-based
    context managers (a third of the cost); the same steps, in the same order, as `_key` for each."""

    __slots__ = ("_held", "_keys", "_order")

    def __init__(self, order: WriteOrder, keys: list[str]) -> None:
        self._order = order
        self._keys = keys
        self._held: list[tuple[str, asyncio.Lock]] = []

    async def __aenter__(self) -> None:
        order = self._order
        if order._exclusive_wanted:
            await order._enter_shared()
        else:
            order._enter_now()  # what `_enter_shared` does then, without a coroutine
        try:
            for key in self._keys:
                lock = order._lock(key)
                try:
                    await lock.acquire()
                except BaseException:
                    order._unwant(key)
                    raise
                self._held.append((key, lock))
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        order = self._order
        while self._held:
            key, lock = self._held.pop()
            lock.release()
            order._unwant(key)
        order._leave_shared()
