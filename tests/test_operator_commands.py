"""Operator commands never guess the database, accept `--database-url` before or after the command
name, and never print a password: on success, on a wrong password, on an absent server.

The password cases run the real CLI in a subprocess against a private server whose application
role must give its password (scram-sha-256), so a wrong password really is refused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import asyncpg
import pytest

from coherence_sql.cli import build_parser, main
from coherence_sql.db import connect
from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.errors import DatabaseUnavailableError
from coherence_sql.schema import migrate
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import write_snapshot

ROOT = Path(__file__).resolve().parents[1]
# Letters no host, path, keyword or message here has, plus the characters that broke the old redaction.
RIGHT_PASSWORD = "QZx@/:ßK ?#%J"
WRONG_PASSWORD = "VYq@/:øX &=Ω"
REFUSAL = "needs {what}: --database-url or DATABASE_URL (--embedded for the local embedded server)"


def forms(password: str) -> set[str]:
    return {password, quote(password, safe=""), quote_plus(password)}


def assert_not_printed(result: subprocess.CompletedProcess[str], *passwords: str) -> None:
    for password in passwords:
        for form in forms(password):
            assert form not in result.stdout, result.stdout
            assert form not in result.stderr, result.stderr


def run(*args: str, env: dict[str, str] | None = None, script: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: a subprocess, DATABASE_URL unset unless `env` sets it."""
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environment.update(env or {})
    entry = [str(ROOT / "scripts" / script)] if script else ["-m", "coherence_sql.cli"]
    return subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[str, str]]:
    """(DSN with the right password in the userinfo, the same with it in `?password=`): a
    private server where role `app` must authenticate, with a migrated database `appdb`."""
    parent = Path(tempfile.mkdtemp(prefix="coherence-sql-secrets-", dir=scratch_parent()))
    server = EmbeddedPostgres(parent / "pg", durable=False)
    try:
        admin_dsn = server.start()

        async def prepare() -> None:
            admin = await asyncpg.connect(admin_dsn)
            try:
                literal = RIGHT_PASSWORD.replace("'", "''")
                await admin.execute(f"CREATE ROLE app LOGIN SUPERUSER PASSWORD '{literal}'")
                await admin.execute("CREATE DATABASE appdb OWNER app")
                hba = server.data_dir / "pg_hba.conf"
                rules = "local all app scram-sha-256\nhost all app all scram-sha-256\n"
                hba.write_text(rules + hba.read_text())
                await admin.execute("SELECT pg_reload_conf()")
            finally:
                await admin.close()

        asyncio.run(prepare())
        socket = quote(str(server.socket_dir), safe="/")
        in_userinfo = f"postgresql://app:{quote(RIGHT_PASSWORD, safe='')}@/appdb?host={socket}"
        in_query = f"postgresql://app@/appdb?host={socket}&password={quote(RIGHT_PASSWORD, safe='')}"
        asyncio.run(migrate(in_userinfo))
        yield in_userinfo, in_query
    finally:
        server.destroy()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snapshot") / "snapshot.json"
    write_snapshot(path, sample_snapshot(projects=5, edges=5, contributors=3, assets=3, contributions=5, tasks=2))
    return path


# -- no secret printed -----------------------------------------------------------------------------


def test_success_prints_which_server_but_never_the_password(
    password_server: tuple[str, str], snapshot_file: Path
) -> None:
    in_userinfo, in_query = password_server
    loaded = run("--database-url", in_query, "backfill", str(snapshot_file), "--quiet")
    checked = run("verify", str(snapshot_file), env={"DATABASE_URL": in_userinfo})
    status = run("status", "--database-url", in_userinfo)

    assert loaded.returncode == 0, loaded.stderr
    assert "database: postgresql://app@/appdb?host=" in loaded.stdout
    assert "&password=***" in loaded.stdout
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert status.returncode == 0, status.stderr
    assert "database: postgresql://app:***@/appdb?host=" in status.stdout
    for result in (loaded, checked, status):
        assert_not_printed(result, RIGHT_PASSWORD)


def test_a_wrong_password_is_refused_without_printing_it(password_server: tuple[str, str], snapshot_file: Path) -> None:
    right, _ = password_server
    wrong = right.replace(quote(RIGHT_PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))
    wrong_in_query = password_server[1].replace(quote(RIGHT_PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))

    results = [
        run("--database-url", wrong, "backfill", str(snapshot_file)),
        run("verify", str(snapshot_file), "--database-url", wrong_in_query),
        run("migrate", env={"DATABASE_URL": wrong}),
    ]
    # reconcile opens the migrating stores, which log their reconnect attempts (degraded start)
    reconciled = run("reconcile", "--journal", str(snapshot_file.parent / "journal.jsonl"), env={"DATABASE_URL": wrong})

    for result in results:
        assert result.returncode == 2, result.stderr
        assert "password authentication failed for user" in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert reconciled.returncode != 0
    assert "password authentication failed for user" in reconciled.stderr
    for result in [*results, reconciled]:
        assert_not_printed(result, WRONG_PASSWORD, RIGHT_PASSWORD)


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://app:{WRONG_PASSWORD}@127.0.0.1:1/appdb",  # raw, as pasted: @ / : ? # and all
        f"postgresql://app:{quote(WRONG_PASSWORD, safe='')}@127.0.0.1:1/appdb?sslpassword={quote(RIGHT_PASSWORD)}",
        f"host=127.0.0.1 port=1 user=app password='{WRONG_PASSWORD}' dbname=appdb",
    ],
)
def test_an_absent_server_or_a_bad_dsn_never_prints_the_password(dsn: str, snapshot_file: Path) -> None:
    result = run("backfill", str(snapshot_file), "--database-url", dsn)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("coherence-sql: DatabaseUnavailableError: cannot connect to "), result.stderr
    assert_not_printed(result, WRONG_PASSWORD, RIGHT_PASSWORD)


def test_a_dsn_typed_in_the_wrong_place_is_not_echoed(snapshot_file: Path) -> None:
    dsn = f"postgresql://app:{quote(WRONG_PASSWORD, safe='')}@db.internal/appdb"
    result = run("verify", str(snapshot_file), dsn)
    assert result.returncode == 2
    assert "unrecognized arguments: postgresql://app:***@db.internal/appdb" in result.stderr
    assert_not_printed(result, WRONG_PASSWORD)


async def test_connect_errors_name_the_server_not_the_password(password_server: tuple[str, str]) -> None:
    wrong = password_server[0].replace(quote(RIGHT_PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))
    with pytest.raises(DatabaseUnavailableError) as caught:
        await connect(wrong)
    message = str(caught.value)
    assert message.startswith("cannot connect to postgresql://app:***@/appdb?host=")
    assert "password authentication failed" in message
    assert not any(form in message for form in forms(WRONG_PASSWORD))


# -- which database ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "what"),
    [
        (["backfill", "SNAPSHOT"], "the PostgreSQL to load the snapshot into"),
        (["verify", "SNAPSHOT"], "the PostgreSQL to compare the source with"),
        (["rollback", "--phase", "3", "--out", "OUT"], "the PostgreSQL to export"),
        (["reconcile", "--journal", "JOURNAL"], "the PostgreSQL the API dual-writes to"),
    ],
)
def test_operator_commands_without_a_database_refuse_in_one_line(
    command: list[str],
    what: str,
    snapshot_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        {"SNAPSHOT": str(snapshot_file), "OUT": str(tmp_path / "out.json"), "JOURNAL": str(tmp_path / "j")}.get(a, a)
        for a in command
    ]
    never = tmp_path / "never-started"
    monkeypatch.setenv("COHERENCE_SQL_DATA_DIR", str(never))
    name = " ".join(command[:3]) if command[0] == "rollback" else command[0]
    for database_url in (None, "  "):
        if database_url is None:
            monkeypatch.delenv("DATABASE_URL", raising=False)
        else:
            monkeypatch.setenv("DATABASE_URL", database_url)
        assert main(args) == 2
        captured = capsys.readouterr()
        assert captured.err == f"coherence-sql: ConfigurationError: {name} {REFUSAL.format(what=what)}\n"
        assert captured.out == ""
    assert main(["--database-url", "", *args]) == 2  # `--database-url "$UNSET"` is no database either
    assert "--database-url or DATABASE_URL" in capsys.readouterr().err
    assert not never.exists()  # the embedded server was not started behind the operator's back
    assert not (tmp_path / "out.json").exists()


def test_the_refusal_is_one_line_from_the_installed_command_too(tmp_path: Path) -> None:
    result = run("reconcile", "--journal", str(tmp_path / "j"), env={"COHERENCE_SQL_DATA_DIR": str(tmp_path / "n")})
    assert result.returncode == 2
    assert result.stderr == (
        f"coherence-sql: ConfigurationError: reconcile {REFUSAL.format(what='the PostgreSQL the API dual-writes to')}\n"
    )


def test_embedded_is_the_explicit_way_to_the_embedded_server(snapshot_file: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="coherence-sql-embedded-flag-", dir=scratch_parent())) / "pg"
    # DATABASE_URL names a server that is not there: --embedded must win over it.
    env = {"COHERENCE_SQL_DATA_DIR": str(data_dir), "DATABASE_URL": "postgresql://x@127.0.0.1:1/no"}
    try:
        migrated = run("--embedded", "migrate", env=env)
        loaded = run("backfill", str(snapshot_file), "--embedded", "--quiet", env=env)
        both = run("--embedded", "verify", str(snapshot_file), "--database-url", env["DATABASE_URL"], env=env)
    finally:
        EmbeddedPostgres(data_dir, durable=False).destroy()
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    assert migrated.returncode == 0, migrated.stderr
    assert loaded.returncode == 0, loaded.stderr
    assert f"database: postgresql://postgres@/postgres?host={EmbeddedPostgres(data_dir).socket_dir}" in loaded.stdout
    assert both.returncode == 2
    assert both.stderr == (
        "coherence-sql: ConfigurationError: --database-url and --embedded name two databases: give one\n"
    )


COMMANDS_WITH_A_DATABASE = [
    ["migrate"],
    ["status"],
    ["demo"],
    ["backfill", "s.json"],
    ["verify", "s.json"],
    ["rollback", "--phase", "3"],
    ["reconcile"],
    ["generate"],
    ["lint"],
    ["bench", "accessors"],
    ["bench", "backfill"],
]


@pytest.mark.parametrize("command", COMMANDS_WITH_A_DATABASE, ids=lambda c: " ".join(c))
def test_database_url_is_accepted_before_and_after_every_command(command: list[str]) -> None:
    parser = build_parser()
    before = parser.parse_args(["--database-url", "postgresql://before/db", *command])
    after = parser.parse_args([*command, "--database-url", "postgresql://after/db"])
    both = parser.parse_args(
        ["--database-url", "postgresql://before/db", *command, "--database-url", "postgresql://after/db"]
    )
    neither = parser.parse_args(command)
    assert before.database_url == "postgresql://before/db"
    assert after.database_url == "postgresql://after/db"
    assert both.database_url == "postgresql://after/db"  # the one nearer the command wins
    assert neither.database_url is None


def test_the_scripts_take_database_url_anywhere(snapshot_file: Path, tmp_path: Path) -> None:
    never = {"COHERENCE_SQL_DATA_DIR": str(tmp_path / "never-started")}
    refused = run(str(snapshot_file), script="verify_data_consistency.py", env=never)
    assert refused.returncode == 2
    assert "verify needs the PostgreSQL to compare the source with" in refused.stderr
    bad = run(str(snapshot_file), "--database-url", "postgresql://u:Qz@127.0.0.1:1/x", script="backfill_postgres.py")
    assert bad.returncode == 2
    assert "cannot connect to postgresql://u:***@127.0.0.1:1/x" in bad.stderr


# -- rollback's paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--out", "--env-file"])
def test_a_directory_as_a_rollback_file_is_refused_in_one_line(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--database-url", "postgresql://u@127.0.0.1:1/x", "rollback", "--phase", "3", "--out",
                 str(tmp_path / "x.json"), option, str(tmp_path)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == f"coherence-sql rollback: {option} {tmp_path} is a directory; give a file path\n"
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_a_bugs_traceback_is_printed_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from coherence_sql.commands import schema_commands

    dsn = f"postgresql://app:{quote(WRONG_PASSWORD, safe='')}@db.internal:5432/appdb"

    async def broken(args: object) -> int:
        raise RuntimeError(f"a bug that quotes {dsn} and {WRONG_PASSWORD}")

    monkeypatch.setattr(schema_commands, "_status", broken)
    assert main(["status", "--database-url", dsn]) == 1
    captured = capsys.readouterr()
    assert "Traceback (most recent call last)" in captured.err
    assert "RuntimeError: a bug that quotes postgresql://app:***@db.internal:5432/appdb and ***" in captured.err
    assert not any(form in captured.err for form in forms(WRONG_PASSWORD))
