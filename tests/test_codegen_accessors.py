"""Generated accessors at run time: the values and shapes they return, and the errors they raise."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from types import ModuleType

import asyncpg
import pytest

from coherence_sql.db import Connection, connect, create_pool
from coherence_sql.errors import (
    DatabaseUnavailableError,
    DuplicateError,
    InvalidValueError,
    QueryCancelledError,
    QueryTimeoutError,
)
from coherence_sql.models import TaskStatus, TaskType
from tests.data.codegen.support import generate_files, row_fields, write_and_import


@pytest.fixture(scope="module")
async def q(migrated_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    files = await generate_files(migrated_dsn)
    return write_and_import(files, tmp_path_factory.mktemp("generated_accessors"))


def assert_fields_match_positions(q: ModuleType, row: asyncpg.Record) -> None:
    """Each field reads the column at its position, as do the column names (which keep a `!`/`?` suffix)."""
    names = list(row_fields(q, type(row).__name__))
    keys = list(row.keys())  # iterating a Record gives its values, not its keys
    assert [key.removesuffix("!").removesuffix("?") for key in keys] == names
    assert tuple(getattr(row, name) for name in names) == tuple(row)
    assert tuple(row[key] for key in keys) == tuple(row)


async def seed_projects(q: ModuleType, conn: Connection) -> list[int]:
    await q.insert_projects(conn, ecosystems=["pypi"] * 3, names=["a", "b", "c"], descriptions=["first", None, "third"])
    return [row.id for row in await q.project_ids(conn, ecosystem="pypi")]


async def test_select_one_returns_a_row_with_enums_or_none(q: ModuleType, conn: Connection) -> None:
    await q.insert_task(conn, id="t1", direction="do it", task_type=TaskType.IMPL, model="m", command="c", context=None)
    row = await q.get_task(conn, id="t1")
    assert row == q.TaskRow("t1", TaskType.IMPL, TaskStatus.PENDING, None, None, None)
    assert await q.tasks_in(conn, status=TaskStatus.PENDING) == [row]  # the same class, from another query
    assert type(row.task_type) is TaskType
    assert type(row.status) is TaskStatus
    assert await q.get_task(conn, id="missing") is None


async def test_insert_returning_gives_the_row_with_defaults(q: ModuleType, conn: Connection) -> None:
    contributor_id = uuid.uuid4()
    row = await q.insert_contributor(
        conn, id=contributor_id, name="Ada", email="ada@example.org", type="HUMAN", hourly_rate=Decimal("12.50")
    )
    assert type(row) is q.InsertContributorRow
    assert (row.id, row.name, row.hourly_rate, row.metadata) == (contributor_id, "Ada", Decimal("12.50"), {})
    assert row == (contributor_id, "Ada", Decimal("12.50"), {}, row.created_at)
    assert_fields_match_positions(q, row)
    assert isinstance(row.created_at, dt.datetime)
    assert row.created_at.tzinfo is not None
    task = await q.insert_task(
        conn, id="t2", direction="d", task_type=TaskType.SPEC, model="m", command="c", context={"k": [1, 2]}
    )
    assert task == q.InsertTaskRow("t2", TaskType.SPEC, TaskStatus.PENDING, {"k": [1, 2]}, None)


async def test_select_many_returns_a_list_with_outer_join_nulls(q: ModuleType, conn: Connection) -> None:
    a, b, c = await seed_projects(q, conn)
    assert await q.add_dependency(conn, from_id=a, to_id=b) == 1
    rows = await q.dependencies_of(conn, ecosystem="pypi")
    assert rows == [
        (a, "a", "first", b, "b"),
        (b, "b", None, None, None),
        (c, "c", "third", None, None),
    ]
    assert all(type(row) is q.DependenciesOfRow for row in rows)
    for row in rows:
        assert_fields_match_positions(q, row)
    assert (rows[0].id, rows[0].to_project_id, rows[0].to_name, rows[1].description) == (a, b, "b", None)
    assert await q.dependencies_of(conn, ecosystem="npm") == []


async def test_aggregate_rows_and_arrays(q: ModuleType, conn: Connection) -> None:
    await seed_projects(q, conn)
    [stats] = await q.ecosystem_stats(conn)
    assert stats.ecosystem == "pypi"
    assert (stats.projects, stats.max_dependencies, stats.names, stats.described) == (3, 0, ["a", "b", "c"], 2)
    assert_fields_match_positions(q, stats)
    assert (stats["described?"], stats["first_id!"]) == (stats.described, stats.first_id)


async def test_select_value_returns_the_scalar_converted_or_none(q: ModuleType, conn: Connection) -> None:
    assert await q.count_contributors(conn) == 0
    assert await q.first_status(conn) is None
    assert await q.task_statuses(conn) is None
    for task_id, kind in (("x", TaskType.TEST), ("y", TaskType.HEAL)):
        await q.insert_task(conn, id=task_id, direction="d", task_type=kind, model="m", command="c", context=None)
    await conn.execute("UPDATE agent_tasks SET status = 'failed' WHERE id = 'y'")
    assert await q.first_status(conn) is TaskStatus.PENDING
    assert await q.task_statuses(conn) == [TaskStatus.PENDING, TaskStatus.FAILED]
    assert all(type(s) is TaskStatus for s in await q.task_statuses(conn) or [])


async def test_execute_returns_the_affected_row_count(q: ModuleType, conn: Connection) -> None:
    await seed_projects(q, conn)
    assert await q.set_version(conn, ecosystem="pypi", version="2.0") == 3
    assert await q.set_version(conn, ecosystem="npm", version="2.0") == 0


async def test_execute_many_writes_every_row(q: ModuleType, conn: Connection) -> None:
    rows = [q.InsertContributorsParams(uuid.uuid4(), f"n{i}", f"n{i}@example.org", "SYSTEM") for i in range(5)]
    assert await q.insert_contributors(conn, rows) is None
    assert await q.count_contributors(conn) == 5


async def test_script_runs_every_statement(q: ModuleType, conn: Connection) -> None:
    a, b, _ = await seed_projects(q, conn)
    await q.add_dependency(conn, from_id=a, to_id=b)
    assert await q.clear_projects(conn) is None
    assert await q.project_ids(conn, ecosystem="pypi") == []


async def test_a_pool_is_an_executor(q: ModuleType, clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn)
    try:
        await q.insert_task(
            pool, id="p", direction="d", task_type=TaskType.REVIEW, model="m", command="c", context=None
        )
        row = await q.get_task(pool, id="p")
        assert row is not None
        assert row.task_type is TaskType.REVIEW
    finally:
        await pool.close()


async def test_record_rows_come_from_a_connection_a_pool_and_a_pools_connection(q: ModuleType, clean_dsn: str) -> None:
    pool = await create_pool(clean_dsn)
    try:
        ids = []
        for i in range(3):
            row = await q.insert_asset(pool, id=uuid.uuid4(), name=f"asset {i}", description="d", asset_type="CODE")
            assert type(row) is q.InsertAssetRow
            ids.append(row.id)
        async with pool.acquire() as proxy:  # a PoolConnectionProxy, not a Connection
            assert type(proxy) is asyncpg.pool.PoolConnectionProxy
            [through_proxy] = await q.asset_contributions(proxy, asset_id=ids[0])
            one = await q.insert_asset(proxy, id=uuid.uuid4(), name="asset 3", description="d", asset_type="CODE")
        [through_pool] = await q.asset_contributions(pool, asset_id=ids[1])
        conn = await connect(clean_dsn)
        try:
            [through_conn] = await q.asset_contributions(conn, asset_id=ids[2])
        finally:
            await conn.close()
        for row, asset_id in ((through_proxy, ids[0]), (through_pool, ids[1]), (through_conn, ids[2])):
            assert type(row) is q.AssetContributionsRow
            assert row == (asset_id, Decimal(0), None, None, None, None)
            assert (row.asset_id, row.total_cost, row.contribution_id) == (asset_id, Decimal(0), None)
        assert type(one) is q.InsertAssetRow
    finally:
        await pool.close()


async def test_record_rows_are_read_only_and_hash_like_tuples(q: ModuleType, conn: Connection) -> None:
    a, _, _ = await seed_projects(q, conn)
    [first, *_] = await q.project_ids(conn, ecosystem="pypi")
    assert type(first) is q.ProjectIdsRow
    assert (first.id, first["id"], first[0], len(first), tuple(first)) == (a, a, a, 1, (a,))
    assert first == (a,)
    assert hash(first) == hash((a,))
    with pytest.raises(AttributeError):
        first.id = 0
    with pytest.raises(AttributeError):
        first.other = 0


async def test_check_violation_is_a_typed_error_naming_the_query(q: ModuleType, conn: Connection) -> None:
    a, _, _ = await seed_projects(q, conn)
    with pytest.raises(InvalidValueError) as info:
        await q.rename_project(conn, id=a, display_name="Something Else")
    message = str(info.value)
    assert message.startswith("fixture_accessors.rename_project: ")
    assert "the display spelling must match the key case-insensitively" in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


async def test_unique_violation_is_a_duplicate_error_naming_the_query(q: ModuleType, conn: Connection) -> None:
    same = uuid.uuid4()
    await q.insert_contributor(conn, id=same, name="A", email="a@example.org", type="HUMAN", hourly_rate=None)
    with pytest.raises(DuplicateError, match=r"^fixture_accessors\.insert_contributor: .*contributors_pkey"):
        await q.insert_contributor(conn, id=same, name="B", email="b@example.org", type="HUMAN", hourly_rate=None)


async def test_wrong_python_value_is_an_invalid_value_error(q: ModuleType, conn: Connection) -> None:
    with pytest.raises(InvalidValueError, match=r"^fixture_accessors\.set_version: "):
        await q.set_version(conn, ecosystem="pypi", version=3)


async def test_statement_timeout_is_a_query_timeout_naming_the_query(q: ModuleType, conn: Connection) -> None:
    await conn.execute("SET statement_timeout = '50ms'")
    with pytest.raises(QueryTimeoutError, match=r"^fixture_accessors\.sleep: "):
        await q.sleep(conn, seconds=5.0)
    await conn.execute("RESET statement_timeout")
    assert await q.sleep(conn, seconds=0.0) is True


async def test_cancelled_call_raises_query_cancelled(q: ModuleType, conn: Connection) -> None:
    call = asyncio.create_task(q.sleep(conn, seconds=5.0))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(QueryCancelledError, match=r"^fixture_accessors\.sleep: cancelled"):
        await call
    assert call.cancelled()  # still an asyncio cancellation for the task machinery
    assert await q.count_contributors(conn) == 0  # the connection is usable afterwards


async def call_until_it_fails(q: ModuleType, victim: Connection) -> None:
    for _ in range(50):  # the termination reaches the client asynchronously
        await q.get_task(victim, id="x")
        await asyncio.sleep(0.05)


async def test_lost_connection_is_database_unavailable_naming_the_query(q: ModuleType, clean_dsn: str) -> None:
    victim = await connect(clean_dsn)
    admin = await asyncpg.connect(clean_dsn)
    try:
        await admin.fetchval("SELECT pg_terminate_backend($1)", victim.get_server_pid())
        with pytest.raises(DatabaseUnavailableError, match=r"^fixture_accessors\.get_task: "):
            await call_until_it_fails(q, victim)
    finally:
        await admin.close()
        victim.terminate()
