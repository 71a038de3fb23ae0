"""Concurrent writers (issue 4 §7): no lost money, no lost task update, no task claimed twice.

Written for PostgreSQL, where these are real races between pooled connections; the same tests run
on the other store kinds too (memory trivially, the sync facade from many threads).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

from coherence_sql.models import TaskStatus
from tests.stores.conftest import Stores
from tests.stores.records import T0, T0_AWARE, asset, contributor, task


async def test_fifty_concurrent_contributions_to_one_asset_keep_total_cost_exact(store: Stores) -> None:
    owners = [(await store.graph.create_contributor(contributor(n))).id for n in range(5)]
    code = (await store.graph.create_asset(asset(1))).id
    costs = [Decimal(f"{n}.{n % 100:02d}") for n in range(1, 51)]

    async def contribute(n: int) -> None:
        await store.graph.create_contribution(
            owners[n % 5], code, costs[n], 0.5, {"n": n}, id=uuid4(), timestamp=T0 + timedelta(seconds=n)
        )

    await asyncio.gather(*(contribute(n) for n in range(50)))
    assert (await store.graph.get_asset(code)).total_cost == sum(costs, Decimal("0.00"))
    assert len(await store.graph.get_asset_contributions(code)) == 50


async def test_twenty_concurrent_updates_of_one_task_lose_none(store: Stores) -> None:
    await store.tasks.create_task(task(1))
    task_id = task(1).id
    fields = ["output", "current_step", "decision_prompt", "decision", "progress_pct"]
    written: dict[str, set[Any]] = {name: set() for name in fields}

    def update_args(n: int) -> dict[str, Any]:
        name = fields[n % len(fields)]  # each call sets one field; four calls per field
        value: Any = n if name == "progress_pct" else f"{name}-{n}"
        written[name].add(value)
        return {name: value}

    calls = [update_args(n) for n in range(20)]
    results = await asyncio.gather(
        *(store.tasks.update_task(task_id, now=T0_AWARE + timedelta(seconds=n), **kw) for n, kw in enumerate(calls))
    )
    for kw, result in zip(calls, results, strict=True):
        ((name, value),) = kw.items()
        # a caller sees its own write (the first decision wins, so a later one may see another)
        assert getattr(result, name) == value or name == "decision"
    final = await store.tasks.get_task(task_id)
    for name in fields:
        assert getattr(final, name) in written[name], f"{name} lost: {getattr(final, name)!r}"
    assert final.status == TaskStatus.PENDING
    assert final.updated_at is not None


async def test_ten_workers_claim_five_hundred_tasks_each_exactly_once(store: Stores) -> None:
    for n in range(500):
        await store.tasks.create_task(task(n, created_at=T0_AWARE + timedelta(milliseconds=n)))

    async def worker(name: str) -> list[str]:
        mine: list[str] = []
        while (claimed := await store.tasks.claim_next_task(name, now=T0_AWARE + timedelta(hours=1))) is not None:
            assert (claimed.claimed_by, claimed.status) == (name, TaskStatus.RUNNING)
            mine.append(claimed.id)
        return mine

    claims = await asyncio.gather(*(worker(f"worker-{w}") for w in range(10)))
    every = Counter(task_id for mine in claims for task_id in mine)
    assert sorted(every) == sorted(task(n).id for n in range(500))
    assert set(every.values()) == {1}
    owners = {task_id: f"worker-{w}" for w, mine in enumerate(claims) for task_id in mine}
    items, total = await store.tasks.list_tasks(status=TaskStatus.RUNNING, limit=100, offset=0)
    assert total == 500
    assert all(t.claimed_by == owners[t.id] for t in items)
    for mine in claims:  # each worker took the oldest pending task at its turn
        created = [int(i.removeprefix("task_"), 16) for i in mine]
        assert created == sorted(created)
