"""The migrating stores against a real PostgreSQL: dual-write, read routing, shadow reads,
journaling when PostgreSQL refuses or is away, phase 3, and the store status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import asyncpg
import pytest

from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.cutover.ordering import WriteOrder
from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.errors import CutoverError, InvalidValueError, QueryCancelledError, UnknownReferenceError
from coherence_sql.models import (
    AgentTaskRecord,
    Asset,
    AssetType,
    Contributor,
    ContributorType,
    Project,
    TaskStatus,
    TaskType,
)
from coherence_sql.stores.memory import MemoryAgentTaskStore, MemoryGraphStore
from coherence_sql.stores.protocol import AgentTaskStore


def contributor(email: str = "ada@coherence.dev") -> Contributor:
    return Contributor(type=ContributorType.HUMAN, name="Ada", email=email)


def asset() -> Asset:
    return Asset(type=AssetType.CODE, description="coherence-network/api")


def task(task_id: str = "task_0000000000000001") -> AgentTaskRecord:
    return AgentTaskRecord(
        id=task_id, direction="write the spec", task_type=TaskType.SPEC, model="openrouter/free",
        command='aider "write the spec"', tier="openrouter",
    )  # fmt: skip


def dual_write(dsn: str, journal: Path, *, read: int = 0, shadow: int = 0) -> CutoverSettings:
    return CutoverSettings(
        dual_write=True,
        read_from_postgres_percent=read,
        shadow_compare_percent=shadow,
        journal_path=journal,
        database_url=dsn,
    )


@pytest.fixture
async def dual(clean_dsn: str, tmp_path: Path) -> AsyncIterator[CutoverStores]:
    async with open_cutover_stores(dual_write(clean_dsn, tmp_path / "journal.jsonl"), reconcile_interval_s=None) as s:
        yield s


async def test_a_dual_write_reaches_both_stores_with_the_same_ids_and_times(dual: CutoverStores) -> None:
    assert dual.postgres is not None
    ada = await dual.graph.create_contributor(contributor())
    code = await dual.graph.create_asset(asset())
    made = await dual.graph.create_contribution(ada.id, code.id, Decimal("100.10"), 0.9, {"has_tests": True})
    in_memory = await dual.graph.memory.get_contribution(made.id)
    in_postgres = await dual.postgres.graph.get_contribution(made.id)
    assert in_memory == in_postgres == made
    assert (await dual.postgres.graph.get_asset(code.id)).total_cost == Decimal("100.10")  # type: ignore[union-attr]
    assert dual.core.stats.postgres_ok == 3
    assert dual.core.stats.memory_ok == 3


async def test_task_updates_are_timed_once_for_both_stores(dual: CutoverStores) -> None:
    assert dual.postgres is not None
    await dual.tasks.create_task(task())
    await dual.tasks.update_task("task_0000000000000001", status=TaskStatus.RUNNING, progress_pct=10)
    memory = await dual.tasks.memory.get_task("task_0000000000000001")
    postgres = await dual.postgres.tasks.get_task("task_0000000000000001")
    assert memory is not None
    assert memory == postgres
    assert memory.started_at == memory.updated_at


async def test_a_claim_takes_the_same_task_on_both_sides(dual: CutoverStores) -> None:
    assert dual.postgres is not None
    for i in range(3):
        await dual.tasks.create_task(task(f"task_000000000000000{i}"))
    claimed = await dual.tasks.claim_next_task("runner-1")
    assert claimed is not None
    assert claimed.id == "task_0000000000000000"
    assert await dual.postgres.tasks.get_task(claimed.id) == claimed


async def test_bad_input_fails_the_caller_and_reaches_neither_store(dual: CutoverStores) -> None:
    assert dual.postgres is not None
    ada = await dual.graph.create_contributor(contributor())
    code = await dual.graph.create_asset(asset())
    with pytest.raises(InvalidValueError, match="cost_amount has more than two decimal places"):
        await dual.graph.create_contribution(ada.id, code.id, Decimal("1.001"), 0.5, {})
    assert await dual.graph.memory.list_contributions() == []
    assert await dual.postgres.graph.list_contributions() == []


async def test_an_unknown_reference_is_the_callers_error_not_a_rejection(dual: CutoverStores) -> None:
    with pytest.raises(UnknownReferenceError):
        await dual.graph.create_contribution(uuid4(), uuid4(), Decimal("1.00"), 0.5, {})
    assert dual.core.stats.dead_lettered == 0


async def test_a_write_whose_parent_postgres_lacks_waits_for_the_backfill(clean_dsn: str, tmp_path: Path) -> None:
    # A contributor created before dual-write began exists only in memory until the backfill.
    graph = MemoryGraphStore()
    ada = await graph.create_contributor(contributor())
    code = await graph.create_asset(asset())
    settings = dual_write(clean_dsn, tmp_path / "journal.jsonl")
    async with open_cutover_stores(settings, memory_graph=graph, reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        assert stores.core.journal is not None
        made = await stores.graph.create_contribution(ada.id, code.id, Decimal("5.00"), 0.5, {})
        assert await stores.graph.get_contribution(made.id) == made  # memory serves it
        assert stores.core.stats.journaled == 1
        assert stores.core.stats.dead_lettered == 0
        waiting = await stores.reconcile()
        assert not waiting.complete
        assert "graph.create_contribution: " in (waiting.error or "")
        # The backfill brings the parents (here, written straight to PostgreSQL); the replay lands.
        await stores.postgres.graph.create_contributor(ada)
        await stores.postgres.graph.create_asset(code)
        landed = await stores.reconcile()
        assert landed.complete
        assert landed.applied == 1
        assert await stores.postgres.graph.get_contribution(made.id) == made


async def test_keyed_reads_follow_the_percentage(clean_dsn: str, tmp_path: Path) -> None:
    graph = MemoryGraphStore()
    ada = await graph.create_contributor(contributor())  # in memory only: PostgreSQL answers None
    for percent, expected in ((0, ada), (100, None)):
        settings = dual_write(clean_dsn, tmp_path / "journal.jsonl", read=percent)
        async with open_cutover_stores(settings, memory_graph=graph, reconcile_interval_s=None) as stores:
            assert await stores.graph.get_contributor(ada.id) == expected
            assert (stores.core.stats.reads_postgres, stores.core.stats.reads_memory) == (
                (1, 0) if percent == 100 else (0, 1)
            )


async def test_a_shadow_read_records_a_mismatch_with_both_values(clean_dsn: str, tmp_path: Path) -> None:
    graph = MemoryGraphStore()
    await graph.upsert_project(Project(ecosystem="npm", name="React", version="19.0.0", description="UI"))
    settings = dual_write(clean_dsn, tmp_path / "journal.jsonl", shadow=100)
    async with open_cutover_stores(settings, memory_graph=graph, reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        served = await stores.graph.get_project("npm", "react")
        assert served is not None
        assert served.version == "19.0.0"  # the caller gets memory's answer
        await stores.graph.upsert_project(Project(ecosystem="npm", name="lodash", version="4", description="utils"))
        assert await stores.graph.get_project("npm", "lodash") is not None  # the same on both sides
        await stores.core.shadow.drain()
        stats = stores.core.shadow.stats
        assert (stats.compared, stats.matched, stats.mismatched) == (2, 1, 1)
        conn = await asyncpg.connect(clean_dsn)
        try:
            row = await conn.fetchrow(
                "SELECT operation, entity_key, control::text, candidate::text FROM shadow_mismatches"
            )
        finally:
            await conn.close()
        assert row is not None
        assert row["operation"] == "get_project"
        assert row["entity_key"] == "project:npm/react"
        assert '"version": "19.0.0"' in row["control"]
        assert row["candidate"] is None  # PostgreSQL has no such project yet


async def test_phase_three_writes_postgres_first_and_keeps_memory_for_rollback(clean_dsn: str, tmp_path: Path) -> None:
    settings = replace(dual_write(clean_dsn, tmp_path / "journal.jsonl", read=100), postgres_primary=True)
    memory = MemoryAgentTaskStore()
    async with open_cutover_stores(settings, memory_tasks=memory, reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        await stores.tasks.create_task(task())
        claimed = await stores.tasks.claim_next_task("runner-7")
        assert claimed is not None
        assert claimed.claimed_by == "runner-7"
        assert await memory.get_task(claimed.id) == claimed
        assert await stores.postgres.tasks.get_task(claimed.id) == claimed
        status = await stores.store_status()
    assert status.phase == "postgres-primary"
    assert status.source_of_truth == "postgres"


class AnswersLate:
    """A PostgreSQL store whose answers arrive after the commit, late: a caller cancelled then has
    had its write committed without seeing the answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.committed = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def update_task(self, task_id: str, **fields: Any) -> Any:
        result = await self.inner.update_task(task_id, **fields)
        self.committed.set()
        await asyncio.sleep(0.2)
        return result

    async def claim_next_task(self, worker: str, **fields: Any) -> Any:
        result = await self.inner.claim_next_task(worker, **fields)
        self.committed.set()
        await asyncio.sleep(0.2)
        return result


@pytest.mark.parametrize("write", ["update_task", "claim_next_task"])
async def test_phase_three_keeps_memory_in_step_when_the_caller_is_cancelled_after_the_commit(
    clean_dsn: str, tmp_path: Path, write: str
) -> None:
    settings = replace(dual_write(clean_dsn, tmp_path / "journal.jsonl", read=100), postgres_primary=True)
    memory = MemoryAgentTaskStore()
    async with open_cutover_stores(settings, memory_tasks=memory, reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        await stores.tasks.create_task(task())
        late = AnswersLate(stores.tasks.postgres)
        stores.tasks.postgres = cast(AgentTaskStore, late)  # answers as the store would, late
        if write == "update_task":
            call = stores.tasks.update_task(task().id, progress_pct=40, current_step="half way")
        else:
            call = stores.tasks.claim_next_task("runner-3")
        caller = asyncio.ensure_future(call)
        await asyncio.wait_for(late.committed.wait(), timeout=10)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        in_postgres = await stores.postgres.tasks.get_task(task().id)
    # Leaving the stores waited for the write; memory has exactly what PostgreSQL committed.
    assert in_postgres is not None
    assert in_postgres.progress_pct == 40 or in_postgres.claimed_by == "runner-3"
    assert await memory.get_task(task().id) == in_postgres


class Stalls:
    """A PostgreSQL store whose calls hang until cancelled, then raise as the accessors do."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.called = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _stall(self) -> None:
        self.called.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise QueryCancelledError("stalled: cancelled before PostgreSQL answered") from None

    async def create_contributor(self, contributor: Contributor) -> Any:
        await self._stall()
        return await self.inner.create_contributor(contributor)

    async def get_contributor(self, contributor_id: Any) -> Any:
        await self._stall()
        return await self.inner.get_contributor(contributor_id)


async def test_a_dual_write_cancelled_on_its_way_to_postgres_is_journaled_and_the_caller_cancelled(
    dual: CutoverStores,
) -> None:
    assert dual.postgres is not None
    assert dual.core.journal is not None
    real = dual.graph.postgres
    stalled = Stalls(real)
    dual.graph.postgres = stalled
    ada = contributor()
    caller = asyncio.ensure_future(dual.graph.create_contributor(ada))
    await asyncio.wait_for(stalled.called.wait(), timeout=10)

    caller.cancel()

    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await dual.graph.memory.get_contributor(ada.id) is not None  # memory, the source of truth
    assert dual.core.journal.pending() == 1
    dual.graph.postgres = real
    report = await dual.reconcile()
    assert report.applied == 1
    assert await dual.postgres.graph.get_contributor(ada.id) == await dual.graph.memory.get_contributor(ada.id)


async def test_a_read_cancelled_on_its_way_to_postgres_is_cancelled_not_served_from_memory(
    clean_dsn: str, tmp_path: Path
) -> None:
    async with open_cutover_stores(
        dual_write(clean_dsn, tmp_path / "journal.jsonl", read=100), reconcile_interval_s=None
    ) as stores:
        ada = await stores.graph.create_contributor(contributor())
        stalled = Stalls(stores.graph.postgres)
        stores.graph.postgres = stalled
        reads_from_memory = stores.core.stats.reads_memory
        caller = asyncio.ensure_future(stores.graph.get_contributor(ada.id))
        await asyncio.wait_for(stalled.called.wait(), timeout=10)

        caller.cancel()

        with pytest.raises(asyncio.CancelledError):
            await caller
        assert stores.core.stats.reads_memory == reads_from_memory
        assert stores.core.stats.read_fallbacks == 0


async def test_store_status_reports_live_state(dual: CutoverStores) -> None:
    await dual.graph.create_contributor(contributor())
    await dual.graph.get_contributor(uuid4())
    status = await dual.store_status()
    assert status.phase == "dual-write"
    assert status.settings.dual_write_mode is True
    assert status.postgres.reachable is True
    assert status.postgres.server_version
    assert status.writes.memory_ok == 1
    assert status.writes.postgres_ok == 1
    assert status.reads.memory == 1
    assert status.journal.pending == 0


async def test_memory_mode_never_touches_postgres(tmp_path: Path) -> None:
    async with open_cutover_stores(CutoverSettings(), reconcile_interval_s=None) as stores:
        await stores.graph.create_contributor(contributor())
        assert stores.postgres is None
        status = await stores.store_status()
    assert status.phase == "memory"
    assert status.model_dump()["postgres"] == {"configured": False}


async def test_concurrent_updates_of_one_task_reach_postgres_in_memorys_order(dual: CutoverStores) -> None:
    assert dual.postgres is not None
    await dual.tasks.create_task(task())
    await asyncio.gather(
        *(dual.tasks.update_task("task_0000000000000001", output=f"step {i}", progress_pct=i) for i in range(40))
    )
    assert await dual.tasks.memory.get_task("task_0000000000000001") == await dual.postgres.tasks.get_task(
        "task_0000000000000001"
    )


async def test_a_write_that_saw_its_parent_in_memory_finds_it_in_postgres(dual: CutoverStores) -> None:
    assert dual.postgres is not None
    code = await dual.graph.create_asset(asset())
    ada = contributor()

    async def create_parent() -> None:
        await dual.graph.create_contributor(ada)

    async def create_child_once_parent_is_in_memory() -> None:
        # Polling on purpose: this caller only observes memory, as another API request would.
        while await dual.graph.memory.get_contributor(ada.id) is None:  # noqa: ASYNC110
            await asyncio.sleep(0)
        await dual.graph.create_contribution(ada.id, code.id, Decimal("1.00"), 0.5, {})

    await asyncio.gather(create_child_once_parent_is_in_memory(), create_parent())
    assert dual.core.stats.dead_lettered == 0
    assert len(await dual.postgres.graph.get_asset_contributions(code.id)) == 1


async def test_write_order_serialises_shared_keys_and_lets_others_pass() -> None:
    order = WriteOrder()
    events: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with order.hold(["task:a"]):
            events.append("first in")
            first_in.set()
            await release.wait()
            events.append("first out")

    async def same_key() -> None:
        await first_in.wait()
        async with order.hold(["task:a", "task:b"]):
            events.append("same key in")

    async def other_key() -> None:
        await first_in.wait()
        async with order.hold(["task:c"]):
            events.append("other key in")
        release.set()

    await asyncio.gather(first(), same_key(), other_key())
    assert events == ["first in", "other key in", "first out", "same key in"]
    assert order.keys_held == 0


async def test_phase_three_replays_a_leftover_journal_before_serving(clean_dsn: str, tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "journal.jsonl")
    journal.append("tasks", "create_task", {"task": task()})
    settings = replace(dual_write(clean_dsn, journal.path), postgres_primary=True)
    async with open_cutover_stores(settings, reconcile_interval_s=None) as stores:
        assert not journal.active()
        found = await stores.tasks.get_task("task_0000000000000001")  # phase 3 reads PostgreSQL
    assert found is not None
    assert found.direction == "write the spec"


async def test_phase_three_refuses_to_start_while_the_journal_cannot_drain(clean_dsn: str, tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "journal.jsonl")
    journal.append("tasks", "create_task", {"task": task()})
    settings = replace(dual_write(clean_dsn, journal.path), postgres_primary=True)
    refused = pytest.raises(CutoverError, match=r"journal holds 1 write\(s\) .* run `coherence-sql reconcile`")
    with journal._replaying_alone(), refused:  # another replayer holds the journal
        async with open_cutover_stores(settings, reconcile_interval_s=None):
            pass
    assert journal.pending() == 1


async def test_an_update_of_a_task_postgres_lacks_waits_and_then_lands(clean_dsn: str, tmp_path: Path) -> None:
    memory = MemoryAgentTaskStore()
    original = await memory.create_task(task())  # created before dual-write began: not in PostgreSQL yet
    settings = dual_write(clean_dsn, tmp_path / "journal.jsonl")
    async with open_cutover_stores(settings, memory_tasks=memory, reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        updated = await stores.tasks.update_task("task_0000000000000001", output="done")
        assert updated is not None
        assert stores.core.stats.journaled == 1
        assert "task task_0000000000000001 is not in PostgreSQL yet" in ((await stores.reconcile()).error or "")
        await stores.postgres.tasks.create_task(original)  # what the backfill of an earlier snapshot does
        assert (await stores.reconcile()).complete
        assert await stores.postgres.tasks.get_task("task_0000000000000001") == updated
