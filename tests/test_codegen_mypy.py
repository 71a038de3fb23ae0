"""The generated types bite: `mypy --strict` rejects a wrong parameter type, an unchecked Optional and a row write."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.data.codegen.support import FIXTURE_MODULE, generate_files

ROOT = Path(__file__).resolve().parent.parent

MISUSE = textwrap.dedent(
    f"""\
    from coherence_sql.sql._runtime import Executor
    from {FIXTURE_MODULE} import dependencies_of, get_task


    async def misuse(conn: Executor) -> str:
        await get_task(conn, id=42)
        rows = await dependencies_of(conn, ecosystem=b"pypi")
        rows[0].name = "renamed"
        return rows[0].description.upper()
    """
)

PROPER = textwrap.dedent(
    f"""\
    from decimal import Decimal
    from uuid import UUID

    from coherence_sql.db import Connection, Pool
    from coherence_sql.models import TaskStatus
    from coherence_sql.sql._runtime import Executor
    from {FIXTURE_MODULE} import (
        ContributorNameRow,
        DependenciesOfRow,
        GetTaskRow,
        TaskRow,
        contributor_names,
        contributor_names_like,
        dependencies_of,
        get_task,
        insert_asset,
        tasks_in,
    )


    async def proper(conn: Executor) -> str:
        task = await get_task(conn, id="42")
        if task is not None and task.status is TaskStatus.PENDING:
            return task.id
        rows = await dependencies_of(conn, ecosystem="pypi")
        description = rows[0].description
        return rows[0].name.upper() + (description.upper() if description is not None else "")


    async def every_executor(conn: Connection, pool: Pool) -> list[int | None]:
        rows: list[DependenciesOfRow] = await dependencies_of(conn, ecosystem="pypi")
        rows += await dependencies_of(pool, ecosystem="pypi")
        async with pool.acquire() as proxy:
            rows += await dependencies_of(proxy, ecosystem="pypi")
            asset = await insert_asset(proxy, id=UUID(int=1), name="n", description="d", asset_type="CODE")
        total: Decimal = Decimal(0) if asset is None else asset.total_cost
        return [row.to_project_id for row in rows] + [int(total)]


    async def shared_rows(conn: Executor) -> list[str]:
        one: GetTaskRow | None = await get_task(conn, id="42")  # an alias names the shared class too
        many: list[TaskRow] = await tasks_in(conn, status=TaskStatus.PENDING)
        names: list[ContributorNameRow] = await contributor_names(conn)
        names += await contributor_names_like(conn, pattern="a%")
        return [task.id for task in many] + ([one.id] if one is not None else []) + [row.name for row in names]
    """
)


@pytest.fixture(scope="module")
async def checked_dir(migrated_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("mypy")
    for name, text in (await generate_files(migrated_dsn)).items():
        if name != "__init__.py":
            (directory / name).write_text(text)
    (directory / "misuse.py").write_text(MISUSE)
    (directory / "proper.py").write_text(PROPER)
    return directory


def mypy(directory: Path, *files: str) -> subprocess.CompletedProcess[str]:
    # The package is installed editable (an import hook mypy cannot follow): point MYPYPATH at it.
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    command = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml")]
    command += ["--cache-dir", str(directory / ".mypy_cache"), "--no-error-summary", *files]
    return subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_mypy_reports_wrong_parameter_types_an_unchecked_optional_and_a_row_write(checked_dir: Path) -> None:
    result = mypy(checked_dir, "misuse.py")
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors == [
        'misuse.py:6: error: Argument "id" to "get_task" has incompatible type "int"; expected "str"  [arg-type]',
        'misuse.py:7: error: Argument "ecosystem" to "dependencies_of" has incompatible type "bytes"; expected "str"  '
        "[arg-type]",
        'misuse.py:8: error: Property "name" defined in "DependenciesOfRow" is read-only  [misc]',
        'misuse.py:9: error: Item "None" of "str | None" has no attribute "upper"  [union-attr]',
    ], result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_accepts_correct_use_and_the_generated_module(checked_dir: Path) -> None:
    result = mypy(checked_dir, "proper.py", f"{FIXTURE_MODULE}.py")
    assert result.returncode == 0, result.stdout + result.stderr
