"""`WriteOrder.exclusive()` (clear) against shared writers, now that a shared writer passes the gate
without its lock when no exclusive writer holds or wants it."""

from __future__ import annotations

import asyncio

from coherence_sql.cutover.ordering import WriteOrder


async def test_an_exclusive_writer_waits_for_writers_in_flight_and_holds_back_new_ones() -> None:
    order = WriteOrder()
    events: list[str] = []
    first_in, let_first_out, exclusive_waiting = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def shared(name: str, key: str) -> None:
        async with order.hold([key]):
            events.append(f"{name} in")
            if name == "first":
                first_in.set()
                await let_first_out.wait()
            events.append(f"{name} out")

    async def exclusive() -> None:
        await first_in.wait()
        exclusive_waiting.set()
        async with order.exclusive():
            events.append("exclusive in")
            await asyncio.sleep(0.01)
            events.append("exclusive out")

    async def late() -> None:
        await exclusive_waiting.wait()
        await asyncio.sleep(0)  # the exclusive writer now waits for the first one
        await shared("late", "task:other")  # another key: only the gate holds it back

    async def release_first() -> None:
        await exclusive_waiting.wait()
        for _ in range(5):
            await asyncio.sleep(0)
        let_first_out.set()

    await asyncio.gather(shared("first", "task:a"), exclusive(), late(), release_first())
    assert events == ["first in", "first out", "exclusive in", "exclusive out", "late in", "late out"]
    assert order.keys_held == 0


async def test_shared_writers_pass_when_no_exclusive_writer_is_about() -> None:
    order = WriteOrder()
    async with order.hold(["task:a"]), order.hold(["task:b"]):
        assert order.keys_held == 2
    async with order.exclusive():
        pass
    async with order.hold(["task:a"]):  # the gate's bookkeeping is back to none wanted
        assert order._exclusive_wanted == 0
