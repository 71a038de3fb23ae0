"""Rollback: the settings for each phase, the env file, the live check, and phase 3's export that
the in-memory stores load with zero differences from PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from coherence_sql.cutover.settings import CutoverSettings
from coherence_sql.errors import ConfigurationError
from coherence_sql.stores.memory import MemoryStores
from coherence_sql.stores.postgres import connect
from coherence_sql.transfer.backfill import backfill
from coherence_sql.transfer.rollback import (
    check_live,
    check_settings,
    export_snapshot,
    export_to_file,
    read_env_file,
    rollback_settings,
    write_env_file,
)
from coherence_sql.transfer.sample import sample_snapshot
from coherence_sql.transfer.snapshot import GRAPH_SECTIONS, TASK_SECTION, load_into
from coherence_sql.transfer.verify import verify
from tests.stores.records import asset, contributor, project, task

ROOT = Path(__file__).resolve().parents[2]
DSN_PLACEHOLDER = "postgresql://api@db.internal:5432/coherence"
PHASE_2_ENV = {"DUAL_WRITE_MODE": "true", "READ_FROM_POSTGRES_PERCENT": "50", "DATABASE_URL": DSN_PLACEHOLDER}
PHASE_3_ENV = {**PHASE_2_ENV, "READ_FROM_POSTGRES_PERCENT": "100", "POSTGRES_PRIMARY": "true"}


async def cli(*args: str, script: str | None = None) -> tuple[int, str, str]:
    entry = [str(ROOT / "scripts" / script)] if script else ["-m", "coherence_sql.cli"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *entry, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -- phases 1 and 2: configuration -----------------------------------------------------------------


def test_each_phase_rolls_back_with_the_plans_settings() -> None:
    assert rollback_settings(1)["DUAL_WRITE_MODE"] == "false"
    assert rollback_settings(2) == {"READ_FROM_POSTGRES_PERCENT": "0"}
    phase3 = rollback_settings(3, snapshot_path="rollback.json")
    assert phase3["POSTGRES_PRIMARY"] == "false"
    assert phase3["READ_FROM_POSTGRES_PERCENT"] == "0"
    assert Path(phase3["GRAPH_STORE_PATH"]).is_absolute()
    with pytest.raises(ConfigurationError):
        rollback_settings(4)


@pytest.mark.parametrize(
    ("phase", "current", "before", "after"),
    [
        (1, {"DUAL_WRITE_MODE": "true", "DATABASE_URL": DSN_PLACEHOLDER}, "dual-write", "memory"),
        (1, PHASE_2_ENV, "dual-write", "memory"),  # reads from PostgreSQL go too, or the API refuses to start
        (2, PHASE_2_ENV, "dual-write", "dual-write"),
        (3, PHASE_3_ENV, "postgres-primary", "dual-write"),
        (3, {**PHASE_3_ENV, "MEMORY_WRITES": "false", "DUAL_WRITE_MODE": "false"}, "postgres-primary", "dual-write"),
    ],
)
def test_the_settings_are_accepted_at_start_up_from_each_phase(
    phase: int, current: dict[str, str], before: str, after: str
) -> None:
    settings = rollback_settings(phase)

    checked = check_settings(current, settings)

    assert checked.ok, checked.error
    assert (checked.before, checked.after) == (before, after)
    merged = CutoverSettings.from_env({**current, **settings})
    assert merged.read_from_postgres_percent == 0
    assert not merged.postgres_primary


def test_the_env_file_is_updated_in_place(tmp_path: Path) -> None:
    env = tmp_path / "api.env"
    env.write_text(
        "# the API\nDATABASE_URL=postgresql://db/x\nexport READ_FROM_POSTGRES_PERCENT=50\nDUAL_WRITE_MODE=true\n"
    )

    write_env_file(env, rollback_settings(2))

    assert env.read_text() == (  # `export` kept: a shell that sources the file still exports it
        "# the API\nDATABASE_URL=postgresql://db/x\nexport READ_FROM_POSTGRES_PERCENT=0\nDUAL_WRITE_MODE=true\n"
    )
    write_env_file(env, rollback_settings(1))
    values = read_env_file(env)
    assert values["DUAL_WRITE_MODE"] == "false"
    assert values["SHADOW_COMPARE_PERCENT"] == "0"
    assert CutoverSettings.from_env(values).phase.value == "memory"


REAL_ENV_FILE = """\
# The API's environment (managed by hand; keep the comments)

export DATABASE_URL='postgresql://api:s3 cr#t@db.internal:5432/coherence'
export DUAL_WRITE_MODE="true"   # phase 1 since Monday
READ_FROM_POSTGRES_PERCENT = '50'
GREETING="two\\nlines and a \\"quote\\""
MULTI="first
second"
EMPTY=
JUST_A_NAME
"""


def test_a_real_env_file_round_trips_with_only_the_settings_changed(tmp_path: Path) -> None:
    env = tmp_path / "api.env"
    env.write_text(REAL_ENV_FILE)
    before = read_env_file(env)
    assert before["DATABASE_URL"] == "postgresql://api:s3 cr#t@db.internal:5432/coherence"
    assert before["DUAL_WRITE_MODE"] == "true"  # the quotes and the comment are not part of it
    assert before["READ_FROM_POSTGRES_PERCENT"] == "50"
    assert before["GREETING"] == 'two\nlines and a "quote"'
    assert before["MULTI"] == "first\nsecond"
    assert before["EMPTY"] == ""

    write_env_file(env, {**rollback_settings(2), "GRAPH_STORE_PATH": "/srv/roll back/it's.json"})

    lines = REAL_ENV_FILE.splitlines(keepends=True)
    expected = "".join(
        "READ_FROM_POSTGRES_PERCENT=0\n" if line.startswith("READ_FROM_POSTGRES_PERCENT") else line for line in lines
    )
    assert env.read_text() == expected + 'GRAPH_STORE_PATH="/srv/roll back/it\'s.json"\n'
    after = read_env_file(env)
    assert after == {
        **before,
        "READ_FROM_POSTGRES_PERCENT": "0",
        "GRAPH_STORE_PATH": "/srv/roll back/it's.json",
    }
    write_env_file(env, rollback_settings(1))  # `export X="true"` is replaced in place, `export` kept
    assert "export DUAL_WRITE_MODE=false\n" in env.read_text()
    assert read_env_file(env)["DUAL_WRITE_MODE"] == "false"


def test_the_env_file_keeps_its_mode_and_owner(tmp_path: Path) -> None:
    env = tmp_path / "api.env"
    env.write_text("DATABASE_URL=postgresql://api:pw@db/x\nDUAL_WRITE_MODE=true\n")
    env.chmod(0o600)
    owner = (os.geteuid(), os.getegid())
    if os.geteuid() == 0:  # as root, the file can belong to someone else, as the API's env file does
        owner = (4242, 4343)
        os.chown(env, *owner)

    write_env_file(env, rollback_settings(1))

    info = env.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == owner
    assert read_env_file(env)["DUAL_WRITE_MODE"] == "false"
    assert [p.name for p in tmp_path.iterdir()] == ["api.env"]  # no temp file left behind
    env.chmod(0o640)
    write_env_file(env, rollback_settings(2))
    assert stat.S_IMODE(env.stat().st_mode) == 0o640


def test_a_new_env_file_is_private_and_a_link_stays_a_link(tmp_path: Path) -> None:
    new = tmp_path / "new.env"
    write_env_file(new, rollback_settings(2))
    assert stat.S_IMODE(new.stat().st_mode) == 0o600  # it will hold DATABASE_URL
    assert new.read_text() == "READ_FROM_POSTGRES_PERCENT=0\n"
    link = tmp_path / "link.env"
    link.symlink_to(new)
    write_env_file(link, rollback_settings(1))
    assert link.is_symlink()
    assert read_env_file(new)["DUAL_WRITE_MODE"] == "false"


def test_a_status_url_with_credentials_is_shown_redacted() -> None:
    live = check_live("http://ops:QZsecret@127.0.0.1:1/store-status", rollback_settings(2), timeout_s=2)
    assert live.url == "http://ops:***@127.0.0.1:1/store-status"
    assert live.error is not None
    assert "QZsecret" not in live.error


def test_env_and_snapshot_paths_that_are_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory"):
        write_env_file(tmp_path, rollback_settings(1))
    with pytest.raises(ConfigurationError, match="is a directory"):
        asyncio.run(export_to_file("postgresql://u@127.0.0.1:1/never-reached", tmp_path))


def test_the_live_check_compares_the_store_status_with_the_settings(tmp_path: Path) -> None:
    status = tmp_path / "store-status.json"
    status.write_text(json.dumps({"phase": "dual-write", "settings": {"read_from_postgres_percent": 50}}))

    pending = check_live(status.as_uri(), rollback_settings(2))
    status.write_text(json.dumps({"phase": "dual-write", "settings": {"read_from_postgres_percent": 0}}))
    applied = check_live(status.as_uri(), rollback_settings(2))
    broken = check_live((tmp_path / "missing.json").as_uri(), rollback_settings(2))

    assert not pending.applied
    assert pending.mismatches == (("READ_FROM_POSTGRES_PERCENT", 50, 0),)
    assert applied.applied
    assert broken.error is not None


async def test_the_cli_prints_writes_and_checks_the_settings(tmp_path: Path) -> None:
    env = tmp_path / "api.env"
    env.write_text("DUAL_WRITE_MODE=true\nREAD_FROM_POSTGRES_PERCENT=25\nDATABASE_URL=postgresql://db/x\n")
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"phase": "dual-write", "settings": {"read_from_postgres_percent": 25}}))

    written = await cli("rollback", "--phase", "2", "--env-file", str(env))
    not_yet = await cli("--phase", "2", "--status-url", status.as_uri(), script="rollback_postgres_migration.py")
    status.write_text(json.dumps({"phase": "dual-write", "settings": {"read_from_postgres_percent": 0}}))
    in_effect = await cli("rollback", "--phase", "2", "--status-url", status.as_uri(), "--json")

    assert written[0] == 0, written[2]
    assert "READ_FROM_POSTGRES_PERCENT=0" in written[1]
    assert read_env_file(env)["READ_FROM_POSTGRES_PERCENT"] == "0"
    assert not_yet[0] == 1
    assert "not in effect yet" in not_yet[1]
    assert in_effect[0] == 0, in_effect[1]
    outcome = json.loads(in_effect[1])
    assert outcome["live"]["applied"] is True
    assert outcome["settings"] == {"READ_FROM_POSTGRES_PERCENT": "0"}


# -- phase 3: PostgreSQL back into memory ----------------------------------------------------------


async def test_phase_3_export_loads_into_memory_and_verifies_with_zero_differences(
    clean_dsn: str, tmp_path: Path
) -> None:
    snapshot = sample_snapshot(projects=50, edges=150, contributors=25, assets=20, contributions=250, tasks=30, seed=21)
    await backfill(clean_dsn, snapshot, vacuum=False)
    async with connect(clean_dsn) as stores:  # phase 3 traffic after the backfill, straight to PostgreSQL
        await stores.graph.upsert_project(project("Later-Project", "PyPI"))
        await stores.graph.add_dependency("PyPI", "Later-Project", "npm", "never-indexed")
        await stores.graph.create_contributor(contributor(900))
        await stores.graph.create_asset(asset(900))
        await stores.graph.create_contribution(
            contributor(900).id, asset(900).id, Decimal("12.34"), 0.905, {"has_tests": True}
        )
        await stores.tasks.create_task(task(900))
        await stores.tasks.update_task(task(900).id, output="done")
    path = tmp_path / "rollback.json"

    exported = await export_to_file(clean_dsn, path)
    memory = MemoryStores()
    await load_into(path, memory.graph, memory.tasks)
    report = await verify(memory, clean_dsn, threshold_percent=0.0)

    assert report.differences == []
    assert report.entities["contributions"].compared == len(snapshot.contributions) + 1
    assert list(json.loads(path.read_text())) == [*GRAPH_SECTIONS, TASK_SECTION]  # the API's format
    assert json.loads(path.read_text())["edges"][-1] == [["pypi", "later-project"], ["npm", "never-indexed"]]
    assert exported.records["contributions"] == len(snapshot.contributions) + 1
    async with connect(clean_dsn) as stores:  # memory answers as PostgreSQL does, list order included
        assert await memory.graph.list_contributions(1000) == await stores.graph.list_contributions(1000)
        assert await memory.graph.get_project("pypi", "later-project") == await stores.graph.get_project(
            "pypi", "later-project"
        )
        assert await memory.tasks.list_tasks(limit=100) == await stores.tasks.list_tasks(limit=100)


async def test_the_export_of_an_empty_database_is_an_empty_snapshot(clean_dsn: str) -> None:
    exported = await export_snapshot(clean_dsn)

    assert exported.to_json() == {section: [] for section in (*GRAPH_SECTIONS, TASK_SECTION)}


async def test_the_cli_and_the_script_export_phase_3(clean_dsn: str, tmp_path: Path) -> None:
    snapshot = sample_snapshot(projects=20, edges=40, contributors=10, assets=10, contributions=60, tasks=10, seed=2)
    await backfill(clean_dsn, snapshot, vacuum=False)
    out = tmp_path / "rollback.json"
    env = tmp_path / "api.env"

    missing_out = await cli("--database-url", clean_dsn, "rollback", "--phase", "3")
    done = await cli(
        "--phase", "3", "--out", str(out), "--env-file", str(env), "--database-url", clean_dsn,
        script="rollback_postgres_migration.py",
    )  # fmt: skip

    assert missing_out[0] == 2
    assert "--out" in missing_out[2]
    assert done[0] == 0, done[1] + done[2]
    assert "0 differences" in done[1]
    values = read_env_file(env)
    assert values["POSTGRES_PRIMARY"] == "false"
    assert values["GRAPH_STORE_PATH"] == str(out.resolve())
    memory = MemoryStores()
    await load_into(out, memory.graph, memory.tasks)
    assert (await verify(memory, clean_dsn)).ok


async def test_check_only_exports_and_writes_nothing(tmp_path: Path) -> None:
    env = tmp_path / "api.env"
    env.write_text("DUAL_WRITE_MODE=true\nPOSTGRES_PRIMARY=false\nDATABASE_URL=postgresql://db/x\n")
    status = tmp_path / "status.json"
    status.write_text(
        json.dumps({"phase": "dual-write", "settings": {"postgres_primary": False, "read_from_postgres_percent": 0,
                                                       "dual_write_mode": True, "memory_writes": True}})
    )  # fmt: skip

    checked = await cli(
        "rollback", "--phase", "3", "--check-only", "--env-file", str(env), "--status-url", status.as_uri()
    )

    assert checked[0] == 0, checked[1] + checked[2]
    assert "the rollback is in effect" in checked[1]
    assert "exported" not in checked[1]
    assert env.read_text() == "DUAL_WRITE_MODE=true\nPOSTGRES_PRIMARY=false\nDATABASE_URL=postgresql://db/x\n"
