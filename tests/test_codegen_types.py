"""The generator's types: each column and parameter of the fixture queries, exactly.

Types come from the live catalog; a column is non-optional only when it is a NOT NULL table
column off the nullable side of an outer join, or count(...), or forced with `!`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest

from tests.data.codegen.support import generate_files, row_fields, write_and_import


@pytest.fixture(scope="module")
async def generated(migrated_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    files = await generate_files(migrated_dsn)
    return write_and_import(files, tmp_path_factory.mktemp("generated_types"))


def fields(module: ModuleType, row: str) -> dict[str, str]:
    """A row class's field annotations as written in the generated source, in field order."""
    return row_fields(module, row)


def signature(function: Callable[..., Any]) -> str:
    return str(inspect.signature(function))


def test_left_join_columns_are_optional_on_the_dependency_side(generated: ModuleType) -> None:
    assert fields(generated, "DependenciesOfRow") == {
        "id": "int",
        "name": "str",
        "description": "str | None",  # nullable table column
        "to_project_id": "int | None",  # NOT NULL, but on the nullable side of LEFT JOIN
        "to_name": "str | None",  # NOT NULL, two LEFT JOINs away
    }


def test_right_join_makes_the_left_table_optional(generated: ModuleType) -> None:
    assert fields(generated, "AssetContributionsRow") == {
        "asset_id": "UUID",
        "total_cost": "Decimal",
        "contribution_id": "UUID | None",
        "cost_amount": "Decimal | None",
        "coherence_score": "Decimal | None",
        "timestamp": "datetime | None",
    }


def test_aggregates_are_optional_unless_count_or_overridden(generated: ModuleType) -> None:
    assert fields(generated, "EcosystemStatsRow") == {
        "ecosystem": "str",  # grouped NOT NULL column
        "projects": "int",  # count(*)
        "max_dependencies": "int | None",  # max() of an empty group would be NULL
        "names": "list[str] | None",  # array_agg → list
        "described": "int | None",  # count(...) forced nullable by "described?"
        "first_id": "int",  # min() forced non-null by "first_id!"
    }


def test_enums_jsonb_and_defaults_in_returning(generated: ModuleType) -> None:
    assert fields(generated, "InsertTaskRow") == {
        "id": "str",
        "task_type": "TaskType",
        "status": "TaskStatus",
        "context": "Any",  # jsonb, decoded by the connection's codec
        "progress_pct": "int | None",
    }
    assert fields(generated, "InsertContributorRow") == {
        "id": "UUID",
        "name": "str",
        "hourly_rate": "Decimal | None",
        "metadata": "Any",
        "created_at": "datetime",
    }


RECORD_ROWS = (
    "InsertContributorRow",
    "InsertAssetRow",
    "AssetContributionsRow",
    "ProjectIdsRow",
    "DependenciesOfRow",
    "EcosystemStatsRow",
    "ContributorNameRow",
)
# Rows with enum columns: NamedTuples built by the module's converter (row → its converter).
CONVERTED_ROWS = {"InsertTaskRow": "_insert_task_row", "TaskRow": "_task_row"}
ALIASES = {"GetTaskRow": "TaskRow"}  # `-- alias:` names


def test_rows_without_enum_columns_are_records_read_by_position(generated: ModuleType) -> None:
    assert {name for name in vars(generated) if name.endswith("Row")} == {*RECORD_ROWS, *CONVERTED_ROWS, *ALIASES}
    for alias, row in ALIASES.items():
        assert getattr(generated, alias) is getattr(generated, row)
    for row in RECORD_ROWS:
        cls = getattr(generated, row)
        assert cls.__bases__ == (asyncpg.Record,), row
        assert cls.__slots__ == ()
        names = list(fields(generated, row))
        getters = [repr(getattr(cls, name).fget) for name in names]
        assert getters == [f"operator.itemgetter({i})" for i in range(len(names))], row
    for row, converter in CONVERTED_ROWS.items():
        cls = getattr(generated, row)
        assert issubclass(cls, tuple), row
        assert list(cls._fields) == list(fields(generated, row))
        assert inspect.signature(getattr(generated, converter)).return_annotation == row


def test_parameters_are_keyword_only_and_nullable_only_when_declared(generated: ModuleType) -> None:
    assert signature(generated.insert_contributor) == (
        "(conn: 'Executor', *, id: 'UUID', name: 'str', email: 'str', type: 'str', hourly_rate: 'Decimal | None')"
        " -> 'InsertContributorRow | None'"
    )
    assert signature(generated.insert_projects) == (
        "(conn: 'Executor', *, ecosystems: 'Sequence[str]', names: 'Sequence[str]', "
        "descriptions: 'Sequence[str | None]') -> 'int'"
    )
    assert signature(generated.insert_task) == (
        "(conn: 'Executor', *, id: 'str', direction: 'str', task_type: 'TaskType', model: 'str', "
        "command: 'str', context: 'Any') -> 'InsertTaskRow | None'"
    )


def test_queries_of_one_row_shape_share_one_class_named_by_row(generated: ModuleType) -> None:
    # NamedTuple rows (enum columns): get_task names the class, tasks_in has the same columns.
    assert signature(generated.get_task) == "(conn: 'Executor', *, id: 'str') -> 'TaskRow | None'"
    assert signature(generated.tasks_in) == "(conn: 'Executor', *, status: 'TaskStatus') -> 'list[TaskRow]'"
    assert fields(generated, "TaskRow") == {
        "id": "str",
        "task_type": "TaskType",
        "status": "TaskStatus",
        "context": "Any",
        "progress_pct": "int | None",
        "updated_at": "datetime | None",
    }
    # Record rows: the second query of the pair names the class.
    assert signature(generated.contributor_names) == "(conn: 'Executor') -> 'list[ContributorNameRow]'"
    assert signature(generated.contributor_names_like).endswith("-> 'list[ContributorNameRow]'")
    # insert_task's row differs (no updated_at), so it keeps a class of its own, named for its query.
    assert signature(generated.insert_task).endswith("-> 'InsertTaskRow | None'")
    assert generated.TaskRow.__doc__.split() == ["One", "row", "of", "get_task,", "tasks_in."]
    # Neither `row:` nor `alias:` lines are part of an accessor's docstring.
    assert "row:" not in (generated.get_task.__doc__ or "")
    assert "alias:" not in (generated.get_task.__doc__ or "")


def test_return_shapes_follow_the_operator(generated: ModuleType) -> None:
    assert signature(generated.get_task) == "(conn: 'Executor', *, id: 'str') -> 'TaskRow | None'"
    assert signature(generated.dependencies_of) == (
        "(conn: 'Executor', *, ecosystem: 'str') -> 'list[DependenciesOfRow]'"
    )
    assert signature(generated.count_contributors) == "(conn: 'Executor') -> 'int | None'"
    assert signature(generated.first_status) == "(conn: 'Executor') -> 'TaskStatus | None'"
    assert signature(generated.task_statuses) == "(conn: 'Executor') -> 'list[TaskStatus] | None'"
    assert signature(generated.set_version) == "(conn: 'Executor', *, version: 'str', ecosystem: 'str') -> 'int'"
    assert signature(generated.insert_asset).endswith("-> 'InsertAssetRow | None'")
    assert signature(generated.insert_contributors) == (
        "(conn: 'Executor', rows: 'Iterable[InsertContributorsParams]') -> 'None'"
    )
    assert signature(generated.clear_projects) == "(conn: 'Executor') -> 'None'"
    assert fields(generated, "InsertContributorsParams") == {
        "id": "UUID",
        "name": "str",
        "email": "str",
        "type": "str",
    }


def test_sql_constant_is_aiosqls_rewrite_right_above_its_function(generated: ModuleType) -> None:
    assert generated.SET_VERSION_SQL == "UPDATE projects SET version = $1\nWHERE ecosystem = $2;"
    source = Path(generated.__file__ or "").read_text()
    constant_at = source.index("SET_VERSION_SQL: Final")
    assert source.index("async def set_version(") > constant_at
    assert source.index("async def rename_project(") > source.index("async def set_version(")


def test_module_header_says_generated_from_which_file(generated: ModuleType) -> None:
    source = Path(generated.__file__ or "").read_text()
    assert source.startswith(
        '"""Typed accessors for codegen/fixture_accessors.sql.\n\n'
        "Generated by `coherence-sql generate` from codegen/fixture_accessors.sql: do not edit this file;\n"
    )
