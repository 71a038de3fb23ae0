"""`coherence-sql lint`: one bad query file per rule, each with its exact finding; clean files pass."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from coherence_sql.cli import main
from coherence_sql.codegen.callers import referenced_names
from coherence_sql.codegen.lint import RULES, Catalog, lint_file, lint_paths
from tests.data.codegen.support import FIXTURE_DIR
from tests.pg import PgServer

LINT_DIR = FIXTURE_DIR / "lint"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def catalog(migrated_dsn: str) -> Catalog:
    conn = await asyncpg.connect(migrated_dsn)
    try:
        return await Catalog.load(conn)
    finally:
        await conn.close()


def findings(name: str, catalog: Catalog | None) -> list[str]:
    return [str(f) for f in lint_file(LINT_DIR / name, catalog, display=name)]


EXPECTED = {
    "cs101_array_slice.sql": "cs101_array_slice.sql:2: CS101 array slice `1:2`: aiosql reads `:2` as a parameter; "
    "put spaces around the colon (`[1 : 2]`)",
    "cs102_trailing_comment.sql": "cs102_trailing_comment.sql:4: CS102 `:id_of_project` in a trailing comment is "
    "read by aiosql as a parameter; move the comment to a line of its own",
    "cs103_dollar_body.sql": "cs103_dollar_body.sql:4: CS103 `:delay` inside a dollar-quoted body is read by aiosql "
    "as a parameter",
    "cs104_name_line_comment.sql": "cs104_name_line_comment.sql:1: CS104 comment on the name line of project_count: "
    "aiosql cannot load it; put the comment on its own line",
    "cs105_missing_parameter_list.sql": "cs105_missing_parameter_list.sql:1: CS105 project_count has no parameter "
    "list: aiosql 15 requires one; write project_count(...)$ (empty parentheses when there are none)",
    "cs201_bang_on_select.sql": "cs201_bang_on_select.sql:1: CS201 project_by_id is a SELECT but its operator is "
    "'!' (which discards rows); use '^', '$' or no operator",
    "cs202_select_one_many_rows.sql": "cs202_select_one_many_rows.sql:1: CS202 project_in uses '^' but can return "
    "several rows: add LIMIT 1, filter by equality on every column of a unique key of its one table, or use no "
    "operator",
    "cs203_no_returning.sql": "cs203_no_returning.sql:1: CS203 rename is an UPDATE without RETURNING but its "
    "operator (none: select many) expects rows; use '!' or add RETURNING",
    "cs301_undeclared.sql": "cs301_undeclared.sql:4: CS301 project_by_key uses :name, which is not in its "
    "parameter list",
    "cs302_unused.sql": "cs302_unused.sql:1: CS302 projects_of declares lim but never uses :lim",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_rule_reports_its_bad_file_exactly(name: str, catalog: Catalog) -> None:
    assert findings(name, catalog) == [EXPECTED[name]]


def test_a_file_aiosql_cannot_load_is_reported_even_when_no_rule_explains_it(catalog: Catalog) -> None:
    path = LINT_DIR / "cs100_unloadable.sql"
    assert findings(path.name, catalog) == [
        f"cs100_unloadable.sql:1: CS100 aiosql cannot load the file: invalid query name and operation spec at "
        f'{path}:1 on "2nd_project()^"'
    ]


def test_equality_on_the_expression_of_a_unique_index_counts_as_a_key(catalog: Catalog, tmp_path: Path) -> None:
    # The schema's unique keys are plain columns; an index on lower(email) is added to a copy.
    keys = dict(catalog.unique_keys)
    keys["contributors"] = (*keys["contributors"], frozenset({"lower(email)"}))
    path = tmp_path / "by_email.sql"
    path.write_text(
        "-- name: by_email(email)^\n-- One contributor.\n"
        "SELECT c.id\nFROM contributors AS c\nWHERE lower(c.email) = lower(:email::TEXT);\n"
    )

    assert [str(f) for f in lint_file(path, Catalog(unique_keys=keys), display="by_email.sql")] == []
    assert [str(f.rule) for f in lint_file(path, catalog, display="by_email.sql")] == ["CS202"]


def test_clean_files_pass(catalog: Catalog) -> None:
    assert findings("clean.sql", catalog) == []
    assert lint_file(FIXTURE_DIR / "fixture_accessors.sql", catalog) == []


def test_project_queries_pass(catalog: Catalog) -> None:
    for path in sorted((ROOT / "queries").glob("*.sql")):
        assert [str(f) for f in lint_file(path, catalog)] == [], path.name


def test_without_a_catalog_the_row_count_rule_is_not_checked() -> None:
    assert findings("cs202_select_one_many_rows.sql", None) == []


def test_lint_command_prints_findings_and_exits_1(
    pg_server: PgServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(LINT_DIR)
    code = main(["--database-url", pg_server.admin_dsn, "lint", "cs301_undeclared.sql", "clean.sql"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out == [EXPECTED["cs301_undeclared.sql"], "1 finding(s) in 1 file(s)"]
    assert main(["--database-url", pg_server.admin_dsn, "lint", "clean.sql"]) == 0
    assert capsys.readouterr().out.splitlines() == ["no hazards found"]


# -- CS401: a named query nothing in the package calls ---------------------------------------

UNCALLED = (
    "-- name: get_project(id)^\n-- One.\nSELECT p.name FROM projects AS p WHERE p.id = :id;\n\n"
    "-- name: count_projects()$\n-- How many.\nSELECT count(*) FROM projects;\n\n"
    "-- name: scan_projects(after)\n-- Read through its SQL constant only.\n"
    "SELECT p.id FROM projects AS p WHERE p.id > :after;\n\n"
    "-- name: old_digest()\n-- Kept on purpose.\n-- noqa: CS401\nSELECT p.id FROM projects AS p;\n"
)


def test_a_query_nothing_refers_to_is_reported_at_its_name_line(tmp_path: Path) -> None:
    path = tmp_path / "projects.sql"
    path.write_text(UNCALLED)
    referenced = {("projects", "get_project"), ("projects", "SCAN_PROJECTS_SQL"), ("assets", "count_projects")}
    assert [str(f) for f in lint_file(path, referenced=referenced, display="projects.sql")] == [
        "projects.sql:5: CS401 nothing in the package calls count_projects "
        "(coherence_sql.sql.projects.count_projects); delete the query, or call it"
    ]
    assert lint_file(path, display="projects.sql") == []  # without `referenced`, CS401 is not checked


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_references_are_read_through_every_import_form(tmp_path: Path) -> None:
    package = tmp_path / "coherence_sql"
    _write(package, "__init__.py", "")
    _write(
        package,
        "stores/one.py",
        "from coherence_sql.sql import projects as p\nasync def f(c): await p.get_project(c)\n",
    )
    _write(package, "stores/two.py", "from coherence_sql.sql.assets import get_asset, ScanAssetsRow as Row\n")
    _write(package, "stores/three.py", "import coherence_sql.sql.github as gh\nX = gh.SCAN_GITHUB_SQL\n")
    _write(package, "stores/four.py", "from ..sql import contributors\nY = contributors.scan_contributors\n")
    _write(package, "stores/five.py", "import coherence_sql.sql.health\nZ = coherence_sql.sql.health.ping\n")
    _write(package, "stores/six.py", "projects = object()\nW = projects.not_a_query\n")  # not an import of sql/
    _write(package, "sql/projects.py", "from coherence_sql.sql import shadow\nV = shadow.record_mismatch\n")
    assert referenced_names(package) == {
        ("projects", "get_project"),
        ("assets", "get_asset"),
        ("assets", "ScanAssetsRow"),
        ("github", "SCAN_GITHUB_SQL"),
        ("contributors", "scan_contributors"),
        ("health", "ping"),
    }


def test_lint_paths_checks_only_the_package_query_files_for_callers(tmp_path: Path) -> None:
    # `coherence-sql lint` (no paths) lints queries/, so CS401 runs in CI (the whole list:
    # tests/test_queries_sql.py::test_every_named_query_is_called_by_the_package).
    (tmp_path / "projects.sql").write_text(UNCALLED)
    assert lint_paths([tmp_path]) == []  # a query file elsewhere is not the package's
    assert RULES["CS401"] == "named query called by nothing in the package"
