"""The schema migration runner (`coherence_sql.schema`), against a real PostgreSQL.

Most tests use a small schema directory of their own in `tmp_path` and a brand-new database
(`fresh_dsn`); the last ones apply the project's real `schema/`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg
import pytest

from coherence_sql.errors import (
    ChecksumMismatchError,
    DirtyDatabaseError,
    MigrationError,
    MigrationLockTimeoutError,
    MigrationPrivilegeError,
    SchemaNotCurrentError,
)
from coherence_sql.resources import schema_dir
from coherence_sql.schema import (
    HISTORY_TABLE,
    LOCK_KEY,
    checksum,
    discover,
    migrate,
    require_current,
    split_statements,
    status,
)


@pytest.fixture(scope="module")
async def _runner_database(database_factory: Callable[[], Awaitable[str]]) -> str:
    return await database_factory()


@pytest.fixture
async def fresh_dsn(_runner_database: str) -> str:
    """One database for the module, emptied before each test by dropping and recreating `public`.

    As empty as a new database for the runner (its tables, types, functions and extensions all live
    in `public`), but without a DROP DATABASE per test: on PostgreSQL 15 each one forces a
    checkpoint, which costs seconds on a busy shared server.
    """
    conn = await asyncpg.connect(_runner_database)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == 0
        assert await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql'") == 0
    finally:
        await conn.close()
    return _runner_database


# A log table every test schema writes to, so a test can see which file ran, how often, in what order.
LOG_TABLE_SQL = """CREATE TABLE run_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version INTEGER NOT NULL,
    backend INTEGER NOT NULL DEFAULT pg_backend_pid()
);
INSERT INTO run_log (version) VALUES (1);
"""


def log_sql(version: int) -> str:
    return f"INSERT INTO run_log (version) VALUES ({version});\n"


def write_schema(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8", newline="")
    return directory


async def fetch_all(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def fetch_value(dsn: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def logged_versions(dsn: str) -> list[int]:
    return [r["version"] for r in await fetch_all(dsn, "SELECT version FROM run_log ORDER BY id")]


async def history(dsn: str) -> list[tuple[int, str, bool]]:
    rows = await fetch_all(dsn, f"SELECT version, name, success FROM {HISTORY_TABLE} ORDER BY version")
    return [(r["version"], r["name"], r["success"]) for r in rows]


async def table_exists(dsn: str, table: str) -> bool:
    return bool(await fetch_value(dsn, "SELECT to_regclass($1) IS NOT NULL", table))


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "coherence-sql"
    return [str(script)] if script.exists() else [sys.executable, "-m", "coherence_sql.cli"]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env["COHERENCE_SQL_DATA_DIR"] = str(tmp_path / "unused-embedded")  # never the user's real one
    return env


def run_cli(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(tmp_path),
        check=False,
    )


# -- order and idempotence -----------------------------------------------------------------------


async def test_files_are_applied_in_numeric_version_order(fresh_dsn: str, tmp_path: Path) -> None:
    # Lexically "1000_…" sorts before "200_…"; the runner must order by the number.
    directory = write_schema(
        tmp_path / "schema",
        {
            "1000_d.sql": log_sql(1000),
            "200_c.sql": log_sql(200),
            "002_b.sql": log_sql(2),
            "001_log.sql": LOG_TABLE_SQL,
        },
    )

    report = await migrate(fresh_dsn, directory=directory)

    assert [f.filename for f in report.applied] == ["001_log.sql", "002_b.sql", "200_c.sql", "1000_d.sql"]
    assert len(report.durations_ms) == 4
    assert await logged_versions(fresh_dsn) == [1, 2, 200, 1000]
    assert await history(fresh_dsn) == [(1, "log", True), (2, "b", True), (200, "c", True), (1000, "d", True)]


async def test_second_migrate_applies_nothing_and_keeps_history(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "002_b.sql": log_sql(2)})
    await migrate(fresh_dsn, directory=directory)
    before = await fetch_all(fresh_dsn, f"SELECT * FROM {HISTORY_TABLE} ORDER BY version")

    again = await migrate(fresh_dsn, directory=directory)

    assert again.applied == []
    assert again.dry_run is False
    assert await logged_versions(fresh_dsn) == [1, 2]
    assert await fetch_all(fresh_dsn, f"SELECT * FROM {HISTORY_TABLE} ORDER BY version") == before


async def test_history_records_the_files_checksum(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})

    await migrate(fresh_dsn, directory=directory)

    stored = await fetch_value(fresh_dsn, f"SELECT checksum FROM {HISTORY_TABLE} WHERE version = 1")
    assert stored == checksum(LOG_TABLE_SQL)
    assert stored == discover(directory)[0].checksum


# -- edited, removed, reordered files ----------------------------------------------------------


async def test_edited_applied_file_is_refused_naming_the_file(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "002_b.sql": log_sql(2)})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"002_b.sql": log_sql(22), "003_c.sql": log_sql(3)})

    with pytest.raises(ChecksumMismatchError) as caught:
        await migrate(fresh_dsn, directory=directory)

    message = str(caught.value)
    assert "002_b.sql was edited after it was applied" in message
    assert checksum(log_sql(2))[:12] in message
    assert checksum(log_sql(22))[:12] in message
    assert await logged_versions(fresh_dsn) == [1, 2]  # 003 was not applied either
    assert [v for v, _, _ in await history(fresh_dsn)] == [1, 2]


async def test_removed_applied_file_is_refused_naming_the_file(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "002_b.sql": log_sql(2)})
    await migrate(fresh_dsn, directory=directory)
    (directory / "002_b.sql").unlink()
    write_schema(directory, {"003_c.sql": log_sql(3)})

    with pytest.raises(ChecksumMismatchError) as caught:
        await migrate(fresh_dsn, directory=directory)

    assert "002_b.sql was applied on" in str(caught.value)
    assert "no longer in the schema directory" in str(caught.value)
    assert await logged_versions(fresh_dsn) == [1, 2]


def test_checksum_ignores_line_endings_and_bom_but_not_content() -> None:
    lf = "CREATE TABLE a (id INTEGER);\nCREATE TABLE b (id INTEGER);\n"

    assert checksum(lf.replace("\n", "\r\n")) == checksum(lf)
    assert checksum(lf.replace("\n", "\r")) == checksum(lf)
    assert checksum("\ufeff" + lf) == checksum(lf)
    assert checksum(lf.replace("INTEGER", "BIGINT")) != checksum(lf)
    assert checksum(lf.replace("a (", "a  (")) != checksum(lf)


async def test_crlf_checkout_of_an_applied_file_is_not_seen_as_edited(fresh_dsn: str, tmp_path: Path) -> None:
    text = LOG_TABLE_SQL + log_sql(2)
    directory = write_schema(tmp_path / "schema", {"001_log.sql": text})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"001_log.sql": text.replace("\n", "\r\n"), "002_b.sql": log_sql(3)})

    report = await migrate(fresh_dsn, directory=directory)

    assert [f.filename for f in report.applied] == ["002_b.sql"]
    assert await logged_versions(fresh_dsn) == [1, 2, 3]


async def test_pending_file_numbered_below_an_applied_one_is_refused(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "003_c.sql": log_sql(3)})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"002_late.sql": log_sql(2)})

    with pytest.raises(MigrationError) as caught:
        await migrate(fresh_dsn, directory=directory)

    assert type(caught.value) is MigrationError
    assert "002_late.sql is pending but older than applied version 3" in str(caught.value)
    assert "renumber it after 003" in str(caught.value)
    assert await logged_versions(fresh_dsn) == [1, 3]


@pytest.mark.parametrize(
    "bad_name",
    ["1_short.sql", "001-dash.sql", "001_Upper.sql", "001_has space.sql", "abc_letters.sql", "001_.sql"],
)
async def test_misnamed_schema_file_is_refused_before_touching_the_database(
    fresh_dsn: str, tmp_path: Path, bad_name: str
) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, bad_name: log_sql(9)})

    with pytest.raises(MigrationError) as caught:
        await migrate(fresh_dsn, directory=directory)

    assert str(caught.value) == f"{bad_name}: schema files are named NNN_lower_case_name.sql"
    assert not await table_exists(fresh_dsn, HISTORY_TABLE)
    assert not await table_exists(fresh_dsn, "run_log")


async def test_two_files_with_the_same_version_are_refused(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "0001_again.sql": log_sql(1)})

    with pytest.raises(MigrationError) as caught:
        await migrate(fresh_dsn, directory=directory)

    assert "version 1 is also used by" in str(caught.value)
    assert "001_log.sql" in str(caught.value)
    assert "0001_again.sql" in str(caught.value)
    assert not await table_exists(fresh_dsn, HISTORY_TABLE)


# -- failures inside and outside transactions ----------------------------------------------------


async def test_failing_transactional_file_rolls_back_completely(fresh_dsn: str, tmp_path: Path) -> None:
    broken = "CREATE TABLE partial (id INTEGER);\nINSERT INTO partial VALUES (1);\nSELECT * FROM no_such_table;\n"
    directory = write_schema(
        tmp_path / "schema",
        {"001_log.sql": LOG_TABLE_SQL, "002_broken.sql": log_sql(2) + broken, "003_after.sql": log_sql(3)},
    )

    with pytest.raises(MigrationError) as caught:
        await migrate(fresh_dsn, directory=directory)

    assert type(caught.value) is MigrationError
    message = str(caught.value)
    assert message.startswith("002_broken.sql failed and was rolled back: ")
    assert 'relation "no_such_table" does not exist' in message
    assert not await table_exists(fresh_dsn, "partial")
    assert await logged_versions(fresh_dsn) == [1]  # 002's insert is gone, 003 never ran
    assert await history(fresh_dsn) == [(1, "log", True)]

    # Nothing was recorded, so the fixed file simply applies on the next run.
    write_schema(directory, {"002_broken.sql": log_sql(2)})
    report = await migrate(fresh_dsn, directory=directory)
    assert [f.filename for f in report.applied] == ["002_broken.sql", "003_after.sql"]


async def test_failed_no_transaction_file_leaves_the_database_dirty_and_blocks_runs(
    fresh_dsn: str, tmp_path: Path
) -> None:
    half = (
        "-- no-transaction\n"
        "CREATE TABLE half_done (id INTEGER);\n"
        "SELECT 1 / 0;\n"
        "CREATE TABLE never_made (id INTEGER);\n"
    )
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "002_half.sql": half})

    with pytest.raises(MigrationError) as first:
        await migrate(fresh_dsn, directory=directory)

    assert type(first.value) is MigrationError
    assert str(first.value).startswith("002_half.sql failed at statement 2 of 3 and was NOT rolled back")
    assert "division by zero" in str(first.value)
    # Statement 1 really ran and stays (no implicit transaction around the file); statement 3 never ran.
    assert await table_exists(fresh_dsn, "half_done")
    assert not await table_exists(fresh_dsn, "never_made")
    assert await history(fresh_dsn) == [(1, "log", True), (2, "half", False)]

    with pytest.raises(DirtyDatabaseError) as second:
        await migrate(fresh_dsn, directory=directory)
    assert str(second.value).startswith("002_half.sql failed part-way on ")
    assert f"DELETE FROM {HISTORY_TABLE} WHERE version = 2" in str(second.value)
    with pytest.raises(DirtyDatabaseError):
        await status(fresh_dsn, directory=directory)

    # The documented repair: undo by hand, delete the row, fix the file; then it runs.
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute(f"DROP TABLE half_done; DELETE FROM {HISTORY_TABLE} WHERE version = 2")
    finally:
        await conn.close()
    write_schema(directory, {"002_half.sql": half.replace("SELECT 1 / 0;\n", "")})
    report = await migrate(fresh_dsn, directory=directory)
    assert [f.filename for f in report.applied] == ["002_half.sql"]
    assert await history(fresh_dsn) == [(1, "log", True), (2, "half", True)]


async def test_no_transaction_file_with_create_index_concurrently_applies(fresh_dsn: str, tmp_path: Path) -> None:
    indexes = (
        "-- no-transaction\n"
        "-- Two concurrent builds: each must run as its own statement, outside any transaction.\n"
        "CREATE INDEX CONCURRENTLY idx_run_log_version ON run_log (version);\n"
        "CREATE INDEX CONCURRENTLY idx_run_log_backend ON run_log (backend) WHERE version > 0;\n"
    )
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "002_indexes.sql": indexes})

    report = await migrate(fresh_dsn, directory=directory)

    assert [(f.filename, f.transactional) for f in report.applied] == [
        ("001_log.sql", True),
        ("002_indexes.sql", False),
    ]
    rows = await fetch_all(
        fresh_dsn,
        "SELECT c.relname, i.indisvalid FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
        "WHERE c.relname LIKE 'idx_run_log_%' ORDER BY c.relname",
    )
    assert [(r["relname"], r["indisvalid"]) for r in rows] == [
        ("idx_run_log_backend", True),
        ("idx_run_log_version", True),
    ]
    assert await history(fresh_dsn) == [(1, "log", True), (2, "indexes", True)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1;SELECT 2;", ["SELECT 1;", "SELECT 2;"]),
        ("SELECT 'a;b', 'it''s;';\nSELECT 2", ["SELECT 'a;b', 'it''s;';", "SELECT 2"]),
        ('SELECT E\'\\\';\', "odd;""name";', ['SELECT E\'\\\';\', "odd;""name";']),
        (
            "CREATE FUNCTION f() RETURNS INT AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT $$;$$;",
            ["CREATE FUNCTION f() RETURNS INT AS $body$ SELECT 1; $body$ LANGUAGE sql;", "SELECT $$;$$;"],
        ),
        ("/* a; /* nested; */ still; */ SELECT 1; -- tail; comment\n", ["/* a; /* nested; */ still; */ SELECT 1;"]),
        ("-- only; a comment\n;\n  ;", []),
        # a $ inside an identifier opens no dollar quote; a :: cast is no parameter
        ("SELECT 1 AS a$b$c;SELECT 2::text", ["SELECT 1 AS a$b$c;", "SELECT 2::text"]),
    ],
)
def test_split_statements_splits_only_on_top_level_semicolons(text: str, expected: list[str]) -> None:
    assert split_statements(text) == expected


# -- dry run -------------------------------------------------------------------------------------


async def test_dry_run_cli_prints_what_would_run_and_changes_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(
        tmp_path / "schema",
        {
            "001_log.sql": LOG_TABLE_SQL,
            "002_idx.sql": "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON run_log (id);\n",
        },
    )

    proc = run_cli(tmp_path, "--database-url", fresh_dsn, "migrate", "--dry-run", "--schema-dir", directory)

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("database: ")
    assert lines[1:] == ["would apply 001_log.sql", "would apply 002_idx.sql (no transaction)"]
    assert not await table_exists(fresh_dsn, HISTORY_TABLE)
    assert not await table_exists(fresh_dsn, "run_log")


async def test_dry_run_lists_only_pending_files(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"002_b.sql": log_sql(2)})

    report = await migrate(fresh_dsn, directory=directory, dry_run=True)

    assert report.dry_run is True
    assert [f.filename for f in report.applied] == ["002_b.sql"]
    assert await logged_versions(fresh_dsn) == [1]
    assert [v for v, _, _ in await history(fresh_dsn)] == [1]


# -- concurrency and the lock ------------------------------------------------------------------


async def test_eight_concurrent_runner_processes_apply_each_file_exactly_once(fresh_dsn: str, tmp_path: Path) -> None:
    # 002 sleeps while holding the lock, so the other runners queue behind the first one.
    directory = write_schema(
        tmp_path / "schema",
        {
            "001_log.sql": LOG_TABLE_SQL,
            "002_slow.sql": log_sql(2) + "SELECT pg_sleep(1);\n",
            "003_c.sql": log_sql(3),
            "004_idx.sql": "-- no-transaction\nCREATE INDEX CONCURRENTLY idx_log ON run_log (version);\n"
            "INSERT INTO run_log (version) VALUES (4);\n",
        },
    )
    command = [*cli_command(), "--database-url", fresh_dsn, "migrate", "--schema-dir", str(directory)]

    procs = [
        await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=cli_env(tmp_path)
        )
        for _ in range(8)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=120)

    assert [p.returncode for p in procs] == [0] * 8, [err.decode() for _, err in outputs]
    applied_lines = [line for out, _ in outputs for line in out.decode().splitlines() if line.startswith("applied ")]
    assert sorted(line.split()[1] for line in applied_lines) == [
        "001_log.sql",
        "002_slow.sql",
        "003_c.sql",
        "004_idx.sql",
    ]
    nothing = sum("nothing to apply: the schema is current" in out.decode() for out, _ in outputs)
    assert nothing >= 1
    assert sorted(await logged_versions(fresh_dsn)) == [1, 2, 3, 4]
    assert await history(fresh_dsn) == [(1, "log", True), (2, "slow", True), (3, "c", True), (4, "idx", True)]


async def test_lock_wait_that_expires_raises_lock_timeout_naming_the_holder(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    holder = await asyncpg.connect(fresh_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        started = time.monotonic()

        with pytest.raises(MigrationLockTimeoutError) as caught:
            await migrate(fresh_dsn, directory=directory, lock_wait_s=0.4)

        waited = time.monotonic() - started
        assert 0.4 <= waited < 10
        assert str(caught.value) == (
            f"another migration runner (backend pid {holder.get_server_pid()}) held the lock for more "
            f"than 0.4s; retry when it has finished"
        )
        assert not await table_exists(fresh_dsn, HISTORY_TABLE)
    finally:
        await holder.close()  # ends the session, releasing the lock

    report = await migrate(fresh_dsn, directory=directory, lock_wait_s=5)
    assert [f.filename for f in report.applied] == ["001_log.sql"]


async def test_lock_held_in_another_database_does_not_block_the_runner(
    fresh_dsn: str, database_factory: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    other_dsn = await database_factory()
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    holder = await asyncpg.connect(other_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        report = await migrate(fresh_dsn, directory=directory, lock_wait_s=0.5)
    finally:
        await holder.close()

    assert [f.filename for f in report.applied] == ["001_log.sql"]


async def test_runner_releases_its_lock_after_a_failure(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_bad.sql": "SELECT * FROM missing;\n"})
    with pytest.raises(MigrationError):
        await migrate(fresh_dsn, directory=directory)

    checker = await asyncpg.connect(fresh_dsn)
    try:
        assert await checker.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY) is True
    finally:
        await checker.close()


# -- status and require_current ------------------------------------------------------------------


def file_lines(proc: subprocess.CompletedProcess[str]) -> Sequence[str]:
    """`status` output between the database line and the summary, as "state file" pairs."""
    return [" ".join(line.split()[:2]) for line in proc.stdout.splitlines()[1:-1]]


async def test_status_cli_exits_1_with_pending_files_and_0_when_current(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "002_b.sql": log_sql(2)})

    behind = run_cli(tmp_path, "--database-url", fresh_dsn, "status", "--schema-dir", directory)

    assert behind.returncode == 1, behind.stderr
    assert file_lines(behind) == ["pending 001_log.sql", "pending 002_b.sql"]
    assert behind.stdout.splitlines()[-1] == "2 file(s) pending"

    await migrate(fresh_dsn, directory=directory)
    current = run_cli(tmp_path, "--database-url", fresh_dsn, "status", "--schema-dir", directory)

    assert current.returncode == 0, current.stderr
    assert file_lines(current) == ["applied 001_log.sql", "applied 002_b.sql"]
    assert current.stdout.splitlines()[-1] == "schema is current"


async def test_status_cli_exits_2_naming_an_edited_file(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"001_log.sql": LOG_TABLE_SQL + log_sql(5)})

    proc = run_cli(tmp_path, "--database-url", fresh_dsn, "status", "--schema-dir", directory)

    assert proc.returncode == 2
    assert proc.stderr.startswith("coherence-sql: ChecksumMismatchError: 001_log.sql was edited after it was applied")


async def test_status_reports_applied_and_pending_files(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"002_b.sql": log_sql(2)})

    state = await status(fresh_dsn, directory=directory)

    assert [a.filename for a in state.applied] == ["001_log.sql"]
    assert state.applied[0].success is True
    assert state.applied[0].checksum == checksum(LOG_TABLE_SQL)
    assert [p.filename for p in state.pending] == ["002_b.sql"]
    assert state.current is False


async def test_require_current_raises_when_the_database_is_behind(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"002_b.sql": log_sql(2), "003_c.sql": log_sql(3)})
    conn = await asyncpg.connect(fresh_dsn)
    try:
        with pytest.raises(SchemaNotCurrentError) as caught:
            await require_current(conn, directory=directory)
    finally:
        await conn.close()

    assert str(caught.value) == (
        "the database's schema is behind this code: 002_b.sql, 003_c.sql pending; run `coherence-sql migrate`"
    )


async def test_require_current_raises_on_a_database_never_migrated(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    conn = await asyncpg.connect(fresh_dsn)
    try:
        with pytest.raises(SchemaNotCurrentError, match=r"behind this code: 001_log\.sql pending"):
            await require_current(conn, directory=directory)
    finally:
        await conn.close()


async def test_require_current_raises_when_the_database_is_ahead(fresh_dsn: str, tmp_path: Path) -> None:
    newer = write_schema(tmp_path / "newer", {"001_log.sql": LOG_TABLE_SQL, "002_b.sql": log_sql(2)})
    await migrate(fresh_dsn, directory=newer)
    older = write_schema(tmp_path / "older", {"001_log.sql": LOG_TABLE_SQL})
    conn = await asyncpg.connect(fresh_dsn)
    try:
        with pytest.raises(SchemaNotCurrentError) as caught:
            await require_current(conn, directory=older)
    finally:
        await conn.close()

    assert str(caught.value) == (
        "the database's schema is ahead of this code: 002_b.sql applied but unknown; deploy the newer code"
    )


async def test_require_current_raises_when_an_applied_file_was_edited(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL})
    await migrate(fresh_dsn, directory=directory)
    write_schema(directory, {"001_log.sql": LOG_TABLE_SQL + log_sql(7)})
    conn = await asyncpg.connect(fresh_dsn)
    try:
        with pytest.raises(SchemaNotCurrentError, match=r"001_log\.sql was edited after it was applied"):
            await require_current(conn, directory=directory)
    finally:
        await conn.close()


async def test_require_current_passes_when_the_schema_matches(fresh_dsn: str, tmp_path: Path) -> None:
    directory = write_schema(tmp_path / "schema", {"001_log.sql": LOG_TABLE_SQL, "002_b.sql": log_sql(2)})
    await migrate(fresh_dsn, directory=directory)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await require_current(conn, directory=directory)  # raises unless current
        write_schema(directory, {"003_c.sql": log_sql(3)})
        with pytest.raises(SchemaNotCurrentError):  # the same call does notice a change
            await require_current(conn, directory=directory)
    finally:
        await conn.close()


# -- the project's real schema -------------------------------------------------------------------


async def test_real_schema_migrates_an_empty_database_to_current(empty_dsn: str, tmp_path: Path) -> None:
    files = discover()
    repo_files = sorted(p.name for p in schema_dir().glob("*.sql"))
    assert [f.filename for f in files] == repo_files
    assert repo_files[:2] == ["001_initial_schema.sql", "002_api_contract.sql"]

    report = await migrate(empty_dsn)

    assert [f.filename for f in report.applied] == repo_files
    state = await status(empty_dsn)
    assert state.current
    assert [a.filename for a in state.applied] == repo_files
    assert [a.checksum for a in state.applied] == [f.checksum for f in files]
    assert all(a.success for a in state.applied)
    conn = await asyncpg.connect(empty_dsn)
    try:
        await require_current(conn)
        tables = {
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    finally:
        await conn.close()
    assert {"projects", "project_dependencies", "contributors", "assets", "contributions", "agent_tasks"} <= tables
    assert (await migrate(empty_dsn)).applied == []

    proc = run_cli(tmp_path, "--database-url", empty_dsn, "status")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "schema is current"


async def test_a_role_that_may_not_create_tables_gets_a_migration_error(fresh_dsn: str, tmp_path: Path) -> None:
    files = write_schema(tmp_path, {"001_reader.sql": "CREATE TABLE reader_t (id int);\n"})
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await conn.execute("DROP ROLE IF EXISTS cs_reader; CREATE ROLE cs_reader LOGIN")
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC, cs_reader")
    finally:
        await conn.close()
    reader = fresh_dsn.replace("postgres@", "cs_reader@", 1)
    try:
        with pytest.raises(
            MigrationPrivilegeError,
            match=r"^the role cs_reader cannot migrate \(1 schema file\(s\) pending \(001_reader.sql first\)\): "
            r"to create the migration history table it needs CREATE on the schema; "
            r"run `coherence-sql migrate` as postgres",
        ):
            await migrate(reader, directory=files)
    finally:
        conn = await asyncpg.connect(fresh_dsn)
        try:
            await conn.execute("DROP OWNED BY cs_reader; DROP ROLE cs_reader")
        finally:
            await conn.close()


async def test_a_cancelled_migration_stays_a_cancellation(fresh_dsn: str, tmp_path: Path) -> None:
    files = write_schema(tmp_path, {"001_slow.sql": "SELECT pg_sleep(5);\nCREATE TABLE never_made (id int);\n"})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await migrate(fresh_dsn, directory=files)
    assert not await table_exists(fresh_dsn, "never_made")
    assert await history(fresh_dsn) == []
