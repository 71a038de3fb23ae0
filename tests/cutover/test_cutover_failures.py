"""The cut-over's failure paths against a real PostgreSQL: which failures are journaled, which are
dead-lettered, a journal that cannot be written, the PostgreSQL leg's budget, the bounded pool, a
start while PostgreSQL is away, and shadow reads while PostgreSQL serves.

Faults that need a server of their own (stopped, frozen, read-only, ...) are in tests/faults/.
These use a database of their own on the session's server, and break it in ways that one
database can: a table renamed, a row or table locked, a database that does not exist yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from coherence_sql.cli import main
from coherence_sql.cutover.journal import WriteJournal
from coherence_sql.cutover.service import CutoverStores, open_cutover_stores
from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.db import PoolSettings
from coherence_sql.errors import DatabaseUnavailableError, InvalidValueError, PoolTimeoutError
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
from coherence_sql.schema import migrate
from coherence_sql.stores.postgres import connect
from tests.pg import PgServer, execute, with_database

BUDGET_S = 0.3
# What a caller may wait beyond the budget: scheduling on two shared cores, never a server wait.
MARGIN_S = 0.5


def contributor(email: str = "ada@coherence.dev") -> Contributor:
    return Contributor(type=ContributorType.HUMAN, name="Ada", email=email)


def task(task_id: str = "task_00000000000000f1") -> AgentTaskRecord:
    return AgentTaskRecord(
        id=task_id, direction="write the spec", task_type=TaskType.SPEC, model="m", command="c", tier="t"
    )


def settings(dsn: str, journal: Path, *, read: int = 0, shadow: int = 0, primary: bool = False) -> CutoverSettings:
    return CutoverSettings(
        dual_write=True,
        postgres_primary=primary,
        read_from_postgres_percent=read,
        shadow_compare_percent=shadow,
        journal_path=journal,
        database_url=dsn,
        postgres_budget_s=BUDGET_S,
    )


@pytest.fixture
async def own_dsn(database_factory: Callable[[], Awaitable[str]]) -> str:
    """A migrated database of this test's own, free to break."""
    dsn = await database_factory()
    await migrate(dsn)
    return dsn


@pytest.fixture
async def dual(own_dsn: str, tmp_path: Path) -> AsyncIterator[CutoverStores]:
    async with open_cutover_stores(settings(own_dsn, tmp_path / "journal.jsonl"), reconcile_interval_s=None) as s:
        yield s


async def timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


# -- what is journaled, what is dead-lettered ----------------------------------------------------


async def test_a_failure_that_is_no_verdict_on_the_data_is_journaled_and_replayed(
    dual: CutoverStores, own_dsn: str
) -> None:
    # 42P01 (undefined table) was once a "rejection" that dropped the write; a revoked grant, a
    # read-only server or a renamed table all say "not now", never "not this data".
    await execute(own_dsn, "ALTER TABLE agent_tasks RENAME TO agent_tasks_away")
    made = await dual.tasks.create_task(task())
    assert made.id == "task_00000000000000f1"
    journal = dual.core.journal
    assert journal is not None
    assert (journal.pending(), journal.dead_letters.count()) == (1, 0)
    assert dual.core.stats.postgres_failed == 1
    assert "DatabaseError" in dual.core.stats.by_error

    await execute(own_dsn, "ALTER TABLE agent_tasks_away RENAME TO agent_tasks")
    report = await dual.reconcile()
    assert report.complete
    assert report.applied == 1
    assert dual.postgres is not None
    assert await dual.postgres.tasks.get_task(made.id) == await dual.tasks.memory.get_task(made.id)


async def test_a_verdict_on_the_data_is_dead_lettered_whole_and_replayable(
    dual: CutoverStores, own_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dual.postgres is not None
    assert dual.core.journal is not None
    # PostgreSQL already has this e-mail under another id (memory does not): its unique key refuses.
    squatter = await dual.postgres.graph.create_contributor(contributor("Ada@Coherence.dev"))
    ada = contributor()
    assert await dual.graph.create_contributor(ada) == ada  # the caller never sees PostgreSQL's verdict

    letters = dual.core.journal.dead_letters.read()
    assert len(letters) == 1
    assert (letters[0].store, letters[0].op) == ("graph", "create_contributor")
    assert letters[0].kwargs == {"contributor": ada}
    assert letters[0].error.startswith("DuplicateError: ")
    assert "a contributor with this email already exists" in letters[0].error
    assert dual.core.journal.pending() == 0
    status = (await dual.store_status()).model_dump()
    assert status["dead_letters"]["count"] == 1
    assert status["writes"]["dead_lettered"] == 1

    journal_path = str(dual.core.journal.path)
    assert await asyncio.to_thread(main, ["reconcile", "--journal", journal_path, "--dead-letters"]) == 0
    listed = capsys.readouterr().out
    assert letters[0].id in listed
    assert "graph.create_contributor" in listed
    assert str(ada.id) in listed

    # Still refused: it stays, and the command says so.
    replay = ["reconcile", "--journal", journal_path, "--database-url", own_dsn, "--replay-dead-letters"]
    assert await asyncio.to_thread(main, replay) == 1
    assert dual.core.journal.dead_letters.count() == 1
    # The operator removes the squatter; the dead letter then lands and leaves the file.
    await execute(own_dsn, f"DELETE FROM contributors WHERE id = '{squatter.id}'")
    assert await asyncio.to_thread(main, replay) == 0
    assert dual.core.journal.dead_letters.count() == 0
    assert await dual.postgres.graph.get_contributor(ada.id) == ada


async def test_a_replayed_entry_refused_on_its_data_is_dead_lettered_and_the_replay_goes_on(
    dual: CutoverStores, own_dsn: str
) -> None:
    assert dual.postgres is not None
    assert dual.core.journal is not None
    await execute(own_dsn, "ALTER TABLE contributors RENAME TO contributors_away")
    ada, bob = contributor(), contributor("bob@coherence.dev")
    await dual.graph.create_contributor(ada)
    await dual.graph.create_contributor(bob)
    assert dual.core.journal.pending() == 2
    await execute(own_dsn, "ALTER TABLE contributors_away RENAME TO contributors")
    await dual.postgres.graph.create_contributor(contributor("ADA@coherence.dev"))  # takes Ada's e-mail

    report = await dual.reconcile()
    assert report.complete
    assert (report.applied, dual.core.journal.pending()) == (1, 0)
    assert [letter.kwargs["contributor"] for letter in dual.core.journal.dead_letters.read()] == [ada]
    assert await dual.postgres.graph.get_contributor(bob.id) == bob


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a tiny tmpfs of its own, filled up: every new write there gets ENOSPC."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.decode().strip()}")
    try:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 1024)
                filler.flush()
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


async def test_a_journal_that_cannot_be_written_never_fails_the_caller_and_marks_postgres_diverged(
    own_dsn: str, full_disk: Path
) -> None:
    journal = full_disk / "journal.jsonl"
    async with open_cutover_stores(settings(own_dsn, journal, read=100), reconcile_interval_s=None) as stores:
        await execute(own_dsn, "ALTER TABLE agent_tasks RENAME TO agent_tasks_away")
        made = await stores.tasks.create_task(task())  # memory took it: the caller succeeds
        status = (await stores.store_status()).model_dump()
        assert status["writes"]["journal_write_failures"] == 1
        assert status["diverged"]["since"] is not None
        assert "could not be journaled" in status["diverged"]["since"]
        assert "No space left on device" in status["diverged"]["since"]
        assert "backfill" in status["diverged"]["action"]
        await execute(own_dsn, "ALTER TABLE agent_tasks_away RENAME TO agent_tasks")
        # PostgreSQL misses the write: at 100% it must not serve reads until an operator clears it.
        assert await stores.tasks.get_task(made.id) == made
        assert stores.core.stats.reads_postgres == 0
        # The marker is written when the disk lets it (a write that failed is retried on refresh).
        marker = full_disk / "journal.jsonl.diverged"
        (full_disk / "filler").unlink()
        stores.core.refresh_diverged()
        assert marker.read_text().strip() == status["diverged"]["since"]
        stores.clear_diverged()
        assert not marker.exists()
        assert (await stores.store_status()).diverged.since is None


async def test_the_diverged_mark_survives_a_restart_and_is_cleared_by_reconcile(own_dsn: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    (tmp_path / "journal.jsonl.diverged").write_text("2026-12-01T12:00:00+00:00 tasks.create_task lost\n")
    async with open_cutover_stores(settings(own_dsn, journal), reconcile_interval_s=0.05) as stores:
        assert stores.core.diverged == "2026-12-01T12:00:00+00:00 tasks.create_task lost"
        assert await asyncio.to_thread(main, ["reconcile", "--journal", str(journal), "--clear-diverged"]) == 0
        for _ in range(100):  # the background loop follows the marker file
            if stores.core.diverged is None:
                break
            await asyncio.sleep(0.02)
        assert stores.core.diverged is None


# -- bounded waits -----------------------------------------------------------------------------


async def test_a_write_past_its_budget_is_journaled_and_the_caller_goes_on(dual: CutoverStores, own_dsn: str) -> None:
    assert dual.postgres is not None
    made = await dual.tasks.create_task(task())
    holder = await asyncpg.connect(own_dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM agent_tasks WHERE id = $1 FOR UPDATE", made.id)
            waited = await timed(dual.tasks.update_task(made.id, status=TaskStatus.RUNNING, progress_pct=10))
            assert waited < BUDGET_S + MARGIN_S
            assert dual.core.stats.over_budget == 1
            assert dual.core.journal is not None
            assert dual.core.journal.pending() == 1
            # Later writes to anything queue behind it, in memory's order.
            await dual.tasks.update_task(made.id, progress_pct=20)
            assert dual.core.journal.pending() == 2
    finally:
        await holder.close()
    report = await dual.reconcile()
    assert report.complete
    assert report.applied == 2
    in_postgres = await dual.postgres.tasks.get_task(made.id)
    assert in_postgres == await dual.tasks.memory.get_task(made.id)
    assert in_postgres is not None
    assert (in_postgres.status, in_postgres.progress_pct) == (TaskStatus.RUNNING, 20)


async def test_a_routed_read_past_its_budget_is_served_from_memory(own_dsn: str, tmp_path: Path) -> None:
    async with open_cutover_stores(settings(own_dsn, tmp_path / "j.jsonl", read=100), reconcile_interval_s=None) as s:
        made = await s.tasks.create_task(task())
        holder = await asyncpg.connect(own_dsn)
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE agent_tasks IN ACCESS EXCLUSIVE MODE")
                started = time.perf_counter()
                assert await s.tasks.get_task(made.id) == made
                assert time.perf_counter() - started < BUDGET_S + MARGIN_S
        finally:
            await holder.close()
        assert (s.core.stats.read_fallbacks, s.core.stats.reads_memory) == (1, 1)
        assert await s.tasks.get_task(made.id) == made  # and PostgreSQL serves again once it can
        assert s.core.stats.reads_postgres == 1


async def test_callers_waiting_for_a_pooled_connection_get_a_typed_error_within_the_bound(own_dsn: str) -> None:
    bound = 0.3
    async with connect(own_dsn, settings=PoolSettings(min_size=1, max_size=2, acquire_timeout_s=bound)) as stores:
        holder = await asyncpg.connect(own_dsn)
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE agent_tasks IN ACCESS EXCLUSIVE MODE")

                async def one() -> tuple[BaseException | None, float]:
                    started = time.perf_counter()
                    try:
                        await stores.tasks.get_task("task_00000000000000f1")
                    except Exception as exc:
                        return exc, time.perf_counter() - started
                    return None, time.perf_counter() - started

                results = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(8))), 10)
                await holder.execute("SELECT 1")
        finally:
            await holder.close()
    timed_out = [(exc, took) for exc, took in results if isinstance(exc, PoolTimeoutError)]
    # Two callers hold the pool's connections (blocked on the lock until it went); the other six
    # gave up on the pool within the bound, each with the typed error, not one after another.
    assert len(timed_out) == 6
    for exc, took in timed_out:
        assert took < bound + MARGIN_S
        assert "no PostgreSQL connection within 0.3s (pool of 2" in str(exc)


# -- starting while PostgreSQL is away -----------------------------------------------------------


async def test_phases_1_and_2_start_degraded_while_postgres_is_away_and_drain_when_it_answers(
    pg_server: PgServer, tmp_path: Path
) -> None:
    name = f"cs_test_late_{uuid4().hex[:10]}"
    dsn = with_database(pg_server.admin_dsn, name)  # a database that does not exist yet
    async with open_cutover_stores(settings(dsn, tmp_path / "j.jsonl", read=100), reconcile_interval_s=0.05) as s:
        assert s.degraded
        assert s.postgres is None
        status = (await s.store_status()).model_dump()
        assert status["degraded"] is True
        assert status["postgres"]["reachable"] is False
        ada = await s.graph.create_contributor(contributor())
        made = await s.tasks.create_task(task())
        await s.tasks.update_task(made.id, status=TaskStatus.RUNNING)
        assert await s.graph.get_contributor(ada.id) == ada  # memory serves
        assert s.core.journal is not None
        assert s.core.journal.pending() == 3

        await execute(pg_server.admin_dsn, f'CREATE DATABASE "{name}"')
        try:
            await migrate(dsn)
            for _ in range(200):
                if s.postgres is not None and s.core.journal.pending() == 0:
                    break
                await asyncio.sleep(0.05)
            assert not s.degraded
            assert s.core.journal.pending() == 0
            assert s.postgres is not None
            assert await s.postgres.graph.get_contributor(ada.id) == ada
            assert await s.postgres.tasks.get_task(made.id) == await s.tasks.memory.get_task(made.id)
        finally:
            await s.postgres.pool.close() if s.postgres is not None else None
            await execute(pg_server.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_phase_3_does_not_start_without_postgres(pg_server: PgServer, tmp_path: Path) -> None:
    dsn = with_database(pg_server.admin_dsn, f"cs_test_absent_{uuid4().hex[:10]}")
    with pytest.raises(DatabaseUnavailableError, match="cannot connect"):
        async with open_cutover_stores(settings(dsn, tmp_path / "j.jsonl", primary=True), reconcile_interval_s=None):
            pass


# -- reads served by PostgreSQL are shadow-compared too ----------------------------------------


async def test_at_100_percent_postgres_reads_memory_becomes_the_shadow_candidate(own_dsn: str, tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    async with open_cutover_stores(settings(own_dsn, journal, read=100, shadow=100), reconcile_interval_s=None) as s:
        assert s.postgres is not None
        react = Project(ecosystem="npm", name="react", version="19.0.0", description="UI")
        await s.graph.upsert_project(react)
        assert await s.graph.get_project("npm", "react") == react
        await s.core.shadow.drain()
        assert (s.core.shadow.stats.compared, s.core.shadow.stats.mismatched) == (1, 0)
        # A write only PostgreSQL saw: the shadow read of memory disagrees, and says which side served.
        await s.postgres.graph.upsert_project(react.model_copy(update={"version": "19.1.0"}))
        await s.graph.get_project("npm", "react")
        await s.core.shadow.drain()
        assert s.core.shadow.stats.mismatched == 1
        mismatch = s.core.shadow.recent[-1]
        assert mismatch.control_side == "postgres"
        assert (mismatch.control["version"], mismatch.candidate["version"]) == ("19.1.0", "19.0.0")


# -- the migrating stores refuse and normalise as the stores do ---------------------------------


@pytest.mark.parametrize("read", [0, 50, 100])
async def test_a_key_holding_a_lone_surrogate_gets_the_stores_answer_through_the_migrating_stores(
    own_dsn: str, tmp_path: Path, read: int
) -> None:
    chosen = settings(own_dsn, tmp_path / "j.jsonl", read=read)
    async with open_cutover_stores(chosen, reconcile_interval_s=None) as s:
        memory_answer: object
        try:
            memory_answer = await s.graph.memory.get_project("npm", "re\ud800act")
        except InvalidValueError as exc:
            memory_answer = type(exc)
        try:
            answer: object = await s.graph.get_project("npm", "re\ud800act")
        except InvalidValueError as exc:
            answer = type(exc)
        assert answer == memory_answer


async def test_a_falsy_id_or_time_is_the_callers_to_be_refused_not_replaced(dual: CutoverStores) -> None:
    ada = await dual.graph.create_contributor(contributor())
    code = await dual.graph.create_asset(Asset(type=AssetType.CODE, description="api"))
    for bad in ({"id": ""}, {"timestamp": 0}):
        with pytest.raises(InvalidValueError):
            await dual.graph.create_contribution(ada.id, code.id, Decimal("1.00"), 0.5, {}, **bad)
    with pytest.raises(InvalidValueError):
        await dual.tasks.update_task("task_00000000000000f1", progress_pct=5, now="")  # type: ignore[arg-type]
    assert await dual.graph.list_contributions() == []
    assert dual.postgres is not None
    assert await dual.postgres.graph.list_contributions() == []


async def test_a_model_changed_after_construction_is_refused_before_either_store_writes(
    own_dsn: str, tmp_path: Path
) -> None:
    for primary in (False, True):
        journal = tmp_path / f"j{primary}.jsonl"
        async with open_cutover_stores(settings(own_dsn, journal, primary=primary), reconcile_interval_s=None) as s:
            broken = contributor(f"p{primary}@coherence.dev")
            broken.email = "not an e-mail"
            with pytest.raises(InvalidValueError, match="email"):
                await s.graph.create_contributor(broken)
            assert await s.graph.memory.get_contributor(broken.id) is None
            assert s.postgres is not None
            assert await s.postgres.graph.get_contributor(broken.id) is None


# -- a journal torn by a crash -----------------------------------------------------------------


async def test_the_api_starts_on_a_journal_torn_by_a_crash_and_replays_every_whole_entry(
    own_dsn: str, tmp_path: Path
) -> None:
    path = tmp_path / "journal.jsonl"
    journal = WriteJournal(path)
    first, second = task("task_00000000000000a1"), task("task_00000000000000a2")
    journal.append("tasks", "create_task", {"task": first})
    journal.append("tasks", "create_task", {"task": second})
    whole = path.stat().st_size
    journal.append("tasks", "create_task", {"task": task("task_00000000000000a3")})
    # The writer was killed mid-append: half of the last record made it to the disk.
    os.truncate(path, whole + (path.stat().st_size - whole) // 2)

    async with open_cutover_stores(settings(own_dsn, path), reconcile_interval_s=None) as stores:
        assert stores.postgres is not None
        assert stores.last_replay is not None
        assert stores.last_replay.complete
        assert (stores.last_replay.applied, stores.last_replay.set_aside) == (2, 1)
        assert await stores.postgres.tasks.get_task(first.id) == first
        assert await stores.postgres.tasks.get_task(second.id) == second
        assert await stores.postgres.tasks.get_task("task_00000000000000a3") is None
        assert journal.set_aside_count() == 1
        # The next write after the fragment is whole and readable.
        third = task("task_00000000000000a4")
        stores.core.journal_write("tasks", "create_task", {"task": third}, None)
        report = await stores.reconcile()
        assert (report.applied, report.set_aside) == (1, 0)
        assert await stores.postgres.tasks.get_task(third.id) == third
