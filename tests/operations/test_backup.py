"""Backups and restores (issue 11 §5): the restore drill gives back every record, a damaged backup is
refused before any server is touched, retention removes only old backups this tool wrote, and
pg_dump is always the server's own major version.

Real servers only: the session's test server (embedded PostgreSQL 18, or TEST_DATABASE_URL's).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from coherence_sql.backup import (
    backup_database,
    find_tool,
    list_backups,
    prune_backups,
    read_manifest,
    restore_backup,
)
from coherence_sql.backup.conninfo import child_connection, with_database
from coherence_sql.backup.dump import DUMP_NAME, BackupResult
from coherence_sql.backup.manifest import MANIFEST_NAME, Manifest, describe_file, write_manifest
from coherence_sql.cli import main
from coherence_sql.errors import (
    BackupChecksumError,
    BackupError,
    BackupToolNotFoundError,
    ConfigurationError,
    RestoreTargetNotEmptyError,
)
from coherence_sql.redaction import redact
from coherence_sql.schema import discover, migrate
from coherence_sql.testing.server import PgServer
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.export import export_snapshot
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.verify import verify

NewDatabase = Callable[[], Awaitable[str]]
PASSWORD = "Pw@/:?#%secret"  # the characters a URL must percent-encode


async def _server_major(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


def _database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def _exists(admin_dsn: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def _drop(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def source_dsn(database_factory: NewDatabase) -> str:
    """A migrated database holding a small sample snapshot, loaded by the backfill."""
    dsn = await database_factory()
    major = await _server_major(dsn)
    for program in ("pg_dump", "pg_restore"):
        try:
            find_tool(program, major)
        except BackupToolNotFoundError as exc:  # Debian's postgresql-client-<major> (CI installs it)
            pytest.skip(str(exc))
    await migrate(dsn)
    snapshot = sample_snapshot(projects=40, edges=80, contributors=10, assets=10, contributions=60, tasks=12, seed=11)
    await backfill(dsn, snapshot, vacuum=False)
    return dsn


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backed_up(source_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> BackupResult:
    return await backup_database(source_dsn, tmp_path_factory.mktemp("backups"))


# -- the restore drill ------------------------------------------------------------------------


async def test_restore_drill_gives_back_every_record(
    source_dsn: str, backed_up: BackupResult, database_factory: NewDatabase
) -> None:
    target = await database_factory()
    result = await restore_backup(backed_up.path, target)
    assert result.created is False  # the factory made it, empty
    report = await verify(await export_snapshot(source_dsn), target)
    assert report.compared_count > 200
    assert report.differences == []
    assert report.passed


async def test_the_manifest_records_the_server_the_schema_and_each_file(
    source_dsn: str, backed_up: BackupResult
) -> None:
    manifest = read_manifest(backed_up.path)
    assert manifest == backed_up.manifest
    assert manifest.server_major == await _server_major(source_dsn)
    assert manifest.database == _database_name(source_dsn)
    assert manifest.schema_version == discover()[-1].version
    assert [f.version for f in manifest.schema_files] == [f.version for f in discover()]
    assert manifest.tools["pg_dump"].startswith(f"pg_dump (PostgreSQL) {manifest.server_major}.")
    dump = backed_up.path / DUMP_NAME
    assert manifest.files == [describe_file(dump)]
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert manifest.started_utc <= manifest.finished_utc
    assert manifest.row_counts["public.projects"] == 40
    assert manifest.row_counts["public.contributions"] == 60
    assert manifest.row_counts["public.agent_tasks"] == 12
    assert sorted(p.name for p in backed_up.path.iterdir()) == [DUMP_NAME, MANIFEST_NAME]
    assert not [p for p in backed_up.path.parent.iterdir() if p.name.startswith(".")]  # no partial left


async def test_a_restore_into_a_database_that_holds_anything_is_refused(
    backed_up: BackupResult, source_dsn: str
) -> None:
    with pytest.raises(RestoreTargetNotEmptyError, match=r"already holds .* object"):
        await restore_backup(backed_up.path, source_dsn)


async def test_a_restore_that_does_not_give_back_the_manifests_rows_is_reported(
    backed_up: BackupResult, database_factory: NewDatabase, tmp_path: Path
) -> None:
    copy = _copy(backed_up, tmp_path)
    data = json.loads((copy / MANIFEST_NAME).read_text())
    data["row_counts"]["public.projects"] += 1
    (copy / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(BackupError, match=r"restored rows differ .*public\.projects 41 -> 40"):
        await restore_backup(copy, await database_factory())


async def test_a_target_server_older_than_the_backups_is_refused_before_pg_restore_runs(
    backed_up: BackupResult, database_factory: NewDatabase, tmp_path: Path
) -> None:
    copy = _copy(backed_up, tmp_path)
    data = json.loads((copy / MANIFEST_NAME).read_text())
    data["server_major"] = 99
    (copy / MANIFEST_NAME).write_text(json.dumps(data))
    target = await database_factory()
    with pytest.raises(BackupError, match=r"comes from PostgreSQL 99 .* restore into PostgreSQL 99 or newer"):
        await restore_backup(copy, target)
    conn = await asyncpg.connect(target)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()


async def test_a_role_that_may_not_create_the_target_gets_a_typed_error_saying_what_to_do(
    backed_up: BackupResult, pg_server: PgServer
) -> None:
    role = f"cs_backup_nocreatedb_{os.getpid()}"
    admin = await asyncpg.connect(pg_server.admin_dsn)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
        parts = urlsplit(with_database(pg_server.admin_dsn, f"{role}_target"))
        as_role = parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}").geturl()
        with pytest.raises(BackupError, match=r"cannot create the database .*permission denied.*create it empty"):
            await restore_backup(backed_up.path, as_role)
    finally:
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


# -- damaged backups ----------------------------------------------------------------------------


def _copy(backed_up: BackupResult, tmp_path: Path) -> Path:
    copy = tmp_path / backed_up.path.name
    copy.mkdir()
    for file in backed_up.path.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    return copy


async def test_a_flipped_byte_is_refused_by_its_checksum_and_nothing_is_touched(
    backed_up: BackupResult, pg_server: PgServer, tmp_path: Path
) -> None:
    copy = _copy(backed_up, tmp_path)
    data = bytearray((copy / DUMP_NAME).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / DUMP_NAME).write_bytes(bytes(data))
    name = f"cs_restore_{os.getpid()}_flipped"
    with pytest.raises(BackupChecksumError, match=r"SHA-256 .* the file is damaged; nothing was restored"):
        await restore_backup(copy, with_database(pg_server.admin_dsn, name))
    assert not await _exists(pg_server.admin_dsn, name)  # not even created


async def test_a_truncated_dump_is_refused_by_its_size(backed_up: BackupResult, tmp_path: Path) -> None:
    copy = _copy(backed_up, tmp_path)
    (copy / DUMP_NAME).write_bytes((copy / DUMP_NAME).read_bytes()[:-10])
    with pytest.raises(BackupChecksumError, match="bytes where the manifest records"):
        await restore_backup(copy, "postgresql://nobody@127.0.0.1:1/never")


async def test_a_truncated_manifest_is_refused(backed_up: BackupResult, tmp_path: Path) -> None:
    copy = _copy(backed_up, tmp_path)
    text = (copy / MANIFEST_NAME).read_text()
    (copy / MANIFEST_NAME).write_text(text[: len(text) // 2])
    with pytest.raises(BackupError, match="not valid JSON"):
        await restore_backup(copy, "postgresql://nobody@127.0.0.1:1/never")


async def test_a_missing_dump_or_manifest_is_refused(backed_up: BackupResult, tmp_path: Path) -> None:
    copy = _copy(backed_up, tmp_path)
    (copy / DUMP_NAME).unlink()
    with pytest.raises(BackupError, match="missing: the backup is incomplete"):
        await restore_backup(copy, "postgresql://nobody@127.0.0.1:1/never")
    (copy / MANIFEST_NAME).unlink()
    with pytest.raises(BackupError, match="no manifest: not a complete backup"):
        await restore_backup(copy, "postgresql://nobody@127.0.0.1:1/never")


async def test_a_manifest_missing_a_field_is_refused(backed_up: BackupResult, tmp_path: Path) -> None:
    copy = _copy(backed_up, tmp_path)
    data = json.loads((copy / MANIFEST_NAME).read_text())
    del data["files"]
    (copy / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(BackupError, match="files: Field required"):
        read_manifest(copy)


# -- retention ----------------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _fake_backup(directory: Path, name: str, database: str, age_days: float, *, extra: str | None = None) -> Path:
    """A backup directory as `backup` writes it, finished `age_days` before NOW (no server needed)."""
    path = directory / name
    path.mkdir()
    (path / DUMP_NAME).write_bytes(b"PGDMP" + name.encode())
    if extra:
        (path / extra).write_text("the operator's note")
    finished = NOW - timedelta(days=age_days)
    write_manifest(
        path,
        Manifest(
            database=database, server="postgresql://backup@db/x", server_version="18.1", server_major=18,
            started_utc=finished - timedelta(minutes=1), finished_utc=finished, schema_files=[], row_counts={},
            files=[describe_file(path / DUMP_NAME)], tools={"pg_dump": "pg_dump (PostgreSQL) 18.1"},
        ),
    )  # fmt: skip
    return path


def test_pruning_removes_old_backups_keeps_the_newest_and_everything_not_ours(tmp_path: Path) -> None:
    old = _fake_backup(tmp_path, "app-old", "app", 45)
    older_with_note = _fake_backup(tmp_path, "app-older", "app", 60, extra="NOTES.txt")
    recent = _fake_backup(tmp_path, "app-recent", "app", 29)
    lone = _fake_backup(tmp_path, "other-lone", "other", 90)  # old, but its database's newest
    foreign_dir = tmp_path / "not-a-backup"
    foreign_dir.mkdir()
    (foreign_dir / MANIFEST_NAME).write_text('{"format": "something else"}')
    (tmp_path / "README").write_text("keep me")
    partial = tmp_path / ".partial-app-20261130T030000Z"
    partial.mkdir()

    result = prune_backups(tmp_path, 30, now=NOW)

    assert sorted(result.removed) == sorted([old, older_with_note])
    assert sorted(result.kept) == sorted([recent, lone])
    assert result.partial == [partial]
    assert not old.exists()
    assert sorted(p.name for p in older_with_note.iterdir()) == ["NOTES.txt"]  # only what we wrote went
    assert [path for path, _ in list_backups(tmp_path)] == [lone, recent]
    assert (tmp_path / "README").read_text() == "keep me"
    assert (foreign_dir / MANIFEST_NAME).exists()
    assert partial.exists()


def test_pruning_never_removes_the_newest_even_when_every_backup_is_old(tmp_path: Path) -> None:
    _fake_backup(tmp_path, "app-1", "app", 100)
    newest = _fake_backup(tmp_path, "app-2", "app", 50)
    assert prune_backups(tmp_path, 30, now=NOW).kept == [newest]
    with pytest.raises(ConfigurationError, match="at least 1"):
        prune_backups(tmp_path, 0, now=NOW)
    with pytest.raises(BackupError, match="no such backup directory"):
        prune_backups(tmp_path / "absent", 30, now=NOW)


# -- which pg_dump -----------------------------------------------------------------------------


def _fake_client(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(exist_ok=True)
    program = directory / name
    program.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return directory


async def test_the_pg_dump_of_the_servers_major_is_picked(source_dsn: str, tmp_path: Path) -> None:
    major = await _server_major(source_dsn)
    other = _fake_client(tmp_path / "other", "pg_dump", f"{major - 1}.9")
    tool = find_tool("pg_dump", major)
    assert tool.major == major
    assert tool.version.startswith(f"pg_dump (PostgreSQL) {major}.")
    assert find_tool("pg_dump", major, search=[other, tool.path.parent]).path == tool.path


async def test_without_a_pg_dump_of_the_servers_major_the_backup_is_refused(source_dsn: str, tmp_path: Path) -> None:
    major = await _server_major(source_dsn)
    bin_dir = _fake_client(tmp_path / "bin", "pg_dump", f"{major - 1}.4")
    backups = tmp_path / "backups"
    with pytest.raises(BackupToolNotFoundError, match=rf"pg_dump of PostgreSQL {major} is needed .* is {major - 1}\)"):
        await backup_database(source_dsn, backups, pg_bin_dirs=[bin_dir])
    assert list(backups.iterdir()) == []  # no partial backup left behind


# -- passwords and the command line -------------------------------------------------------------


def test_the_password_goes_to_the_childs_environment_never_its_arguments() -> None:
    child = child_connection("postgresql://backup:s%40cret@db.example:5432/app?sslmode=verify-full", {"PATH": "/bin"})
    assert child.url == "postgresql://backup@db.example:5432/app?sslmode=verify-full"
    assert child.env == {"PATH": "/bin", "PGPASSWORD": "s@cret"}
    query = child_connection("postgresql://backup@db/app?password=pw&application_name=x", {"PGPASSWORD": "other"})
    assert query.url == "postgresql://backup@db/app?application_name=x"
    assert query.env == {"PGPASSWORD": "pw"}
    # No password in the URL: the child finds it where the package's connection did.
    assert child_connection("postgresql://backup@db/app", {"PGPASSWORD": "from-env"}).env == {"PGPASSWORD": "from-env"}
    with pytest.raises(ConfigurationError, match="needs a postgresql:// URL"):
        child_connection("host=db password=pw")


async def test_pg_dump_gets_the_password_in_its_environment_not_its_arguments(source_dsn: str, tmp_path: Path) -> None:
    """A wrapper records what pg_dump was given, then runs the real one (the server trusts any password)."""
    major = await _server_major(source_dsn)
    real = find_tool("pg_dump", major).path
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen"
    wrapper = bin_dir / "pg_dump"
    wrapper.write_text(f'#!/bin/sh\necho "$* PGPASSWORD=$PGPASSWORD" >> {seen}\nexec {real} "$@"\n')
    wrapper.chmod(0o700)
    parts = urlsplit(source_dsn)
    user, _, hosts = parts.netloc.rpartition("@")
    with_password = parts._replace(netloc=f"{user}:{quote(PASSWORD, safe='')}@{hosts}").geturl()
    result = await backup_database(with_password, tmp_path / "backups", pg_bin_dirs=[bin_dir])
    version_call, dump_call = seen.read_text().splitlines()
    assert version_call.startswith("--version")
    arguments, _, environment = dump_call.partition(" PGPASSWORD=")
    assert "--format=custom" in arguments
    assert PASSWORD not in arguments
    assert quote(PASSWORD, safe="") not in arguments
    assert environment == PASSWORD
    assert PASSWORD not in (result.path / MANIFEST_NAME).read_text()
    assert result.manifest.server == redact(with_password)


async def test_a_failed_pg_dump_is_a_typed_error_quoting_it_redacted_and_leaves_nothing(
    source_dsn: str, tmp_path: Path
) -> None:
    major = await _server_major(source_dsn)
    real = find_tool("pg_dump", major).path
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    failing = bin_dir / "pg_dump"
    failing.write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && exec {real} --version\n'
        f'echo "pg_dump: error: disk full while dumping for postgresql://u:{quote(PASSWORD, safe="")}@db/x" >&2\n'
        "exit 1\n"
    )
    failing.chmod(0o700)
    backups = tmp_path / "backups"
    with pytest.raises(BackupError) as caught:
        await backup_database(source_dsn, backups, pg_bin_dirs=[bin_dir])
    assert "pg_dump failed (exit status 1): pg_dump: error: disk full while dumping" in str(caught.value)
    assert quote(PASSWORD, safe="") not in str(caught.value)
    assert list(backups.iterdir()) == []  # the partial backup went with the failure


def test_backup_then_restore_by_name_from_the_command_line(
    source_dsn: str, pg_server: PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = _fake_backup(tmp_path, "stale", _database_name(source_dsn), 400)
    assert main(["--json", "backup", "--dir", str(tmp_path), "--keep-days", "30", "--database-url", source_dsn]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["pruned"] == [str(stale)]
    assert made["kept"] == [made["backup"]]
    assert main(["restore", made["backup"], "--check"]) == 0
    assert "intact:" in capsys.readouterr().out
    name = f"cs_restore_{os.getpid()}_cli"
    try:
        code = main(["--json", "restore", made["backup"], "--into", name, "--database-url", pg_server.admin_dsn])
        restored = json.loads(capsys.readouterr().out)
        assert code == 0, restored
        assert restored["created"] is True
        assert restored["schema_version"] == discover()[-1].version
        assert main(["--json", "restore", made["backup"], "--into", name, "--database-url", pg_server.admin_dsn]) == 2
        assert json.loads(capsys.readouterr().out)["error"]["type"] == "RestoreTargetNotEmptyError"
    finally:
        asyncio.run(_drop(pg_server.admin_dsn, name))


def _samples(path: Path) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


def test_the_metrics_file_reports_each_run_and_the_newest_complete_backup(
    source_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backups, prom = tmp_path / "backups", tmp_path / "backup.prom"
    command = ["--json", "backup", "--dir", str(backups), "--database-url", source_dsn, "--metrics-file", str(prom)]
    assert main(command) == 0
    made = read_manifest(Path(json.loads(capsys.readouterr().out)["backup"]))
    ok = _samples(prom)
    assert ok["coherence_sql_backup_success"] == 1
    assert ok["coherence_sql_backup_last_success_timestamp_seconds"] == made.finished_utc.timestamp()
    assert ok["coherence_sql_backup_last_size_bytes"] == made.dump.bytes
    assert ok["coherence_sql_backup_last_run_timestamp_seconds"] >= made.finished_utc.timestamp()

    empty_bin = tmp_path / "no-clients"
    empty_bin.mkdir()
    assert main([*command, "--pg-bin-dir", str(empty_bin)]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "BackupToolNotFoundError"
    failed = _samples(prom)
    assert failed["coherence_sql_backup_success"] == 0
    assert failed["coherence_sql_backup_last_success_timestamp_seconds"] == made.finished_utc.timestamp()
    assert (
        failed["coherence_sql_backup_last_run_timestamp_seconds"]
        >= ok["coherence_sql_backup_last_run_timestamp_seconds"]
    )
